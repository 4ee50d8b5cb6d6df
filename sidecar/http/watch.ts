// A newline-delimited JSON stream (a Kubernetes watch) relayed one event at a time: each event is
// masked whole (Secret data, the policy's masking) and recorded as an `http.watch` event before it
// reaches the agent. An event longer than maskCapBytes ends the stream rather than pass unmasked.
import { Transform, type TransformCallback } from 'node:stream';
import type { KubeRequestInfo } from '../kube/request-info.ts';
import { maskSecrets } from '../kube/secrets.ts';
import type { HttpRuntime } from './context.ts';
import type { HttpSession } from './session.ts';

export class WatchRelay extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly masked = new Set<string>();
  private readonly session: HttpSession;
  private readonly rt: HttpRuntime;
  private readonly exchange: string;
  private readonly secrets: boolean;
  private readonly info: KubeRequestInfo | undefined;

  constructor(
    session: HttpSession,
    rt: HttpRuntime,
    exchange: string,
    secrets: boolean,
    info?: KubeRequestInfo,
  ) {
    super();
    this.session = session;
    this.rt = rt;
    this.exchange = exchange;
    this.secrets = secrets;
    this.info = info;
  }

  maskedPaths(): string[] {
    return [...this.masked];
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, start)) {
      this.pending.push(chunk.subarray(start, nl));
      const line = Buffer.concat(this.pending);
      this.pending = [];
      this.pendingBytes = 0;
      start = nl + 1;
      if (line.length > 0) this.push(this.relay(line));
    }
    if (start < chunk.length) {
      this.pending.push(chunk.subarray(start));
      this.pendingBytes += chunk.length - start;
      if (this.pendingBytes > this.rt.http.maskCapBytes) {
        cb(new Error(`a watch event exceeds maskCapBytes (${this.rt.http.maskCapBytes})`));
        return;
      }
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    const rest = Buffer.concat(this.pending);
    if (rest.length > 0) this.push(this.relay(rest).subarray(0, -1));
    cb();
  }

  private relay(line: Buffer): Buffer {
    let out = line;
    let type: string | undefined;
    try {
      const ev = JSON.parse(line.toString('utf8')) as { type?: unknown };
      type = typeof ev.type === 'string' ? ev.type : undefined;
      const paths: string[] = [];
      if (this.secrets) paths.push(...maskSecrets(ev, this.info?.resource === 'secrets'));
      if (this.rt.masker.active) paths.push(...this.rt.masker.maskJson(ev));
      if (paths.length > 0) {
        for (const p of paths) this.masked.add(p);
        out = Buffer.from(JSON.stringify(ev));
      }
    } catch {
      // Not JSON: nothing of it can be checked, so none of it is relayed.
      out = Buffer.from(
        JSON.stringify({
          type: 'ERROR',
          object: { kind: 'Status', message: 'chaperone: unreadable watch event withheld' },
        }),
      );
      type = 'ERROR';
    }
    const cap = this.rt.http.bodyCapBytes;
    this.session.rec?.add('http.watch', 'server', {
      exchange: this.exchange,
      ...(type ? { type } : {}),
      text: out.subarray(0, cap).toString('utf8'),
      bytes: out.length,
      ...(out.length > cap ? { truncated: true } : {}),
    });
    return Buffer.concat([out, Buffer.from('\n')]);
  }
}
