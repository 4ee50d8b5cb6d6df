// The frame of every page: landmarks, a skip link, the stylesheet and the page's scripts.
import { type Html, html } from '../html.ts';

export interface PageOptions {
  title: string;
  body: Html;
  /** Who is looking (shown with a sign-out button); absent on the login page. */
  viewer?: string;
  /** Load the terminal player (session pages with terminal channels). */
  player?: boolean;
}

export function page(o: PageOptions): string {
  return `<!doctype html>\n${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>${o.title} · Chaperone viewer</title>
<link rel="stylesheet" href="/assets/viewer.css">
${
  o.player
    ? html`<link rel="stylesheet" href="/assets/asciinema-player.css">
<script src="/assets/asciinema-player.min.js" defer></script>`
    : ''
}
<script src="/assets/viewer.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <nav aria-label="Primary">
    <a href="/" class="brand">Chaperone recordings</a>
  </nav>
  ${
    o.viewer
      ? html`<form method="post" action="/logout" class="signout">
    <span>Signed in as <strong>${o.viewer}</strong></span>
    <button type="submit">Sign out</button>
  </form>`
      : ''
  }
</header>
<main id="main" tabindex="-1">
${o.body}
</main>
<footer class="bottom"><p>Read-only view of the recording store. Every value shown comes from the recordings.</p></footer>
</body>
</html>`}\n`;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** UTC time as YYYY-MM-DD HH:MM:SS.mmmZ-less readable form, inside a <time> element. */
export function time(ms: number | undefined, withMs = false): Html {
  if (ms === undefined || !Number.isFinite(ms)) return html`<span aria-label="none">-</span>`;
  const d = new Date(ms);
  const text = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${withMs ? `.${String(d.getUTCMilliseconds()).padStart(3, '0')}` : ''} UTC`;
  return html`<time datetime="${d.toISOString()}">${text}</time>`;
}
