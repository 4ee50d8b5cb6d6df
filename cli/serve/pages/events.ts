// One timeline entry per recorded event, by kind: SQL with its masked result sample, policy
// decisions highlighted, terminal bytes as visible text, HTTP exchanges, gaps. Payloads come from
// the recording (attacker-controlled): every value goes through html`` and stays text.
import type { RecordedEvent } from '../../../recording/index.ts';
import { describeGap } from '../../format.ts';
import { type Html, html } from '../html.ts';
import { time } from './layout.ts';

const TEXT_LIMIT = 4000;
const ROWS_LIMIT = 20;

type P = Record<string, unknown>;
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

function clip(s: string, limit = TEXT_LIMIT): string {
  return s.length > limit ? `${s.slice(0, limit)}… (${s.length - limit} more characters)` : s;
}

/** Bytes as text with control characters shown as escapes (an ESC sequence stays visible, inert). */
export function visibleText(base64: string): string {
  const text = Buffer.from(base64, 'base64').toString('utf8');
  return text.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it shows
    /[\x00-\x08\x0b-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

function cell(v: unknown): string {
  if (v === null) return 'NULL';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function json(p: unknown): Html {
  return html`<pre class="payload">${clip(JSON.stringify(p, null, 2))}</pre>`;
}

function sqlResult(p: P): Html {
  const tag = str(p.commandTag) ?? str(p.command) ?? '';
  const rows = num(p.rows);
  const columns = Array.isArray(p.columns) ? p.columns.map(cell) : undefined;
  const sample = (
    Array.isArray(p.rowsSample) ? p.rowsSample : Array.isArray(p.sample) ? p.sample : []
  ) as unknown[];
  const masked = num(p.maskedCells) ?? 0;
  const table =
    sample.length > 0
      ? html`<table class="rows"><caption>Result sample (as recorded${masked ? ', masked' : ''})</caption>
${columns ? html`<thead><tr>${columns.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>` : ''}
<tbody>${sample
          .slice(0, ROWS_LIMIT)
          .map(
            (r) =>
              html`<tr>${(Array.isArray(r) ? r : [r]).map((c) => html`<td>${clip(cell(c), 200)}</td>`)}</tr>`,
          )}</tbody></table>`
      : '';
  return html`<p>${tag || 'result'}${rows !== undefined ? html` · ${rows} row${rows === 1 ? '' : 's'}` : ''}${masked ? html` · <span class="badge masked">${masked} cells masked</span>` : ''}${p.unmaskedRowsSample ? html` · <span class="muted">unmasked originals kept in the recording (not shown)</span>` : ''}</p>${table}`;
}

function headers(h: unknown): Html {
  if (!h || typeof h !== 'object') return html``;
  const entries = Object.entries(h as Record<string, unknown>);
  if (!entries.length) return html``;
  return html`<details><summary>${entries.length} headers</summary><dl class="headers">${entries.map(
    ([k, v]) => html`<dt>${k}</dt><dd>${Array.isArray(v) ? v.join(', ') : cell(v)}</dd>`,
  )}</dl></details>`;
}

function body(b: unknown): Html {
  if (!b || typeof b !== 'object') return html``;
  const x = b as P;
  const text = str(x.text);
  return html`<p class="muted">body ${num(x.bytes) ?? '?'} bytes${x.mimeType ? html`, ${str(x.mimeType)}` : ''}${x.truncated ? ', truncated' : ''}, sha256 <code>${str(x.sha256) ?? ''}</code></p>${
    text !== undefined ? html`<pre class="payload">${clip(text)}</pre>` : ''
  }`;
}

/** The class (for highlighting) and the content of one event. */
function describe(e: RecordedEvent): { cls: string; label: string; content: Html } {
  const p = e.payload as P;
  switch (e.kind) {
    case 'pg.query':
      return {
        cls: 'sql',
        label: 'SQL statement',
        content: html`<pre class="sql"><code>${clip(str(p.sql) ?? '')}</code></pre>${
          Array.isArray(p.params) && p.params.length
            ? html`<p class="muted">parameters: ${p.params.map((v, i) => html`${i ? ', ' : ''}<code>${clip(cell(v), 200)}</code>`)}</p>`
            : ''
        }`,
      };
    case 'pg.result':
      return { cls: 'result', label: 'SQL result', content: sqlResult(p) };
    case 'pg.error':
      return {
        cls: 'error',
        label: 'SQL error',
        content: html`<p>${str(p.message) ?? ''} <code>${str(p.sqlstate) ?? str(p.code) ?? ''}</code></p>`,
      };
    case 'policy.blocked':
      return {
        cls: 'decision blocked',
        label: 'Blocked',
        content: html`<p><strong>Blocked</strong> by rule <code>${str(p.rule) ?? ''}</code>: ${str(p.reason) ?? ''}</p>${
          p.command !== undefined
            ? html`<pre class="sql"><code>${clip(str(p.command) ?? '')}</code></pre>`
            : ''
        }`,
      };
    case 'policy.masked':
      return {
        cls: 'decision masked',
        label: 'Masked',
        content: html`<p>Rule <code>${str(p.rule) ?? ''}</code> masked ${Array.isArray(p.fields) ? p.fields.map(cell).join(', ') : ''}${num(p.count) !== undefined ? html` (${num(p.count)} cells)` : ''}</p>`,
      };
    case 'approval.requested':
      return {
        cls: 'decision pending',
        label: 'Approval requested',
        content: html`<p><strong>Approval requested</strong> (${str(p.approval) ?? ''})${p.reason ? html`: ${str(p.reason)}` : ''}</p>${p.command !== undefined ? html`<pre class="sql"><code>${clip(str(p.command) ?? '')}</code></pre>` : ''}`,
      };
    case 'approval.granted':
      return {
        cls: 'decision approved',
        label: 'Approved',
        content: html`<p><strong>Approved</strong> by ${str(p.approver) ?? '?'} (${str(p.approval) ?? ''})${p.reason ? html`: ${str(p.reason)}` : ''}</p>`,
      };
    case 'approval.denied':
      return {
        cls: 'decision blocked',
        label: 'Denied',
        content: html`<p><strong>Denied</strong> by ${str(p.approver) ?? '?'} (${str(p.approval) ?? ''})${p.reason ? html`: ${str(p.reason)}` : ''}</p>`,
      };
    case 'recording.gap':
      return {
        cls: 'gap',
        label: 'Gap in the recording',
        content: html`<p><strong>${describeGap(p)}</strong></p>`,
      };
    case 'terminal.open':
      return {
        cls: 'terminal',
        label: 'Terminal channel opened',
        content: html`<p>channel <code>${str(p.channel) ?? ''}</code>: ${str(p.mode) ?? ''}${p.command ? html` <code>${clip(str(p.command) ?? '')}</code>` : ''}${p.subsystem ? html` ${str(p.subsystem)}` : ''}</p>`,
      };
    case 'terminal.input':
    case 'terminal.output':
      return {
        cls: 'terminal',
        label: e.kind === 'terminal.input' ? 'Typed' : `Output (${str(p.stream) ?? ''})`,
        content: html`<pre class="term">${clip(visibleText(str(p.data) ?? ''))}</pre>`,
      };
    case 'terminal.exit':
      return {
        cls: 'terminal',
        label: 'Channel ended',
        content: html`<p>channel <code>${str(p.channel) ?? ''}</code> ${p.signal ? html`signal ${str(p.signal)}` : html`exit ${num(p.code) ?? '?'}`}</p>`,
      };
    case 'terminal.file':
      return {
        cls: 'terminal',
        label: 'File operation',
        content: html`<p>${str(p.op) ?? ''} <code>${str(p.path) ?? ''}</code>${p.toPath ? html` → <code>${str(p.toPath)}</code>` : ''}${num(p.bytes) !== undefined ? html`, ${num(p.bytes)} bytes` : ''}${p.sha256 ? html`, sha256 <code>${str(p.sha256)}</code>` : ''}</p>`,
      };
    case 'http.request':
      return {
        cls: 'http',
        label: 'HTTP request',
        content: html`<p><code>${str(p.method) ?? ''} ${clip(str(p.url) ?? '', 1000)}</code> <span class="muted">exchange ${str(p.exchange) ?? ''}</span></p>${headers(p.headers)}${body(p.body)}`,
      };
    case 'http.response':
      return {
        cls: num(p.status) !== undefined && num(p.status)! >= 400 ? 'http error' : 'http',
        label: 'HTTP response',
        content: html`<p><strong>${num(p.status) ?? '?'}</strong> ${str(p.statusText) ?? ''} <span class="muted">exchange ${str(p.exchange) ?? ''}</span></p>${headers(p.headers)}${body(p.body)}`,
      };
    case 'http.websocket':
      return {
        cls: 'http',
        label: 'WebSocket message',
        content: html`<p>${str(p.opcode) ?? ''}, ${num(p.bytes) ?? 0} bytes</p><pre class="term">${clip(visibleText(str(p.data) ?? ''))}</pre>`,
      };
    case 'session.start':
    case 'session.end':
      return {
        cls: 'meta',
        label: e.kind === 'session.start' ? 'Session started' : `Session ended (${str(p.reason) ?? ''})`,
        content: html`<details><summary>${e.kind === 'session.start' ? 'header' : 'totals'}</summary>${json(p)}</details>`,
      };
    default:
      return { cls: 'other', label: e.kind, content: json(p) };
  }
}

export function eventItem(e: RecordedEvent): Html {
  const d = describe(e);
  return html`<li class="event ${d.cls}" id="e${e.seq}">
<div class="meta"><a href="#e${e.seq}" class="seq" aria-label="event ${e.seq}">#${e.seq}</a> ${time(e.wallMs, true)} <span class="dir">${e.direction}</span> <span class="kind">${d.label}</span> <code class="muted">${e.kind}</code></div>
${d.content}
</li>`;
}
