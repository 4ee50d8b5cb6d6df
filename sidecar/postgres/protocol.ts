// Wire-format constants and the few backend messages the gateway writes itself. Messages built here
// go to the agent; everything the upstream sends is forwarded as raw bytes unless it is rewritten.

export const PROTOCOL_3_0 = 196608; // 3 << 16
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;

/** Frontend message type bytes (after startup). */
export const F = {
  bind: 0x42, // B
  close: 0x43, // C
  copyDone: 0x63, // c
  copyData: 0x64, // d
  describe: 0x44, // D
  execute: 0x45, // E
  copyFail: 0x66, // f
  functionCall: 0x46, // F
  flush: 0x48, // H
  password: 0x70, // p
  parse: 0x50, // P
  query: 0x51, // Q
  sync: 0x53, // S
  terminate: 0x58, // X
} as const;

/** Backend message type bytes. */
export const B = {
  auth: 0x52, // R
  keyData: 0x4b, // K
  bindComplete: 0x32, // 2
  closeComplete: 0x33, // 3
  commandComplete: 0x43, // C
  copyData: 0x64, // d
  copyDone: 0x63, // c
  copyIn: 0x47, // G
  copyOut: 0x48, // H
  copyBoth: 0x57, // W
  dataRow: 0x44, // D
  emptyQuery: 0x49, // I
  error: 0x45, // E
  functionCallResponse: 0x56, // V
  negotiateVersion: 0x76, // v
  noData: 0x6e, // n
  notice: 0x4e, // N
  notification: 0x41, // A
  parameterDescription: 0x74, // t
  parameterStatus: 0x53, // S
  parseComplete: 0x31, // 1
  portalSuspended: 0x73, // s
  readyForQuery: 0x5a, // Z
  rowDescription: 0x54, // T
} as const;

export const SQLSTATE = {
  protocolViolation: '08P01',
  invalidPassword: '28P01',
  invalidAuthorization: '28000',
  insufficientPrivilege: '42501',
  connectionFailure: '08006',
  cannotConnectNow: '57P03',
  adminShutdown: '57P01',
  queryCanceled: '57014',
} as const;

function message(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function cstrings(values: string[]): Buffer {
  return Buffer.concat(values.map((v) => Buffer.from(`${v}\0`, 'utf8')));
}

export interface ErrorFields {
  severity: 'ERROR' | 'FATAL' | 'NOTICE' | 'WARNING';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

/** ErrorResponse (or NoticeResponse with notice=true). */
export function errorResponse(fields: ErrorFields, notice = false): Buffer {
  const parts = [`S${fields.severity}`, `V${fields.severity}`, `C${fields.code}`, `M${fields.message}`];
  if (fields.detail) parts.push(`D${fields.detail}`);
  if (fields.hint) parts.push(`H${fields.hint}`);
  return message(notice ? B.notice : B.error, Buffer.concat([cstrings(parts), Buffer.from([0])]));
}

export function readyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  return message(B.readyForQuery, Buffer.from(status, 'latin1'));
}

function int32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(n, 0);
  return b;
}

export const authenticationOk = (): Buffer => message(B.auth, int32(0));
export const authenticationCleartextPassword = (): Buffer => message(B.auth, int32(3));

export function backendKeyData(pid: number, secret: number): Buffer {
  return message(B.keyData, Buffer.concat([int32(pid), int32(secret)]));
}

/** NegotiateProtocolVersion: we speak 3.0 and none of the requested _pq_ options. */
export function negotiateProtocolVersion(newestMinor: number, unsupportedOptions: string[]): Buffer {
  return message(
    B.negotiateVersion,
    Buffer.concat([int32(newestMinor), int32(unsupportedOptions.length), cstrings(unsupportedOptions)]),
  );
}

/** A DataRow with the given column values (null = SQL NULL). */
export function dataRow(values: readonly (Buffer | null)[]): Buffer {
  let size = 4 + 2;
  for (const v of values) size += 4 + (v ? v.length : 0);
  const out = Buffer.allocUnsafe(1 + size);
  out[0] = B.dataRow;
  out.writeInt32BE(size, 1);
  out.writeInt16BE(values.length, 5);
  let at = 7;
  for (const v of values) {
    if (v === null) {
      out.writeInt32BE(-1, at);
      at += 4;
    } else {
      out.writeInt32BE(v.length, at);
      at += 4;
      v.copy(out, at);
      at += v.length;
    }
  }
  return out;
}

/** Column values of a DataRow as views into the message (no copies); undefined when malformed. */
export function dataRowValues(raw: Buffer): (Buffer | null)[] | undefined {
  if (raw.length < 7) return undefined;
  const count = raw.readInt16BE(5);
  const values: (Buffer | null)[] = new Array(count);
  let at = 7;
  for (let i = 0; i < count; i++) {
    if (at + 4 > raw.length) return undefined;
    const len = raw.readInt32BE(at);
    at += 4;
    if (len < 0) {
      values[i] = null;
    } else {
      if (at + len > raw.length) return undefined;
      values[i] = raw.subarray(at, at + len);
      at += len;
    }
  }
  return values;
}

/** Fields of an ErrorResponse / NoticeResponse keyed by their one-letter code. */
export function errorFields(raw: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 5;
  while (at < raw.length && raw[at] !== 0) {
    const code = String.fromCharCode(raw[at]!);
    const end = raw.indexOf(0, at + 1);
    if (end < 0) break;
    out[code] = raw.toString('utf8', at + 1, end);
    at = end + 1;
  }
  return out;
}

/** The text of a CommandComplete ("INSERT 0 3"). */
export function commandTag(raw: Buffer): string {
  return commandTagAt(raw, 0, raw.length);
}

/** commandTag of the message buf[start, end), read in place. */
export function commandTagAt(buf: Buffer, start: number, end: number): string {
  const nul = buf.indexOf(0, start + 5);
  return buf.toString('utf8', start + 5, nul < 0 || nul > end ? end : nul);
}

/**
 * The cells of the DataRow buf[start, end) as recorded: text as text, binary as \\x hex, NULL as
 * null; read in place. undefined when malformed.
 */
export function dataRowText(
  buf: Buffer,
  start: number,
  end: number,
  columns: readonly { format: 'text' | 'binary' }[] | undefined,
): (string | null)[] | undefined {
  if (end - start < 7) return undefined;
  const count = buf.readInt16BE(start + 5);
  const cells: (string | null)[] = new Array(count);
  let at = start + 7;
  for (let i = 0; i < count; i++) {
    if (at + 4 > end) return undefined;
    const len = buf.readInt32BE(at);
    at += 4;
    if (len < 0) {
      cells[i] = null;
      continue;
    }
    if (at + len > end) return undefined;
    cells[i] =
      columns?.[i]?.format === 'binary'
        ? `\\x${buf.toString('hex', at, at + len)}`
        : buf.toString('utf8', at, at + len);
    at += len;
  }
  return cells;
}

/** Rows affected/returned from a command tag ("SELECT 5", "INSERT 0 3", "COPY 10"). */
export function rowsFromTag(tag: string): number | undefined {
  const last = tag.lastIndexOf(' ');
  if (last < 0) return undefined;
  const n = Number(tag.slice(last + 1));
  return Number.isInteger(n) ? n : undefined;
}

/** StartupMessage (protocol 3.0) with exactly the given parameters. */
export function startupMessage(params: Record<string, string>): Buffer {
  const body = Buffer.concat([cstrings(Object.entries(params).flat()), Buffer.from([0])]);
  const out = Buffer.allocUnsafe(8 + body.length);
  out.writeInt32BE(8 + body.length, 0);
  out.writeInt32BE(PROTOCOL_3_0, 4);
  body.copy(out, 8);
  return out;
}
