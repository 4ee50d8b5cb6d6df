// One session: its verification with the configured keys, what the index says, terminal replays
// and the timeline of its events (a page of them at a time).
import type { RecordedEvent, SessionIndex } from '../../../recording/index.ts';
import { type Html, html, query } from '../html.ts';
import type { CheckedReport } from '../source.ts';
import { eventItem } from './events.ts';
import { page, time } from './layout.ts';

export interface TerminalChannel {
  channel: string;
  mode: string;
  command?: string;
}

export interface SessionView {
  viewer: string;
  sessionId: string;
  index?: SessionIndex;
  report: CheckedReport;
  events: RecordedEvent[];
  /** Index of the first event shown, how many per page, and whether more follow. */
  offset: number;
  limit: number;
  more: boolean;
  channels: TerminalChannel[];
  /** Reading stopped at a segment that failed a check. */
  readError?: string;
}

function verification(r: CheckedReport): Html {
  const keys = r.keyIds.length ? r.keyIds : [];
  if (!r.ok) {
    return html`<div class="verify fail" role="alert">
<p><strong>Verification failed</strong>: ${r.failure?.reason ?? 'unknown'}${r.failure?.segment !== undefined ? html` at segment ${r.failure.segment}` : ''}${r.failure?.key ? html` (key ${r.failure.key})` : ''}.</p>
<p class="detail">${r.failure?.message ?? ''}</p>
<p>Do not rely on this recording: it is not what the recorder signed.</p>
</div>`;
  }
  const notes = [
    r.complete ? '' : 'the session has not ended (or its last segment is missing)',
    r.recovered ? 'recovered after a crash' : '',
    r.gaps ? `${r.gaps} gaps, ${r.lostEvents} events not kept` : '',
  ].filter(Boolean);
  return html`<div class="verify ok">
<p><strong>Verified</strong>: ${r.segments} segment${r.segments === 1 ? '' : 's'}, ${r.events} events; checksums, chain and signatures good; signed by key ${keys.map((k, i) => html`${i ? ', ' : ''}<code class="keyid">${k}</code>`)}.</p>
${notes.length ? html`<p>Note: ${notes.join('; ')}.</p>` : ''}
</div>`;
}

function details(s: SessionIndex): Html {
  const row = (k: string, v: Html | string) => html`<dt>${k}</dt><dd>${v}</dd>`;
  return html`<dl class="details">
${row('Status', `${s.status}${s.endReason ? ` (${s.endReason})` : ''}`)}
${row('Started', time(s.startedAtMs))}
${row('Ended', time(s.endedAtMs))}
${row('Protocol', s.protocol)}
${row('Target', `${s.target.name} (${s.target.host}:${s.target.port})`)}
${row('Subject', s.subject ?? '-')}
${row('Issuer', s.issuer ?? '-')}
${row('Service account', s.serviceAccount ?? '-')}
${row('Pod', `${s.namespace}/${s.pod ?? '-'}${s.node ? ` on ${s.node}` : ''}`)}
${row('Launched by', s.launchedBy ?? '-')}
${row('Policy', s.policy ? `${s.policy.namespace ? `${s.policy.namespace}/` : ''}${s.policy.name}${s.policy.generation !== undefined ? ` (generation ${s.policy.generation})` : ''}` : '-')}
${row('Sidecar', s.sidecarVersion)}
${row('Index signed by', html`<code class="keyid">${s.keyId}</code>`)}
</dl>`;
}

export function sessionPage(v: SessionView): string {
  const id = encodeURIComponent(v.sessionId);
  const link = (offset: number) => `/sessions/${id}${query({ offset: offset || undefined })}#timeline`;
  const players = v.channels.length
    ? html`<section aria-labelledby="replay-title">
<h2 id="replay-title">Terminal replay</h2>
${v.channels.map(
  (c) => html`<figure class="replay">
  <figcaption>Channel <code>${c.channel}</code>: ${c.mode}${c.command ? html` <code>${c.command}</code>` : ''} · <a href="/sessions/${id}/cast/${encodeURIComponent(c.channel)}" download="${v.sessionId}-${c.channel}.cast">download asciicast</a></figcaption>
  <div class="player" data-cast="/sessions/${id}/cast/${encodeURIComponent(c.channel)}" role="region" aria-label="Terminal replay of channel ${c.channel}"></div>
</figure>`,
)}
</section>`
    : '';
  const body = html`<h1>Session <code>${v.sessionId}</code></h1>
<section aria-labelledby="verify-title">
<h2 id="verify-title">Verification</h2>
${verification(v.report)}
</section>
${v.index ? html`<section aria-labelledby="details-title"><h2 id="details-title">Details</h2>${details(v.index)}</section>` : ''}
${players}
<section aria-labelledby="timeline" class="timeline">
<h2 id="timeline" tabindex="-1">Timeline</h2>
<p class="legend"><span class="badge blocked">Blocked</span> and <span class="badge approved">Approved</span> decisions are highlighted.</p>
${v.readError ? html`<p class="error" role="alert">Reading stopped: ${v.readError}</p>` : ''}
${v.events.length ? html`<ol class="events" start="${v.offset + 1}">${v.events.map(eventItem)}</ol>` : html`<p>No events on this page.</p>`}
${
  v.offset > 0 || v.more
    ? html`<nav aria-label="Timeline pages" class="pager">
${v.offset > 0 ? html`<a href="${link(Math.max(0, v.offset - v.limit))}" rel="prev">Earlier events</a>` : ''}
${v.more ? html`<a href="${link(v.offset + v.limit)}" rel="next">Later events</a>` : ''}
</nav>`
    : ''
}
</section>`;
  return page({ title: `Session ${v.sessionId}`, viewer: v.viewer, body, player: v.channels.length > 0 });
}

export function notFoundPage(viewer: string, what: string): string {
  return page({
    title: 'Not found',
    viewer,
    body: html`<h1>Not found</h1><p>${what}</p><p><a href="/">Back to the sessions</a></p>`,
  });
}
