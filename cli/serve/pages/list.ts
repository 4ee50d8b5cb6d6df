// The session list: the search filters, one page of matching sessions, links to the next pages.
import type { ListedSession } from '../../../recording/index.ts';
import { type Html, html, query } from '../html.ts';
import type { CheckedReport, SessionPage } from '../source.ts';
import { page, time } from './layout.ts';

/** The filter fields as typed (shown back in the form and kept in page links). */
export interface FilterInput {
  namespace?: string;
  pod?: string;
  subject?: string;
  target?: string;
  since?: string;
  until?: string;
}

const FIELDS: { name: keyof FilterInput; label: string; hint: string }[] = [
  { name: 'subject', label: 'Identity', hint: 'token subject or service account, * wildcards' },
  { name: 'namespace', label: 'Namespace', hint: 'exact name' },
  { name: 'pod', label: 'Pod', hint: '* wildcards' },
  { name: 'target', label: 'Target', hint: '* wildcards' },
  { name: 'since', label: 'Started after', hint: 'ISO time or an age: 15m, 2h, 7d' },
  { name: 'until', label: 'Started before', hint: 'ISO time or an age' },
];

export function verificationBadge(r: CheckedReport | undefined): Html {
  if (!r) return html`<span class="badge unknown">not checked yet</span>`;
  if (!r.ok) return html`<span class="badge fail">verification failed</span>`;
  return html`<span class="badge ok">verified</span>`;
}

function decisions(s: ListedSession): Html {
  const c = s.countsByKind;
  const parts: Html[] = [];
  if (c['policy.blocked'])
    parts.push(html`<span class="badge blocked">${c['policy.blocked']} blocked</span>`);
  if (c['approval.granted'])
    parts.push(html`<span class="badge approved">${c['approval.granted']} approved</span>`);
  if (c['approval.denied'])
    parts.push(html`<span class="badge blocked">${c['approval.denied']} denied</span>`);
  return parts.length ? html`${parts}` : html`<span class="muted">none</span>`;
}

export function listPage(o: {
  viewer: string;
  filter: FilterInput;
  result?: SessionPage;
  /** The page's offset (kept in the verify link). */
  offset?: number;
  error?: string;
  verification: (s: ListedSession) => CheckedReport | undefined;
}): string {
  const f = o.filter;
  const form = html`<search>
<form method="get" action="/" class="filters" aria-labelledby="filters-title">
  <h2 id="filters-title">Search sessions</h2>
  ${FIELDS.map(
    (x) => html`<div class="field">
    <label for="f-${x.name}">${x.label}</label>
    <input id="f-${x.name}" name="${x.name}" type="text" value="${f[x.name] ?? ''}" aria-describedby="f-${x.name}-hint" autocomplete="off">
    <small id="f-${x.name}-hint">${x.hint}</small>
  </div>`,
  )}
  <div class="actions"><button type="submit">Search</button> <a href="/">Clear</a></div>
</form>
</search>`;
  let results: Html;
  if (o.error) {
    results = html`<p class="error" role="alert">${o.error}</p>`;
  } else if (o.result) {
    const r = o.result;
    const first = r.total === 0 ? 0 : r.offset + 1;
    const last = Math.min(r.offset + r.limit, r.total);
    const link = (offset: number) => `/${query({ ...f, offset: offset || undefined })}`;
    results = html`<section aria-labelledby="results-title">
<h2 id="results-title">Sessions</h2>
<p id="results-count" role="status">${r.total} matching session${r.total === 1 ? '' : 's'}${r.total ? html`, showing ${first}–${last}` : ''}</p>
${r.sessions.length ? html`<p><a href="/${query({ ...f, offset: o.offset || undefined, verify: 1 })}" class="verify-page">Verify the sessions on this page</a> <span class="muted">(checksums, chain and signatures with the configured keys)</span></p>` : ''}
${
  r.sessions.length
    ? html`<div class="scroll"><table class="sessions">
<caption class="sr-only">Matching sessions, newest first</caption>
<thead><tr><th scope="col">Session</th><th scope="col">Started</th><th scope="col">Identity</th><th scope="col">Namespace / pod</th><th scope="col">Target</th><th scope="col">Status</th><th scope="col">Events</th><th scope="col">Decisions</th><th scope="col">Verification</th></tr></thead>
<tbody>
${r.sessions.map(
  (s) => html`<tr>
<th scope="row"><a href="/sessions/${encodeURIComponent(s.sessionId)}">${s.sessionId}</a></th>
<td>${time(s.startedAtMs)}</td>
<td>${s.subject ?? s.serviceAccount ?? '-'}</td>
<td>${s.namespace}/${s.pod ?? '-'}</td>
<td>${s.targetName} <span class="muted">(${s.protocol})</span></td>
<td>${s.status}</td>
<td>${s.events}</td>
<td>${decisions(s)}</td>
<td>${verificationBadge(o.verification(s))}</td>
</tr>`,
)}
</tbody></table></div>`
    : html`<p>No sessions match.</p>`
}
${
  r.total > r.limit
    ? html`<nav aria-label="Pagination" class="pager">
  ${r.offset > 0 ? html`<a href="${link(Math.max(0, r.offset - r.limit))}" rel="prev">Previous page</a>` : ''}
  ${last < r.total ? html`<a href="${link(r.offset + r.limit)}" rel="next">Next page</a>` : ''}
</nav>`
    : ''
}
</section>`;
  } else {
    results = html``;
  }
  return page({
    title: 'Sessions',
    viewer: o.viewer,
    body: html`<h1>Recorded sessions</h1>${form}${results}`,
  });
}
