// One agent connection: startup and token check, upstream login with the sidecar's credentials, then
// a relay that inspects statements before they go upstream and results before they reach the agent.
//
// Responses are matched to requests with a queue of expected replies (one entry per forwarded
// message that the backend answers), so recording, masking and injected messages stay correct with
// pipelining. A blocked statement is replaced by a statement that makes the upstream itself raise
// the error: the upstream then applies PostgreSQL's own error semantics (the transaction aborts, an
// extended-protocol batch is skipped until Sync) and the blocked text never reaches it.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { serialize } from 'pg-protocol/dist/serializer.js';
import { LEXING_RULE, LEXING_SETTINGS, lexingSettingProblem } from '../policy/sql/lexing.ts';
import type { TargetMetrics } from '../server/metrics.ts';
import type { ColumnInfo, RowMasker, SqlDecision } from '../server/modules.ts';
import {
  addSample,
  type Command,
  CommandDecider,
  MASK_EVERYTHING,
  nowNs,
  type RecordingChannel,
  type ResultCapture,
  recordResult,
  SessionCore,
  type Verdict,
  wantsSample,
} from '../session/index.ts';
import { BackendFramer, decodeBackend } from './backend.ts';
import { WriteCoalescer } from './coalesce.ts';
import type { GatewayServices, PostgresRuntime } from './context.ts';
import {
  type BindMessage,
  decodeBind,
  decodeClose,
  decodeDescribe,
  decodeExecute,
  decodeParse,
  decodePassword,
  decodeQuery,
  type FrontendMessage,
  FrontendParser,
  ProtocolError,
  type StartupPacket,
} from './frontend.ts';
import {
  authenticationCleartextPassword,
  authenticationOk,
  B,
  backendKeyData,
  commandTagAt,
  dataRow,
  dataRowText,
  dataRowValues,
  errorFields,
  errorResponse,
  F,
  negotiateProtocolVersion,
  PROTOCOL_3_0,
  readyForQuery,
  rowsFromTag,
  SQLSTATE,
} from './protocol.ts';
import { checkStartupParams, STARTUP_RULE } from './startup-params.ts';
import { connectUpstream, readCredentials, sendUpstreamCancel, type UpstreamError } from './upstream.ts';

type Phase = 'startup' | 'password' | 'login' | 'ready' | 'closed';

/** ReadyForQuery's status byte. */
const TX_STATUS: Record<number, 'I' | 'T' | 'E'> = { 73: 'I', 84: 'T', 69: 'E' };

/** Statement / portal names the gateway uses for its own substitute messages. */
const BLOCKED_STATEMENT = '__chaperone_blocked';
/** The built-in rule refusing Bind / Execute of statements and portals the gateway did not see made. */
const PREPARED_RULE = 'prepared-statements';

/** A backslash or a non-ASCII byte: text whose meaning depends on the lexing settings. */
function lexingSensitive(raw: Buffer): boolean {
  for (let i = 5; i < raw.length; i++) {
    const b = raw[i]!;
    if (b === 0x5c || b >= 0x80) return true;
  }
  return false;
}

interface StatementState {
  sql: string;
  blocked: boolean;
  /** Running it may change how the server lexes the statements after it (guard.ts). */
  touchesLexing: boolean;
  columns?: ColumnInfo[];
  describePending: boolean;
}

interface PortalState {
  statement: StatementState | undefined;
  statementName: string;
  bind: BindMessage;
  columns?: ColumnInfo[];
  describePending: boolean;
}

/** One executed statement as recorded: what ran, and what the agent got back. */
interface StatementRecord extends ResultCapture {
  sql: string;
  columns: ColumnInfo[] | undefined;
  portal: PortalState | undefined;
  copy: { direction: 'in' | 'out'; bytes: number } | undefined;
}

const Expect = {
  Query: 1,
  Parse: 2,
  Bind: 3,
  DescribeStatement: 4,
  DescribePortal: 5,
  Execute: 6,
  Close: 7,
  Sync: 8,
} as const;
type Expect = (typeof Expect)[keyof typeof Expect];

interface Expectation {
  kind: Expect;
  /** Sent by the gateway itself: its replies are consumed, not forwarded. */
  injected: boolean;
  stmt: StatementRecord | undefined;
  /** For substitutes of blocked statements: the error message the upstream will raise. */
  substitute: string | undefined;
  statement: StatementState | undefined;
  portal: PortalState | undefined;
  sql: string | undefined;
  /** A Query or Execute after which the server's lexing settings are unknown until ReadyForQuery. */
  touchesLexing: boolean;
}

function expectation(kind: Expect, fields: Partial<Expectation> = {}): Expectation {
  // Every field spelled out (no spread): one object shape for all, built on every statement.
  return {
    kind,
    injected: fields.injected ?? false,
    stmt: fields.stmt,
    substitute: fields.substitute,
    statement: fields.statement,
    portal: fields.portal,
    sql: fields.sql,
    touchesLexing: fields.touchesLexing ?? false,
  };
}

/** FIFO with O(1) shift. */
class Queue<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(v: T): void {
    this.items.push(v);
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  /** The index (from the head) of the last item that satisfies `test`, or -1. */
  lastIndex(test: (v: T) => boolean): number {
    for (let i = this.items.length - 1; i >= this.head; i--) if (test(this.items[i]!)) return i - this.head;
    return -1;
  }
  /** Whether an item after index `from` (from the head) satisfies `test`. */
  someAfter(from: number, test: (v: T) => boolean): boolean {
    for (let i = this.head + from + 1; i < this.items.length; i++) if (test(this.items[i]!)) return true;
    return false;
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }
}

/** SQL that makes the upstream raise our error with SQLSTATE 42501 (works in any quoting mode). */
export function raiseStatement(message: string): string {
  let tag = `chaperone_${randomBytes(4).toString('hex')}`;
  while (message.includes(tag)) tag = `chaperone_${randomBytes(4).toString('hex')}`;
  const literal = `E'${message.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
  return `DO $${tag}$ BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = ${literal}; END $${tag}$`;
}

function formatOf(formats: number[], i: number): 'text' | 'binary' {
  const f = formats.length === 0 ? 0 : formats.length === 1 ? formats[0] : formats[i];
  return f === 1 ? 'binary' : 'text';
}

function paramValue(value: Buffer | null, format: 'text' | 'binary'): unknown {
  if (value === null) return null;
  return format === 'text' ? value.toString('utf8') : { base64: value.toString('base64') };
}

function columnsOf(raw: Buffer): ColumnInfo[] {
  const msg = decodeBackend<{ fields: { name: string; dataTypeID: number; format: 'text' | 'binary' }[] }>(
    raw,
  );
  return msg.fields.map((f) => ({ name: f.name, dataTypeID: f.dataTypeID, format: f.format }));
}

/** Column names as recorded, computed once per column list (lists are shared, never mutated). */
const columnNames = new WeakMap<ColumnInfo[], string[]>();
function namesOf(columns: ColumnInfo[]): string[] {
  let names = columnNames.get(columns);
  if (!names) {
    names = columns.map((c) => c.name);
    columnNames.set(columns, names);
  }
  return names;
}

export class PostgresSession {
  private phase: Phase = 'startup';
  private readonly parser: FrontendParser;
  private readonly framer = new BackendFramer();
  private upstream: Socket | undefined;
  private up: WriteCoalescer | undefined;
  private readonly down: WriteCoalescer;
  private readonly metrics: TargetMetrics;
  private readonly expected = new Queue<Expectation>();
  private readonly statements = new Map<string, StatementState>();
  private readonly portals = new Map<string, PortalState>();
  private startupParams: Record<string, string> = {};
  private upstreamKey: { pid: number; secret: number } | undefined;
  private ownKey: { pid: number; secret: number } | undefined;
  private txStatus: 'I' | 'T' | 'E' = 'I';
  private waiting = false;
  private copyIn: StatementRecord | undefined;
  /** Login, identity, recording and command decisions: the protocol-independent part. */
  private readonly core: SessionCore;
  private readonly decider: CommandDecider;
  private readonly startupTimer: NodeJS.Timeout;
  private ending: Promise<void> | undefined;
  private closeReason = 'client disconnected';
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private readonly rt: () => PostgresRuntime;
  private readonly services: GatewayServices;
  private readonly client: Socket;
  private lastRowDescription: { raw: Buffer; columns: ColumnInfo[] } | undefined;
  /** Resolved at each ReadyForQuery after which no lexing-touching statement is in flight. */
  private lexingWaiters: (() => void)[] = [];

  constructor(client: Socket, runtime: () => PostgresRuntime, services: GatewayServices) {
    this.client = client;
    this.rt = runtime;
    this.services = services;
    const rt = runtime();
    this.core = new SessionCore(
      'postgres',
      `${client.remoteAddress}:${client.remotePort}`,
      runtime,
      services,
    );
    this.decider = new CommandDecider(this.core);
    this.parser = new FrontendParser(rt.limits.maxMessageBytes);
    this.down = new WriteCoalescer(client);
    this.metrics = this.core.metrics;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    client.setNoDelay(true);
    client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    client.on('end', () => this.close('client disconnected'));
    client.on('close', () => this.close('client disconnected'));
    client.on('error', (err) => {
      this.logger.debug({ err }, 'client socket error');
      this.close('client connection error');
    });
    client.on('drain', () => this.upstream?.resume());
    this.startupTimer = setTimeout(() => {
      if (this.phase === 'startup' || this.phase === 'password') {
        this.logger.warn('agent did not complete startup in time; closing');
        this.fatal(SQLSTATE.protocolViolation, 'chaperone: startup timed out');
      }
    }, rt.limits.startupTimeoutMs);
    this.metrics.sessionStarted();
  }

  private get rec(): RecordingChannel | undefined {
    return this.core.rec;
  }

  private get logger() {
    return this.core.logger;
  }

  // ---------------------------------------------------------------- agent -> sidecar

  private onClientData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    if (this.phase === 'ready') this.metrics.bytes('client', chunk.length);
    this.parser.push(chunk);
    this.drive();
  }

  private drive(): void {
    if (this.phase === 'startup') this.driveStartup();
    if (this.phase === 'password') this.drivePassword();
    if (this.phase === 'ready') this.driveRelay();
  }

  private driveStartup(): void {
    for (;;) {
      const p = this.parser.nextStartup();
      if (p === undefined) return;
      if (p instanceof ProtocolError) {
        this.protocolViolation(p.message);
        return;
      }
      if (!this.onStartupPacket(p)) return;
    }
  }

  /** Returns true when the next packet is again a startup-phase packet. */
  private onStartupPacket(p: StartupPacket): boolean {
    if (p.kind === 'ssl' || p.kind === 'gssenc') {
      // The agent talks to the sidecar over loopback only; encryption happens sidecar -> upstream.
      this.client.write('N');
      return true;
    }
    if (p.kind === 'cancel') {
      this.onCancelRequest(p.pid, p.secret);
      this.phase = 'closed';
      this.client.end();
      this.finish('cancel request');
      return false;
    }
    this.startupParams = p.params;
    if (
      p.params.replication !== undefined &&
      p.params.replication !== 'false' &&
      p.params.replication !== 'off'
    ) {
      this.fatal(
        SQLSTATE.insufficientPrivilege,
        'chaperone: replication connections are not allowed through the sidecar',
      );
      return false;
    }
    if ((p.protocol & 0xffff) > 0 || p.unknownOptions.length > 0) {
      this.client.write(negotiateProtocolVersion(PROTOCOL_3_0, p.unknownOptions));
    }
    this.client.write(authenticationCleartextPassword());
    this.phase = 'password';
    return false;
  }

  private drivePassword(): void {
    const m = this.parser.next();
    if (m === undefined) return;
    if (m instanceof ProtocolError) {
      this.protocolViolation(m.message);
      return;
    }
    if (m.type !== F.password) {
      this.protocolViolation(`expected a password message, got '${String.fromCharCode(m.type)}'`);
      return;
    }
    const token = decodePassword(m.raw);
    if (token instanceof ProtocolError) {
      this.protocolViolation(token.message);
      return;
    }
    this.phase = 'login';
    this.client.pause();
    this.login(token === '' ? undefined : token).catch((err: Error) => {
      this.logger.error({ err }, 'session login failed');
      this.fatal(SQLSTATE.connectionFailure, `chaperone: ${err.message}`);
    });
  }

  private async login(token: string | undefined): Promise<void> {
    const rt = this.rt();
    const database = rt.target.upstream.database ?? this.startupParams.database;
    const result = await this.core.login({
      token,
      readCredentials: () => readCredentials(rt.target.credentialsDir),
      labels: (credentials) => {
        const labels: Record<string, string> = {};
        if (this.startupParams.user) labels['db.user'] = this.startupParams.user;
        labels['db.database'] = database ?? credentials.username;
        labels['db.upstreamUser'] = credentials.username;
        if (this.startupParams.application_name)
          labels['db.applicationName'] = this.startupParams.application_name;
        return labels;
      },
      refusedLabels: this.startupParams.user ? { 'db.user': this.startupParams.user } : {},
      maxPendingAppends: rt.limits.maxPendingAppends,
      onRecordingFailure: () => this.onRecordingFailure(),
      live: () => this.phase === 'login',
    });
    if (result.kind === 'denied') {
      const sqlstate =
        result.code === 'denied' || result.code === 'missing'
          ? SQLSTATE.invalidAuthorization
          : SQLSTATE.invalidPassword;
      this.fatal(sqlstate, `chaperone: authentication failed: ${result.message}`);
      return;
    }
    if (result.kind === 'noCredentials') {
      this.fatal(SQLSTATE.connectionFailure, result.message);
      return;
    }
    if (result.kind === 'gone') return;
    const { identity, credentials, rec } = result;
    const upstreamDatabase = database ?? credentials.username;

    const startup = checkStartupParams(this.startupParams);
    if (!startup.ok) {
      const message = `chaperone: session refused by rule ${STARTUP_RULE}: ${startup.problem}`;
      rec.add('policy.blocked', 'internal', {
        rule: STARTUP_RULE,
        reason: message,
        command: '',
        params: this.startupParams,
      });
      this.logger.warn({ problem: startup.problem }, 'startup parameters refused');
      this.fatal(SQLSTATE.insufficientPrivilege, message);
      return;
    }
    const params = startup.upstream;
    params.database = upstreamDatabase;
    let up: Awaited<ReturnType<typeof connectUpstream>>;
    try {
      up = await this.core.connectUpstream(() =>
        connectUpstream(
          {
            name: rt.target.name,
            host: rt.target.upstream.host,
            port: rt.target.upstream.port,
            tls: rt.target.tls,
          },
          credentials,
          params,
          rt.limits.upstreamLoginTimeoutMs,
        ),
      );
    } catch (err) {
      const e = err as UpstreamError;
      this.logger.warn({ err: e.message }, 'upstream login failed');
      rec.add('pg.error', 'server', {
        sqlstate: e.sqlstate ?? SQLSTATE.connectionFailure,
        message: e.message,
        severity: 'FATAL',
        phase: 'login',
      });
      if (e.errorResponse) {
        this.client.write(e.errorResponse);
        this.close('upstream refused the login');
      } else {
        this.fatal(
          SQLSTATE.connectionFailure,
          `chaperone: cannot reach target ${rt.target.name}: ${e.message}`,
        );
      }
      return;
    }
    if (this.phase !== 'login') {
      up.socket.destroy();
      return;
    }
    for (const m of up.startupMessages) {
      if (m[0] === B.parameterStatus && this.checkParameterStatus(m, 0, m.length)) {
        up.socket.destroy();
        return;
      }
    }
    this.upstream = up.socket;
    this.up = new WriteCoalescer(up.socket);
    this.upstreamKey = up.backendKey;
    this.txStatus = up.txStatus;
    this.ownKey = this.services.cancels.register(this);
    rec.add('pg.startup', 'client', {
      user: this.startupParams.user,
      database: upstreamDatabase,
      application_name: this.startupParams.application_name,
      params: this.startupParams,
      upstreamUser: credentials.username,
      upstreamAuth: up.auth,
    });
    clearTimeout(this.startupTimer);
    this.client.cork();
    this.client.write(authenticationOk());
    for (const m of up.startupMessages) this.client.write(m);
    this.client.write(backendKeyData(this.ownKey.pid, this.ownKey.secret));
    this.client.write(readyForQuery(this.txStatus));
    this.client.uncork();
    const upstream = up.socket;
    const reads = up.reads;
    if (reads) {
      reads.setSink((view) => {
        this.onUpstreamData(view);
        // The view's memory is reused by the next read: keep what outlives this call.
        this.framer.retain();
        if (this.client.writableLength > 0) reads.pin();
      });
    } else upstream.on('data', (chunk: Buffer) => this.onUpstreamData(chunk));
    upstream.on('end', () => this.close('upstream closed the connection'));
    upstream.on('close', () => this.close('upstream closed the connection'));
    upstream.on('error', (err) => {
      // A reset after the agent left is the upstream hanging up on a closing session: not news.
      if (this.phase === 'closed')
        this.logger.debug({ err: err.message }, 'upstream socket error after close');
      else this.logger.warn({ err: err.message }, 'upstream socket error');
      this.close('upstream connection error');
    });
    upstream.on('drain', () => {
      if (!this.waiting) this.client.resume();
    });
    this.phase = 'ready';
    // Identity liveness: a revoked or offboarded identity ends the session (sidecar/identity).
    this.core.watchIdentity(identity, (message) => {
      if (this.phase === 'closed') return;
      this.closeReason = 'identity revoked';
      this.fatal(SQLSTATE.invalidAuthorization, message);
    });
    this.logger.info('session started');
    if (up.rest.length > 0) this.onUpstreamData(up.rest);
    this.client.resume();
    this.drive();
  }

  private driveRelay(): void {
    const upstream = this.upstream!;
    // Events of this read are encoded once its statements are on their way upstream.
    const rec = this.rec;
    rec?.hold();
    try {
      while (!this.waiting && this.phase === 'ready') {
        const m = this.parser.next();
        if (m === undefined) break;
        if (m instanceof ProtocolError) {
          this.protocolViolation(m.message);
          break;
        }
        const wait = this.onClientMessage(m);
        if (wait) {
          this.waiting = true;
          this.client.pause();
          wait.then(
            () => {
              this.waiting = false;
              this.up?.flush();
              if (this.phase !== 'ready') return;
              if (upstream.writableNeedDrain) return; // resumed on drain
              this.client.resume();
              this.drive();
            },
            (err: Error) => {
              this.logger.error({ err }, 'statement handling failed');
              this.fatal(SQLSTATE.connectionFailure, `chaperone: internal error: ${err.message}`);
            },
          );
          break;
        }
      }
    } finally {
      this.up?.flush();
      rec?.release();
    }
    if (upstream.writableNeedDrain) this.client.pause();
  }

  /** Handles one agent message; returns a promise when the session must wait before the next. */
  private onClientMessage(m: FrontendMessage): Promise<void> | undefined {
    const rec = this.rec!;
    switch (m.type) {
      case F.query: {
        const sql = decodeQuery(m.raw);
        if (sql instanceof ProtocolError) return this.protocolViolation(sql.message);
        const barrier = this.lexingBarrier(m, sql, 'simple');
        if (barrier !== undefined) return barrier === null ? undefined : barrier;
        const wait = rec.backpressure();
        if (wait) return wait.then(() => this.onStatement(sql, 'simple', m));
        return this.onStatement(sql, 'simple', m);
      }
      case F.parse: {
        const p = decodeParse(m.raw);
        if (p instanceof ProtocolError) return this.protocolViolation(p.message);
        const barrier = this.lexingBarrier(m, p.sql, 'extended', p.name);
        if (barrier !== undefined) return barrier === null ? undefined : barrier;
        return this.onStatement(p.sql, 'extended', m, p.name);
      }
      case F.bind: {
        const b = decodeBind(m.raw);
        if (b instanceof ProtocolError) return this.protocolViolation(b.message);
        const statement = this.statements.get(b.statement);
        if (!statement) {
          // Made by SQL PREPARE, by code the guard cannot see, or not at all: nothing recorded says
          // what it runs, so it does not run (a missing one fails upstream alike).
          this.refuse(
            PREPARED_RULE,
            `chaperone: statement blocked by rule ${PREPARED_RULE}: prepared statement "${b.statement}" was not prepared through the sidecar in this session (use EXECUTE for SQL PREPARE)`,
            '',
          );
          this.portals.delete(b.portal);
          return undefined;
        }
        this.portals.set(b.portal, {
          statement,
          statementName: b.statement,
          bind: b,
          describePending: false,
        });
        this.expected.push(expectation(Expect.Bind));
        this.up!.forward(m.raw);
        return undefined;
      }
      case F.describe: {
        const d = decodeDescribe(m.raw);
        if (d instanceof ProtocolError) return this.protocolViolation(d.message);
        if (d.kind === 'S') {
          const statement = this.statements.get(d.name);
          if (statement) statement.describePending = true;
          this.expected.push(expectation(Expect.DescribeStatement, { statement }));
        } else {
          const portal = this.portals.get(d.name);
          if (portal) portal.describePending = true;
          this.expected.push(expectation(Expect.DescribePortal, { portal }));
        }
        this.up!.forward(m.raw);
        return undefined;
      }
      case F.execute: {
        const e = decodeExecute(m.raw);
        if (e instanceof ProtocolError) return this.protocolViolation(e.message);
        const wait = rec.backpressure();
        if (wait) return wait.then(() => this.onExecute(e.portal, m));
        return this.onExecute(e.portal, m);
      }
      case F.close: {
        const c = decodeClose(m.raw);
        if (c instanceof ProtocolError) return this.protocolViolation(c.message);
        if (c.kind === 'S') this.statements.delete(c.name);
        else this.portals.delete(c.name);
        this.expected.push(expectation(Expect.Close));
        this.up!.forward(m.raw);
        return undefined;
      }
      case F.sync:
        this.expected.push(expectation(Expect.Sync));
        this.up!.forward(m.raw);
        return undefined;
      case F.flush:
        this.up!.forward(m.raw);
        return undefined;
      case F.copyData:
        if (this.copyIn?.copy) this.copyIn.copy.bytes += m.raw.length - 5;
        this.up!.forward(m.raw);
        return undefined;
      case F.copyDone:
      case F.copyFail:
        this.up!.forward(m.raw);
        return undefined;
      case F.terminate:
        this.closeReason = 'client terminated the session';
        this.up!.forward(m.raw);
        return undefined;
      case F.functionCall: {
        // The fast-path function call runs a function by OID, out of sight of the SQL guard.
        const message = 'chaperone: the function call protocol is not allowed through the sidecar';
        rec.add('policy.blocked', 'internal', {
          rule: 'function-call',
          reason: message,
          command: '',
          sql: '',
          protocol: 'functionCall',
        });
        this.sendSubstitute(message, 'simple', undefined);
        return undefined;
      }
      default:
        return this.protocolViolation(`unexpected message '${String.fromCharCode(m.type)}' after startup`);
    }
  }

  private onExecute(portalName: string, m: FrontendMessage): Promise<void> | undefined {
    const rt = this.rt();
    const portal = this.portals.get(portalName);
    const statement = portal?.statement;
    if (!portal) {
      // A cursor of DECLARE, or a portal whose Bind was refused: its rows would have no statement.
      this.refuse(
        PREPARED_RULE,
        `chaperone: statement blocked by rule ${PREPARED_RULE}: portal "${portalName}" was not bound through the sidecar in this session (use FETCH for cursors)`,
        '',
      );
      return;
    }
    if (statement?.blocked) {
      // Part of a batch whose Parse was blocked: the upstream skips it after the substitute's error.
      this.expected.push(expectation(Expect.Execute, { portal }));
      this.up!.forward(m.raw);
      return;
    }
    if (
      rt.maskingConfigured &&
      !portal.columns &&
      !portal.describePending &&
      !statement?.columns &&
      !statement?.describePending
    ) {
      // Masking needs the result's columns before the first row; ask for them ourselves.
      portal.describePending = true;
      this.expected.push(expectation(Expect.DescribePortal, { portal, injected: true }));
      this.up!.send(serialize.describe({ type: 'P', name: portalName }));
    }
    const bind = portal?.bind;
    const stmt = this.newStatementRecord(statement?.sql ?? '', portal);
    const recorded = this.rec!.add(
      'pg.query',
      'client',
      {
        sql: stmt.sql,
        params: bind?.params.map((v, i) => paramValue(v, formatOf(bind.paramFormats, i))),
        statementName: portal?.statementName,
        portal: portalName,
        protocol: 'extended',
      },
      stmt.sql,
      this.rt().strictRecording,
    );
    const touchesLexing = statement?.touchesLexing ?? true;
    if (touchesLexing) {
      // This statement's own columns are known now; the ones of the statements after it may not be.
      const known = statement?.columns;
      if (known && !portal.columns)
        stmt.columns = known.map((c, i) => ({ ...c, format: formatOf(bind.resultFormats, i) }));
      this.forgetDescriptions();
    }
    this.expected.push(expectation(Expect.Execute, { stmt, portal, touchesLexing }));
    return this.forwardRecorded(m, recorded, rt);
  }

  /** Forwards a recorded statement; with recording.durability strict, once its event is durable. */
  private forwardRecorded(
    m: FrontendMessage,
    recorded: Promise<void> | undefined,
    rt: PostgresRuntime,
  ): Promise<void> | undefined {
    if (!rt.strictRecording) {
      this.up!.forward(m.raw);
      return undefined;
    }
    // No recording (it failed: the session is ending) means nothing goes upstream.
    if (recorded === undefined) return undefined;
    return recorded.then(() => {
      if (this.phase === 'ready') this.up!.forward(m.raw);
    });
  }

  /**
   * Before Query / Parse text that lexing settings could change the meaning of: if a statement that
   * may have changed them is still in flight, wait for its ReadyForQuery (whose ParameterStatus
   * messages say the new values, checkParameterStatus) or, when no Sync follows it, refuse.
   * undefined: go on now; null: refused; a promise: handled once the settings are known.
   */
  private lexingBarrier(
    m: FrontendMessage,
    sql: string,
    protocol: 'simple' | 'extended',
    statementName?: string,
  ): Promise<void> | null | undefined {
    const touching = (e: Expectation) => e.touchesLexing;
    const last = this.expected.lastIndex(touching);
    if (last < 0 || !lexingSensitive(m.raw)) return undefined;
    const answered =
      this.expected.someAfter(last - 1, (e) => e.touchesLexing && e.kind === Expect.Query) ||
      this.expected.someAfter(last, (e) => e.kind === Expect.Sync || e.kind === Expect.Query);
    if (!answered) {
      const message = `chaperone: statement blocked by rule ${LEXING_RULE}: text with backslashes or non-ASCII bytes cannot follow, in the same pipeline, a statement that may change lexing settings; send Sync first`;
      this.refuse(LEXING_RULE, message, sql, protocol, statementName);
      return null;
    }
    return new Promise<void>((resolve) => this.lexingWaiters.push(resolve)).then(() => {
      if (this.phase !== 'ready') return;
      const again = this.lexingBarrier(m, sql, protocol, statementName);
      if (again === null) return;
      if (again) return again;
      return this.onStatement(sql, protocol, m, statementName);
    });
  }

  /** Refuses one agent message with an error from the upstream itself (see sendSubstitute). */
  private refuse(
    rule: string,
    message: string,
    sql: string,
    protocol: 'simple' | 'extended' = 'extended',
    statementName?: string,
  ): void {
    this.decider.refuse(rule, message, {
      text: sql,
      noun: 'statement',
      named: { sql },
      detail: { protocol },
    });
    this.sendSubstitute(message, protocol, statementName);
  }

  /** Opaque code may have re-prepared statements: their result columns must be described again. */
  private forgetDescriptions(): void {
    for (const statement of this.statements.values()) {
      if (!statement.describePending) statement.columns = undefined;
    }
  }

  /** SQL PREPARE / DEALLOCATE / DISCARD ALL: the names they touch no longer mean what Parse made. */
  private forgetPrepared(names: readonly string[] | undefined): void {
    if (!names) return;
    for (const name of names) {
      if (name !== '*') this.statements.delete(name);
      else for (const key of [...this.statements.keys()]) if (key !== '') this.statements.delete(key);
    }
  }

  private newStatementRecord(sql: string, portal: PortalState | undefined): StatementRecord {
    return {
      sql,
      startNs: nowNs(),
      rows: 0,
      sample: [],
      originals: undefined,
      sampleBytes: 0,
      maskedCells: 0,
      columns: undefined,
      rowMasker: undefined,
      portal,
      copy: undefined,
    };
  }

  /** Guardrails for a Query or Parse, then forward, substitute, or wait for an approval. */
  private onStatement(
    sql: string,
    protocol: 'simple' | 'extended',
    m: FrontendMessage,
    statementName?: string,
  ): Promise<void> | undefined {
    const rt = this.rt();
    let decision: SqlDecision;
    try {
      decision = rt.guard.evaluate(sql);
    } catch (err) {
      this.logger.error({ err }, 'guardrail evaluation failed; blocking the statement');
      decision = {
        action: 'block',
        rule: 'evaluation-error',
        message: 'the statement could not be evaluated',
        classes: [],
        statementTypes: [],
      };
    }
    const cmd: Command = {
      text: sql,
      noun: 'statement',
      named: { sql },
      detail: { classes: decision.classes, statementTypes: decision.statementTypes, protocol },
    };
    const verdict = this.decider.decide(decision, cmd);
    if (verdict === undefined) return this.forwardStatement(sql, protocol, m, statementName, decision);
    if (typeof verdict === 'string') {
      this.sendSubstitute(verdict, protocol, statementName);
      return undefined;
    }
    return verdict.then((denial: Verdict) => {
      if (this.phase !== 'ready') return;
      if (denial === undefined) return this.forwardStatement(sql, protocol, m, statementName, decision);
      this.sendSubstitute(denial, protocol, statementName);
      return undefined;
    });
  }

  private forwardStatement(
    sql: string,
    protocol: 'simple' | 'extended',
    m: FrontendMessage,
    statementName: string | undefined,
    decision: SqlDecision,
  ): Promise<void> | undefined {
    const touchesLexing = decision.touchesLexing === true;
    this.forgetPrepared(decision.preparedNames);
    if (protocol === 'simple') {
      const stmt = this.newStatementRecord(sql, undefined);
      const rt = this.rt();
      const recorded = this.rec!.add(
        'pg.query',
        'client',
        { sql, protocol: 'simple' },
        sql,
        rt.strictRecording,
      );
      if (touchesLexing) this.forgetDescriptions();
      this.expected.push(expectation(Expect.Query, { stmt, touchesLexing }));
      return this.forwardRecorded(m, recorded, rt);
    } else {
      this.statements.set(statementName ?? '', {
        sql,
        blocked: false,
        touchesLexing,
        describePending: false,
      });
      this.expected.push(expectation(Expect.Parse, { sql }));
    }
    this.up!.forward(m.raw);
    return undefined;
  }

  /** Makes the upstream raise `message` in place of the statement (see the file comment). */
  private sendSubstitute(
    message: string,
    protocol: 'simple' | 'extended',
    statementName: string | undefined,
  ): void {
    const sql = raiseStatement(message);
    if (protocol === 'simple') {
      this.expected.push(expectation(Expect.Query, { substitute: message }));
      this.up!.send(serialize.query(sql));
      return;
    }
    // A blocked unnamed statement replaces the unnamed one, as a failed Parse does in PostgreSQL; a
    // named one must not disturb the agent's statements, so the substitute uses a name of its own.
    const name = statementName === '' ? '' : BLOCKED_STATEMENT;
    // The unnamed statement is now the substitute upstream. A named one keeps what it was: PostgreSQL
    // leaves an existing statement in place when a Parse under its name fails, and so does the
    // gateway's map (a name that did not exist stays unknown, so Bind of it is refused).
    if (statementName === '')
      this.statements.set('', { sql: '', blocked: true, touchesLexing: false, describePending: false });
    if (name !== '') {
      this.expected.push(expectation(Expect.Close, { injected: true }));
      this.up!.send(serialize.close({ type: 'S', name }));
    }
    this.expected.push(expectation(Expect.Parse, { injected: true }));
    this.up!.send(serialize.parse({ name, text: sql }));
    this.expected.push(expectation(Expect.Bind, { injected: true }));
    this.up!.send(serialize.bind({ portal: name, statement: name }));
    this.expected.push(expectation(Expect.Execute, { injected: true, substitute: message }));
    this.up!.send(serialize.execute({ portal: name }));
  }

  // ---------------------------------------------------------------- upstream -> agent

  private onUpstreamData(chunk: Buffer): void {
    if (this.phase !== 'ready') return;
    this.metrics.bytes('server', chunk.length);
    this.framer.push(chunk);
    const client = this.client;
    const down = this.down;
    // The results of this read (pg.result) are encoded once the agent has its reply.
    const rec = this.rec;
    rec?.hold();
    try {
      const framer = this.framer;
      for (let type = framer.nextType(); type >= 0 && this.phase === 'ready'; type = framer.nextType()) {
        const buf = framer.frameBuf;
        const start = framer.frameStart;
        const end = framer.frameEnd;
        const out = this.onBackendMessage(type, buf, start, end);
        if (out === undefined) down.forwardRange(buf, start, end);
        else if (out !== null) down.send(out);
      }
    } finally {
      down.flush();
      rec?.release();
    }
    if (this.framer.error) {
      this.logger.error({ error: this.framer.error }, 'upstream protocol error');
      this.fatal(SQLSTATE.protocolViolation, 'chaperone: invalid message from the upstream server');
      return;
    }
    if (client.writableNeedDrain) this.upstream?.pause();
  }

  /**
   * One upstream message, buf[start, end). undefined: forward it as is; null: drop it; a Buffer:
   * send that instead. Messages of every statement (DataRow, CommandComplete, ReadyForQuery) are
   * read in place; the rest get a view first.
   */
  private onBackendMessage(type: number, buf: Buffer, start: number, end: number): Buffer | null | undefined {
    const head = this.expected.peek();
    switch (type) {
      case B.dataRow: {
        const stmt = head?.stmt;
        if (!stmt) break;
        stmt.rows++;
        const masker = this.rowMaskerFor(stmt);
        const rt = this.rt();
        const wantSample = wantsSample(stmt, rt.limits);
        if (!masker?.active && !wantSample) break;
        if (!masker?.active) {
          // Sampling only: cells straight to text, no views.
          const cells = dataRowText(buf, start, end, stmt.columns);
          if (cells) {
            stmt.sampleBytes += end - start;
            stmt.sample.push(cells);
          }
          break;
        }
        const original = buf.subarray(start, end);
        let values = dataRowValues(original);
        if (!values) break;
        let raw = original;
        let originals: (Buffer | null)[] | undefined;
        if (masker?.active) {
          const masked = masker.maskRow(values);
          if (masked.maskedCells > 0) {
            originals = values;
            values = masked.values;
            stmt.maskedCells += masked.maskedCells;
            raw = dataRow(values);
          }
        }
        if (wantSample) {
          const kept = originals && rt.keepOriginals ? this.sampleValues(stmt, originals) : undefined;
          addSample(stmt, this.sampleValues(stmt, values), raw.length, kept, original.length);
        }
        return raw !== original ? raw : undefined;
      }
      case B.commandComplete:
      case B.emptyQuery:
      case B.portalSuspended: {
        if (!head) break;
        const tag =
          type === B.commandComplete
            ? commandTagAt(buf, start, end)
            : type === B.emptyQuery
              ? ''
              : 'SUSPENDED';
        if (head.stmt) this.recordResult(head.stmt, tag);
        if (head.kind === Expect.Execute) this.expected.shift();
        break;
      }
      case B.rowDescription: {
        if (!head) break;
        if (head.kind === Expect.Query) {
          if (head.stmt) {
            head.stmt.columns = this.describedColumns(buf, start, end);
            head.stmt.rowMasker = undefined;
          }
          break;
        }
        const columns = this.describedColumns(buf, start, end);
        if (head.kind === Expect.DescribeStatement) {
          if (head.statement) {
            head.statement.columns = columns;
            head.statement.describePending = false;
          }
        } else if (head.kind === Expect.DescribePortal && head.portal) {
          head.portal.columns = columns;
          head.portal.describePending = false;
        }
        this.expected.shift();
        if (head.injected) return null;
        break;
      }
      case B.noData:
        if (head && (head.kind === Expect.DescribeStatement || head.kind === Expect.DescribePortal)) {
          if (head.statement) {
            head.statement.columns = [];
            head.statement.describePending = false;
          }
          if (head.portal) {
            head.portal.columns = [];
            head.portal.describePending = false;
          }
          this.expected.shift();
          if (head.injected) return null;
        }
        break;
      case B.parameterDescription:
        if (head?.injected) return null;
        break;
      case B.parameterStatus:
        if (this.checkParameterStatus(buf, start, end)) return null;
        break;
      case B.parseComplete:
      case B.bindComplete:
      case B.closeComplete:
        if (head && head.kind !== Expect.Query) {
          this.expected.shift();
          if (head.injected) return null;
        }
        break;
      case B.error:
        return this.onBackendError(buf.subarray(start, end), head);
      case B.readyForQuery: {
        this.txStatus = TX_STATUS[buf[start + 5]!] ?? 'I';
        // Everything up to and including the Sync or Query this answers is settled.
        for (let e = this.expected.shift(); e !== undefined; e = this.expected.shift()) {
          if (e.kind === Expect.Sync || e.kind === Expect.Query) break;
        }
        this.copyIn = undefined;
        if (this.lexingWaiters.length > 0 && this.expected.lastIndex((e) => e.touchesLexing) < 0) {
          const waiters = this.lexingWaiters;
          this.lexingWaiters = [];
          for (const resolve of waiters) resolve();
        }
        break;
      }
      case B.copyIn:
        if (head?.stmt) {
          head.stmt.copy = { direction: 'in', bytes: 0 };
          this.copyIn = head.stmt;
        }
        break;
      case B.copyOut:
        if (head?.stmt) head.stmt.copy = { direction: 'out', bytes: 0 };
        break;
      case B.copyData:
        if (head?.stmt?.copy) head.stmt.copy.bytes += end - start - 5;
        break;
      case B.notice: {
        const fields = errorFields(buf.subarray(start, end));
        this.rec?.add('pg.notice', 'server', { severity: fields.S, sqlstate: fields.C, message: fields.M });
        break;
      }
      case B.notification: {
        const n = decodeBackend<{ processId: number; channel: string; payload: string }>(
          buf.subarray(start, end),
        );
        this.rec?.add('pg.notification', 'server', { channel: n.channel, payload: n.payload });
        break;
      }
      default:
        break;
    }
    return undefined;
  }

  /**
   * The server reports every change of a lexing setting (they are GUC_REPORT) before its next
   * ReadyForQuery, also when opaque code made it. A value the guard cannot model ends the session:
   * the statements after it would be read one way by the guard and another by the server. True
   * when the session was ended.
   */
  private checkParameterStatus(buf: Buffer, start: number, end: number): boolean {
    const nameEnd = buf.indexOf(0, start + 5);
    if (nameEnd < 0 || nameEnd >= end) return false;
    const name = buf.toString('utf8', start + 5, nameEnd).toLowerCase();
    if (!LEXING_SETTINGS.has(name)) return false;
    const value = buf.toString('utf8', nameEnd + 1, Math.max(nameEnd + 1, end - 1));
    const problem = lexingSettingProblem(name, value);
    if (problem === undefined) return false;
    const message = `chaperone: session ended by rule ${LEXING_RULE}: ${problem}`;
    this.rec?.add('policy.blocked', 'internal', {
      rule: LEXING_RULE,
      reason: message,
      command: '',
      setting: name,
      value,
    });
    this.logger.warn({ setting: name, value }, 'upstream reported a lexing setting the guard cannot model');
    this.fatal(SQLSTATE.insufficientPrivilege, message);
    return true;
  }

  /** The replacement of the error, or undefined to forward it as is. */
  private onBackendError(raw: Buffer, head: Expectation | undefined): Buffer | undefined {
    const fields = errorFields(raw);
    const rec = this.rec;
    let replaced: Buffer | undefined;
    if (head?.substitute && fields.C === SQLSTATE.insufficientPrivilege && fields.M === head.substitute) {
      // Our own substitute raised it: give the agent a clean error without PL/pgSQL context.
      replaced = errorResponse({
        severity: 'ERROR',
        code: SQLSTATE.insufficientPrivilege,
        message: head.substitute,
      });
      rec?.add('pg.error', 'server', {
        sqlstate: fields.C,
        message: head.substitute,
        severity: 'ERROR',
        blocked: true,
      });
    } else {
      rec?.add('pg.error', 'server', {
        sqlstate: fields.C,
        message: fields.M,
        severity: fields.S,
        detail: fields.D,
        sql: head?.stmt?.sql ?? head?.sql,
        durationMs: head?.stmt ? Number(nowNs() - head.stmt.startNs) / 1e6 : undefined,
      });
    }
    if (head && head.kind !== Expect.Query) {
      // Extended protocol: the backend skips everything until Sync.
      while (this.expected.length > 0 && this.expected.peek()!.kind !== Expect.Sync) {
        const skipped = this.expected.shift()!;
        if (skipped !== head && skipped.stmt) {
          rec?.add('pg.error', 'internal', {
            sql: skipped.stmt.sql,
            skipped: true,
            message: 'not executed: an earlier message of the batch failed',
          });
        }
      }
    }
    if (head?.stmt) head.stmt.copy = undefined;
    this.copyIn = undefined;
    if (fields.S === 'FATAL' || fields.S === 'PANIC') this.closeReason = `upstream: ${fields.M}`;
    return replaced;
  }

  /** A DataRow's cells as recorded: text as text, binary as \\x hex. */
  private sampleValues(stmt: StatementRecord, values: (Buffer | null)[]): unknown[] {
    const cols = stmt.columns;
    return values.map((v, i) =>
      v === null ? null : cols?.[i]?.format === 'binary' ? `\\x${v.toString('hex')}` : v.toString('utf8'),
    );
  }

  private rowMaskerFor(stmt: StatementRecord): RowMasker | undefined {
    if (stmt.rowMasker) return stmt.rowMasker;
    const rt = this.rt();
    if (!stmt.columns && stmt.portal) {
      const portal = stmt.portal;
      const base = portal.columns ?? portal.statement?.columns;
      if (base) {
        const formats = portal.bind.resultFormats;
        stmt.columns = portal.columns ?? base.map((c, i) => ({ ...c, format: formatOf(formats, i) }));
      }
    }
    if (!rt.maskingConfigured) return undefined;
    // Fail closed: rows whose columns the server has not described cannot be masked by name, so no
    // cell of them reaches the agent.
    stmt.rowMasker = stmt.columns ? rt.masker.forColumns(stmt.columns) : MASK_EVERYTHING;
    return stmt.rowMasker;
  }

  /** Agents repeat their queries: an unchanged RowDescription reuses the last decoded columns. */
  private describedColumns(buf: Buffer, start: number, end: number): ColumnInfo[] {
    const last = this.lastRowDescription;
    if (last && last.raw.length === end - start && last.raw.compare(buf, start, end) === 0)
      return last.columns;
    const raw = Buffer.from(buf.subarray(start, end));
    const columns = columnsOf(raw);
    this.lastRowDescription = { raw, columns };
    return columns;
  }

  private recordResult(stmt: StatementRecord, tag: string): void {
    const rec = this.rec!;
    if (stmt.copy) {
      rec.add('pg.copy', stmt.copy.direction === 'in' ? 'client' : 'server', {
        direction: stmt.copy.direction,
        bytes: stmt.copy.bytes,
        rows: rowsFromTag(tag),
      });
      stmt.copy = undefined;
      this.copyIn = undefined;
    }
    recordResult(rec, this.metrics, stmt, {
      kind: 'pg.result',
      payload: { commandTag: tag, rows: rowsFromTag(tag) ?? stmt.rows },
      columns: stmt.columns ? namesOf(stmt.columns) : undefined,
      named: { sql: stmt.sql },
    });
    // A simple Query may hold several statements: the next result starts afresh.
    stmt.columns = undefined;
  }

  // ---------------------------------------------------------------- cancel, errors, shutdown

  private onCancelRequest(pid: number, secret: number): void {
    const session = this.services.cancels.find(pid, secret);
    if (!session) {
      this.logger.info('cancel request for an unknown session ignored');
      return;
    }
    session.cancel();
  }

  /** Called through the registry when the agent's CancelRequest names this session. */
  cancel(): void {
    this.rec?.add('pg.cancel', 'client', { awaitingApproval: this.decider.awaitingApproval });
    this.logger.info('cancel requested by the agent');
    if (this.decider.cancelApproval()) return;
    const rt = this.rt();
    if (!this.upstreamKey) return;
    sendUpstreamCancel(
      {
        name: rt.target.name,
        host: rt.target.upstream.host,
        port: rt.target.upstream.port,
        tls: rt.target.tls,
      },
      this.upstreamKey,
    ).catch((err: Error) => this.logger.warn({ err: err.message }, 'upstream cancel failed'));
  }

  private onRecordingFailure(): void {
    if (this.rt().target && this.services.recorder) {
      // failClosed is the recorder's own concern (appends wait); a rejected append means the
      // recording is broken, and an unrecorded session must not go on.
      this.fatal(
        SQLSTATE.connectionFailure,
        'chaperone: recording failed; the session cannot continue unrecorded',
      );
    }
  }

  private protocolViolation(message: string): undefined {
    this.logger.warn(
      { reason: message, pendingBytes: this.parser.pendingBytes },
      'protocol violation from agent; closing session',
    );
    this.rec?.add('pg.error', 'internal', {
      sqlstate: SQLSTATE.protocolViolation,
      message: `protocol violation: ${message}`,
      severity: 'FATAL',
    });
    this.fatal(SQLSTATE.protocolViolation, `chaperone: protocol violation: ${message}`);
    return undefined;
  }

  private fatal(code: string, message: string): void {
    if (this.phase === 'closed') return;
    if (this.client.writable) this.client.end(errorResponse({ severity: 'FATAL', code, message }));
    this.close(message);
  }

  /** Shutdown: tell the agent, close both sides, end the recording. */
  terminate(reason: string): Promise<void> {
    this.fatal(SQLSTATE.adminShutdown, `chaperone: terminating connection: ${reason}`);
    return this.done;
  }

  private close(reason: string): void {
    if (this.phase === 'closed') {
      return;
    }
    const wasReady = this.phase === 'ready';
    this.phase = 'closed';
    if (this.closeReason === 'client disconnected') this.closeReason = reason;
    clearTimeout(this.startupTimer);
    this.core.stopIdentityWatch();
    this.decider.cancelApproval();
    if (this.parser.pendingBytes > 0 && wasReady) {
      this.logger.warn(
        { pendingBytes: this.parser.pendingBytes },
        'agent closed the connection inside a message (truncated frame)',
      );
    }
    const upstream = this.upstream;
    if (upstream && !upstream.destroyed) {
      if (upstream.writable) upstream.end(serialize.end());
      setTimeout(() => upstream.destroy(), 1000).unref();
    }
    if (!this.client.destroyed) {
      this.client.end();
      setTimeout(() => this.client.destroy(), 1000).unref();
    }
    this.finish(this.closeReason);
  }

  private finish(reason: string): void {
    if (this.ending) return;
    this.phase = 'closed';
    if (this.ownKey) this.services.cancels.unregister(this.ownKey.pid);
    this.metrics.sessionEnded();
    this.logger.info({ reason, counts: this.rec?.counts }, 'session ended');
    this.ending = this.core.end(reason).finally(() => this.resolveDone());
  }
}
