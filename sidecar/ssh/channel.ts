// One session channel of an agent: pty, env, signals and window changes are collected or passed on;
// shell, exec and the sftp subsystem open the matching channel upstream and relay it. Exec commands
// and shell lines go through the command guard before they reach the host; sftp requests through
// the path guard (sftp.ts), legacy scp execs through their decoder (scp-relay.ts). Every byte
// relayed on shell and exec channels is recorded with the terminal event contract
// (recording/terminal-events.ts), after output masking when the target asks for it (output-mask.ts).
import { posix } from 'node:path';
import type { Client, ClientChannel, PseudoTtyInfo, ServerChannel, Session } from 'ssh2';
import type { Command, CommandDecider, SessionCore, Verdict } from '../session/index.ts';
import type { SshRuntime } from './context.ts';
import { LineTracker } from './line.ts';
import { type MaskedChunk, OutputMasker } from './output-mask.ts';
import { SSH_RULES } from './rules.ts';
import { ScpDecoder, scpPaths } from './scp.ts';
import { ScpRelay } from './scp-relay.ts';
import { FXP, PacketFramer, type RequestVerdict, SFTP_STATUS, SftpObserver, statusPacket } from './sftp.ts';

type Mode = 'shell' | 'exec' | 'subsystem';

const EXIT_BLOCKED = 126;

function commandOf(text: string, noun = 'command'): Command {
  return { text, noun, named: {}, detail: {} };
}

/** What a channel needs of its SSH connection (ssh/session.ts's SshSession). */
export interface ChannelHost {
  readonly core: SessionCore;
  readonly decider: CommandDecider;
  readonly rt: () => SshRuntime;
  /** The upstream connection, once logged in. */
  readonly upstream: Client | undefined;
  refuseForwarding(kind: string, detail: Record<string, unknown>): void;
  /** The upstream user's home directory (for sftp's relative paths). */
  home(): Promise<string>;
  isDirectory(path: string): Promise<boolean | undefined>;
}

export class SshChannel {
  readonly id: string;
  private readonly s: ChannelHost;
  private pty: PseudoTtyInfo | undefined;
  private readonly env: Record<string, string> = {};
  private agent: ServerChannel | undefined;
  private up: ClientChannel | undefined;
  private mode: Mode | undefined;
  private ended = false;
  private exitSent = false;
  /** Agent input waiting while a line or request is being decided. */
  private queue: Buffer[] = [];
  private deciding = false;
  private lines: LineTracker | undefined;
  /** Without a PTY: the unfinished line, forwarded only once decided. */
  private partial: Buffer[] = [];
  private sftp: SftpObserver | undefined;
  private sftpIn: PacketFramer | undefined;
  private sftpOut: PacketFramer | undefined;
  /** The exec is a legacy scp (`scp -t`/`scp -f`): its stream is a file transfer. */
  private scp = false;
  private outputs: { stdout: OutputMasker; stderr: OutputMasker } | undefined;
  private scpRelay: ScpRelay | undefined;
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;

  constructor(s: ChannelHost, id: string, session: Session) {
    this.s = s;
    this.id = id;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    session.on('pty', (accept, _reject, info) => {
      this.pty = info;
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      if (this.pty) Object.assign(this.pty, { cols: info.cols, rows: info.rows });
      this.rec('terminal.resize', 'client', { channel: this.id, cols: info.cols, rows: info.rows });
      this.up?.setWindow(info.rows, info.cols, info.height, info.width);
      accept?.();
    });
    session.on('env', (accept, reject, info) => {
      if (this.s.rt().allowEnv.has(info.key)) {
        this.env[info.key] = info.val;
        accept?.();
        return;
      }
      this.s.decider.refuse(SSH_RULES.env, `chaperone: environment variable ${info.key} is not allowed`, {
        text: `env ${info.key}`,
        noun: 'request',
        named: {},
        detail: { channel: this.id, name: info.key },
      });
      reject?.();
    });
    session.on('signal', (accept, _reject, info) => {
      this.rec('ssh.signal', 'client', { channel: this.id, signal: info.name });
      this.up?.signal(info.name);
      accept?.();
    });
    session.on('auth-agent', (_accept, reject) => {
      this.s.refuseForwarding('auth-agent', { channel: this.id });
      reject?.();
    });
    session.on('x11', (_accept, reject) => {
      this.s.refuseForwarding('x11', { channel: this.id });
      reject?.();
    });
    session.on('shell', (accept, reject) => {
      this.open('shell', undefined, accept, reject);
    });
    session.on('exec', (accept, reject, info) => {
      this.open('exec', info.command, accept, reject);
    });
    session.on('subsystem', (accept, reject, info) => {
      if (info.name !== 'sftp') {
        this.s.decider.refuse(SSH_RULES.channel, `chaperone: subsystem ${info.name} is not allowed`, {
          text: `subsystem ${info.name}`,
          noun: 'request',
          named: {},
          detail: { channel: this.id },
        });
        reject?.();
        return;
      }
      this.open('subsystem', undefined, accept, reject);
    });
    session.on('close', () => this.close());
  }

  private rec(
    kind: string,
    direction: 'client' | 'server' | 'internal',
    payload: Record<string, unknown>,
    summary?: string,
  ) {
    return this.s.core.rec?.add(kind, direction, payload, summary);
  }

  /** A message from the sidecar on the agent's terminal (stderr). */
  notify(message: string): void {
    const a = this.agent;
    if (!a || this.ended) return;
    const text = `\r\n${message}\r\n`;
    a.stderr.write(text);
    this.rec('terminal.output', 'internal', {
      channel: this.id,
      stream: 'stderr',
      data: Buffer.from(text).toString('base64'),
    });
  }

  private open(
    mode: Mode,
    command: string | undefined,
    accept: (() => ServerChannel) | undefined,
    reject: (() => void) | undefined,
  ): void {
    if (this.mode || !accept) {
      reject?.();
      return;
    }
    void reject;
    this.mode = mode;
    const pty = this.pty ? { term: this.pty.term, cols: this.pty.cols, rows: this.pty.rows } : undefined;
    this.rec(
      'terminal.open',
      'client',
      {
        channel: this.id,
        mode,
        ...(command !== undefined ? { command } : {}),
        ...(mode === 'subsystem' ? { subsystem: 'sftp' } : {}),
        ...(pty ? { pty } : {}),
        ...(Object.keys(this.env).length > 0 ? { env: { ...this.env } } : {}),
      },
      command,
    );
    // Accept at once: ssh2 refuses a late accept once the agent sent EOF (stdin already closed),
    // which OpenSSH does right after the request. Input waits (paused) until upstream is open.
    const agent = accept();
    if (!agent) {
      this.close();
      return;
    }
    this.agent = agent;
    agent.pause();
    if (mode === 'exec') {
      const verdict = this.s.decider.decide(this.s.rt().guard.command(command!), commandOf(command!));
      const scp = scpPaths(command!);
      this.scp = scp !== undefined;
      const next = (v: Verdict) => {
        if (this.ended) return;
        if (v !== undefined) this.refuseExec(v);
        else if (scp) this.checkScp(scp, command!);
        else this.connect(mode, command);
      };
      if (typeof verdict === 'object') verdict.then(next);
      else next(verdict);
      return;
    }
    this.connect(mode, command);
  }

  /**
   * Legacy scp (scp -O): the exec's file paths go through pathPattern like sftp's, and so does every
   * file record of the stream (scp.ts), which is decoded into file events.
   */
  private checkScp(paths: string[] | 'unparsable', command: string): void {
    const guard = this.s.rt().guard;
    if (paths === 'unparsable') {
      if (guard.pathRules === 0) {
        this.startScp([], command);
        return;
      }
      this.refuseExec(
        this.refuseScp(
          'chaperone: scp command line with quoting or options the sidecar cannot read',
          command,
        ),
      );
      return;
    }
    this.s.home().then((home) => {
      if (this.ended) return;
      const resolved = paths.map((p) => posix.normalize(posix.isAbsolute(p) ? p : posix.join(home, p)));
      if (guard.pathRules === 0) {
        this.startScp(resolved, command);
        return;
      }
      const verdict = this.s.decider.decide(guard.paths(resolved.length > 0 ? resolved : [home]), {
        text: `scp ${resolved.join(' ')}`,
        noun: 'scp transfer',
        named: {},
        detail: { channel: this.id, paths: resolved },
      });
      const next = (v: Verdict) => {
        if (this.ended) return;
        if (v === undefined) this.startScp(resolved, command);
        else this.refuseExec(v);
      };
      if (typeof verdict === 'object') verdict.then(next);
      else next(verdict);
    });
  }

  /** Opens the scp exec upstream with a decoder of its source stream. */
  private startScp(roots: string[], command: string): void {
    const flags = command
      .trim()
      .split(/\s+/)
      .filter((w) => /^-[a-zA-Z]+$/.test(w))
      .join('');
    const direction = flags.includes('t') ? 'upload' : 'download';
    const go = (targetIsDir: boolean | undefined) => {
      if (this.ended) return;
      this.scpRelay = new ScpRelay(new ScpDecoder({ direction, roots, targetIsDir }), {
        id: this.id,
        ended: () => this.ended,
        agent: () => this.agent!,
        up: () => this.up!,
        guard: () => this.s.rt().guard,
        decider: this.s.decider,
        rec: (kind, direction, payload) => this.rec(kind, direction, payload),
        notify: (message) => this.notify(message),
        close: () => this.close(),
      });
      this.connect('exec', command);
    };
    if (direction === 'download' || flags.includes('d')) go(direction === 'upload');
    else if (roots[0]) this.s.isDirectory(roots[0]).then(go);
    else go(undefined);
  }

  private refuseScp(message: string, command: string): string {
    this.s.decider.refuse('scp-protocol', message, {
      text: command,
      noun: 'scp transfer',
      named: {},
      detail: { channel: this.id },
    });
    return message;
  }

  /** A blocked exec: the channel says why on stderr and exits 126; nothing reaches the host. */
  private refuseExec(message: string): void {
    this.notify(message);
    this.sendExit({ code: EXIT_BLOCKED });
    this.close();
  }

  private connect(mode: Mode, command: string | undefined): void {
    const upstream = this.s.upstream;
    if (!upstream || this.ended) {
      this.close();
      return;
    }
    const window = this.pty
      ? {
          term: this.pty.term,
          cols: this.pty.cols,
          rows: this.pty.rows,
          width: this.pty.width,
          height: this.pty.height,
          modes: this.pty.modes,
        }
      : undefined;
    const opts = Object.keys(this.env).length > 0 ? { env: { ...this.env } } : {};
    const done = (err: Error | undefined, up: ClientChannel) => {
      if (err || this.ended) {
        if (err) {
          this.rec('ssh.error', 'server', { channel: this.id, message: err.message });
          this.notify(`chaperone: the host refused the channel: ${err.message}`);
          this.sendExit({ code: 255 });
        }
        up?.close();
        this.close();
        return;
      }
      this.up = up;
      this.relay(mode, this.agent!, up);
      this.agent!.resume();
    };
    if (mode === 'exec') upstream.exec(command!, { ...opts, ...(window ? { pty: window } : {}) }, done);
    else if (mode === 'shell') upstream.shell(window ?? false, opts, done);
    else {
      // The agent's starting directory, for resolving its relative sftp paths.
      this.s.home().then((home) => {
        this.sftp = new SftpObserver();
        this.sftp.home = home;
        this.sftpIn = new PacketFramer();
        this.sftpOut = new PacketFramer();
        upstream.subsys('sftp', done);
      });
    }
  }

  private relay(mode: Mode, agent: ServerChannel, up: ClientChannel): void {
    // sftp and legacy scp are recorded as the file operations they carry, not as bytes.
    const recordBytes = mode !== 'subsystem' && !this.scp;
    const scp = this.scpRelay;
    if (mode === 'shell' || (mode === 'exec' && this.pty)) {
      if (this.pty) this.lines = new LineTracker(this.s.rt().limits.maxLineBytes);
    }
    const guardLines = mode === 'shell' || (mode === 'exec' && this.pty !== undefined);
    const toAgent = (stream: 'stdout' | 'stderr', chunk: MaskedChunk) => {
      this.rec('terminal.output', 'server', {
        channel: this.id,
        stream,
        data: chunk.data.toString('base64'),
        ...(chunk.original ? { masked: true } : {}),
        ...(chunk.original && this.s.rt().outputMask?.keepOriginals
          ? { original: chunk.original.toString('base64') }
          : {}),
      });
      const ok = stream === 'stdout' ? agent.write(chunk.data) : agent.stderr.write(chunk.data);
      if (!ok) up.pause();
    };
    // sftp and scp carry files, never masked (output-mask.ts says what masking can and cannot see).
    const mask = recordBytes && !this.scp ? this.s.rt().outputMask : undefined;
    const outputs = mask
      ? {
          stdout: new OutputMasker(mask.row, (c) => toAgent('stdout', c)),
          stderr: new OutputMasker(mask.row, (c) => toAgent('stderr', c)),
        }
      : undefined;
    this.outputs = outputs;
    up.on('data', (data: Buffer) => {
      if (outputs) outputs.stdout.push(data);
      else if (recordBytes) toAgent('stdout', { data });
      else if (scp?.direction === 'download') scp.source(data);
      else if (scp) {
        if (!agent.write(data)) up.pause();
      } else {
        this.onSftpReply(data);
        if (!agent.write(data)) up.pause();
      }
    });
    up.stderr.on('data', (data: Buffer) => {
      if (outputs) outputs.stderr.push(data);
      else toAgent('stderr', { data });
    });
    agent.on('drain', () => up.resume());
    up.on('drain', () => agent.resume());
    up.on('exit', (code: number | null, signal?: string, dumped?: boolean, description?: string) => {
      this.flushOutputs();
      if (code !== null && code !== undefined) this.sendExit({ code });
      else if (signal) this.sendExit({ signal, dumped: dumped ?? false, description: description ?? '' });
    });
    up.on('end', () => this.flushOutputs());
    up.on('close', () => {
      this.flushOutputs();
      if (!this.ended) agent.end();
      this.close();
    });
    agent.on('data', (data: Buffer) => {
      if (mode === 'subsystem') this.onSftpRequest(data);
      else if (guardLines) this.onLineInput(data);
      else if (scp?.direction === 'upload') scp.source(data);
      else if (scp) {
        if (!up.write(data)) agent.pause();
      } else {
        this.rec('terminal.input', 'client', {
          channel: this.id,
          stream: 'stdin',
          data: data.toString('base64'),
        });
        if (!up.write(data)) agent.pause();
      }
    });
    agent.on('end', () => {
      // EOF from the agent: pending lines go first (an unfinished one without PTY is decided as is).
      this.whenIdle(() => {
        if (!this.lines && this.partial.length > 0) this.onLineInput(Buffer.from('\n'), true);
        this.whenIdle(() => up.end());
      });
    });
    agent.on('close', () => this.close());
  }

  /** Output held back by the maskers goes out before exit status, EOF and close. */
  private flushOutputs(): void {
    this.outputs?.stdout.flush();
    this.outputs?.stderr.flush();
  }

  private sendExit(e: { code: number } | { signal: string; dumped: boolean; description: string }): void {
    if (this.exitSent || !this.agent) return;
    this.exitSent = true;
    if ('code' in e) {
      this.rec('terminal.exit', 'server', { channel: this.id, code: e.code });
      this.agent.exit(e.code);
    } else {
      this.rec('terminal.exit', 'server', { channel: this.id, signal: e.signal });
      this.agent.exit(e.signal.replace(/^SIG/, ''), e.dumped, e.description);
    }
  }

  // ---------------------------------------------------------------- guarded input

  private idleWaiters: (() => void)[] = [];

  private whenIdle(fn: () => void): void {
    if (!this.deciding) fn();
    else this.idleWaiters.push(fn);
  }

  /** Shell input: forwarded as typed, each line decided at Enter (see line.ts). */
  private onLineInput(data: Buffer, eof = false): void {
    if (this.deciding) {
      this.queue.push(data);
      this.agent?.pause();
      return;
    }
    let chunk: Buffer | undefined = data;
    while (chunk && !this.ended) {
      const rest = this.processLine(chunk, eof);
      if (rest === 'wait') return;
      chunk = rest;
    }
    if (!this.deciding) {
      this.agent?.resume();
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Handles up to one Enter of `chunk`; returns what is left, undefined, or 'wait' (deciding). */
  private processLine(chunk: Buffer, eof: boolean): Buffer | undefined | 'wait' {
    const up = this.up!;
    const enter = this.lines ? this.lines.feed(chunk) : chunk.indexOf(0x0a);
    const before = enter < 0 ? chunk : chunk.subarray(0, enter);
    if (before.length > 0) {
      this.rec('terminal.input', 'client', {
        channel: this.id,
        stream: 'stdin',
        data: before.toString('base64'),
      });
      if (this.lines) up.write(before);
      else this.partial.push(before);
    }
    if (enter < 0) return undefined;
    const terminator = chunk.subarray(enter, enter + 1);
    const rest = enter + 1 < chunk.length ? chunk.subarray(enter + 1) : undefined;
    let text: string;
    let uncertain = false;
    let truncated = false;
    let held: Buffer | undefined;
    if (this.lines) {
      const line = this.lines.take();
      text = line.text;
      uncertain = line.uncertain;
      truncated = line.truncated;
    } else {
      held = Buffer.concat(this.partial);
      this.partial = [];
      text = held.toString('utf8').replace(/\r$/, '');
      truncated = held.length > this.s.rt().limits.maxLineBytes;
    }
    const forward = () => {
      this.rec('terminal.input', 'client', {
        channel: this.id,
        stream: 'stdin',
        data: terminator.toString('base64'),
      });
      if (held) up.write(held);
      if (!(eof && !this.lines)) up.write(terminator);
    };
    const refuse = (message: string) => {
      this.notify(message);
      // With a PTY the typed text sits in the remote line editor: ^E ^U erase it (end of line, kill
      // line; in canonical mode ^E is erased with the rest). Not ^C: its signal flushes the tty's
      // input queue, and with it lines the agent typed before that were allowed. Without a PTY the
      // line was held back and never sent.
      if (this.lines) up.write('\x05\x15');
    };
    // An empty line is harmless unless edited invisibly (a recalled history line looks empty here).
    if (text.trim() === '' && !uncertain) {
      forward();
      return rest;
    }
    this.rec('ssh.command', 'client', { channel: this.id, command: text, uncertain, truncated }, text);
    const guard = this.s.rt().guard;
    const verdict: Verdict | Promise<Verdict> =
      (uncertain || truncated) && guard.commandRules > 0
        ? this.uncertain(text)
        : this.s.decider.decide(guard.command(text), commandOf(text));
    if (verdict === undefined) {
      forward();
      return rest;
    }
    if (typeof verdict === 'string') {
      refuse(verdict);
      return rest;
    }
    this.deciding = true;
    this.agent?.pause();
    verdict.then((v) => {
      this.deciding = false;
      if (this.ended) return;
      if (v === undefined) forward();
      else refuse(v);
      const queued = this.queue;
      this.queue = [];
      if (rest) queued.unshift(rest);
      if (queued.length === 0) this.onLineInput(Buffer.alloc(0), eof);
      for (const q of queued) this.onLineInput(q, eof);
    });
    return 'wait';
  }

  private uncertain(text: string): string {
    const message = `chaperone: command blocked by rule ${SSH_RULES.uncertainLine}: the line was edited in a way the sidecar cannot follow (cursor keys, history, completion); type it out in full`;
    this.s.decider.refuse(SSH_RULES.uncertainLine, message, {
      text,
      noun: 'command',
      named: {},
      detail: { channel: this.id },
    });
    return message;
  }

  // ---------------------------------------------------------------- sftp

  private sftpQueue: Buffer[] = [];
  private sftpWaiting = false;

  private onSftpRequest(data: Buffer): void {
    const framer = this.sftpIn!;
    for (const packet of framer.push(data)) this.sftpQueue.push(packet);
    if (framer.error) {
      this.rec('ssh.error', 'client', { channel: this.id, message: `sftp: ${framer.error}` });
      this.close();
      return;
    }
    this.pumpSftp();
  }

  /** Requests allowed but not yet written upstream (written together at the end of the tick). */
  private sftpBatch: Buffer[] = [];

  /**
   * An sftp WRITE of 32 KiB is a little larger than one SSH packet, so written one by one each
   * request would cost two SSH packets upstream (one of a few bytes). The requests that arrive in
   * one read of the agent's socket go upstream in one write instead.
   */
  private toUpstream(packet: Buffer): void {
    if (this.sftpBatch.push(packet) > 1) return;
    queueMicrotask(() => {
      const batch = this.sftpBatch;
      this.sftpBatch = [];
      if (this.ended || !this.up) return;
      if (!this.up.write(batch.length === 1 ? batch[0]! : Buffer.concat(batch))) this.agent?.pause();
    });
  }

  private pumpSftp(): void {
    const agent = this.agent!;
    while (!this.sftpWaiting && this.sftpQueue.length > 0 && !this.ended) {
      const packet = this.sftpQueue.shift()!;
      const v: RequestVerdict = this.sftp!.request(packet);
      if (v.forward === true) {
        this.toUpstream(packet);
        continue;
      }
      if (v.forward === false) {
        this.s.decider.refuse(v.rule, v.reason, {
          text: `sftp ${FXP_NAMES[packet[4]!] ?? packet[4]}`,
          noun: 'sftp request',
          named: {},
          detail: { channel: this.id, paths: v.paths },
        });
        agent.write(v.reply);
        continue;
      }
      const id = packet.readUInt32BE(5);
      const guard = this.s.rt().guard;
      const op = FXP_NAMES[packet[4]!] ?? String(packet[4]);
      const decision = guard.paths(v.paths);
      const cmd: Command = {
        text: `${op} ${v.paths.join(' ')}`,
        noun: 'sftp operation',
        named: {},
        detail: { channel: this.id, paths: v.paths },
      };
      const verdict = this.s.decider.decide(decision, cmd);
      const apply = (r: Verdict) => {
        if (r === undefined) this.toUpstream(packet);
        else agent.write(statusPacket(id, SFTP_STATUS.PERMISSION_DENIED, r));
      };
      if (typeof verdict !== 'object') {
        apply(verdict);
        continue;
      }
      this.sftpWaiting = true;
      agent.pause();
      verdict.then((r) => {
        this.sftpWaiting = false;
        if (this.ended) return;
        apply(r);
        agent.resume();
        this.pumpSftp();
      });
    }
  }

  private onSftpReply(data: Buffer): void {
    const framer = this.sftpOut!;
    for (const packet of framer.push(data)) {
      for (const op of this.sftp!.reply(packet))
        this.rec('terminal.file', 'internal', { channel: this.id, ...op });
    }
  }

  // ---------------------------------------------------------------- end

  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.outputs?.stdout.close();
    this.outputs?.stderr.close();
    this.scpRelay?.end();
    if (this.sftp)
      for (const op of this.sftp.drain()) this.rec('terminal.file', 'internal', { channel: this.id, ...op });
    this.up?.close();
    if (this.agent && !this.agent.destroyed) {
      this.agent.end();
      this.agent.close();
    }
    this.resolveClosed();
  }
}

const FXP_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(FXP).map(([name, n]) => [n, name.toLowerCase()]),
);
