// The sign-in page: one labelled field for the access token (the shared viewer token, or an OIDC
// access token of the configured issuer).
import { html } from '../html.ts';
import { page } from './layout.ts';

export function loginPage(o: {
  mode: 'token' | 'oidc';
  next: string;
  failed: boolean;
  issuer?: string;
}): string {
  const hint =
    o.mode === 'token'
      ? 'Paste the viewer token your administrator gave you.'
      : html`Paste an access token issued by <code>${o.issuer ?? ''}</code> for this viewer.`;
  return page({
    title: 'Sign in',
    body: html`<h1>Sign in</h1>
${o.failed ? html`<p class="error" role="alert">That token does not open this viewer.</p>` : ''}
<form method="post" action="/login" class="login">
  <input type="hidden" name="next" value="${o.next}">
  <label for="token">Access token</label>
  <p id="token-hint" class="hint">${hint}</p>
  <input id="token" name="token" type="password" autocomplete="off" required aria-describedby="token-hint">
  <button type="submit">Sign in</button>
</form>`,
  });
}
