// Terminal sessions (SSH shell/exec/sftp, Kubernetes exec/attach): the payloads every gateway writes
// and every player/exporter reads. Bytes travel as base64 so a recording keeps them exactly.
// Timing comes from the RecordedEvent's monoNs/wallMs, not from the payload.
import { z } from 'zod';

export const TerminalKinds = {
  /** A channel opened (client): shell, exec of a command, a subsystem such as sftp, or an attach. */
  open: 'terminal.open',
  /** Bytes the agent sent (client). */
  input: 'terminal.input',
  /** Bytes the host sent (server), stdout or stderr. */
  output: 'terminal.output',
  /** The agent's terminal changed size (client). */
  resize: 'terminal.resize',
  /** The command or shell ended (server). */
  exit: 'terminal.exit',
  /** A file operation decoded from sftp or scp (internal). */
  file: 'terminal.file',
} as const;

const channel = z.string().min(1);
const size = z.number().int().min(0).max(10_000);

export const TerminalOpenSchema = z.object({
  channel,
  mode: z.enum(['shell', 'exec', 'subsystem', 'attach']),
  command: z.string().optional(),
  subsystem: z.string().optional(),
  pty: z.object({ term: z.string().optional(), cols: size, rows: size }).optional(),
  env: z.record(z.string(), z.string()).optional(),
});
export const TerminalDataSchema = z.object({
  channel,
  stream: z.enum(['stdin', 'stdout', 'stderr']),
  /** base64 of the bytes exactly as relayed (after masking, when the policy masks output). */
  data: z.string(),
  /** Output only: masking changed these bytes (ssh.maskOutput). */
  masked: z.boolean().optional(),
  /** Output only, with masking.keepOriginals: base64 of the bytes before masking. */
  original: z.string().optional(),
});
export const TerminalResizeSchema = z.object({ channel, cols: size, rows: size });
export const TerminalExitSchema = z.object({
  channel,
  code: z.number().int().optional(),
  signal: z.string().optional(),
});
export const TerminalFileSchema = z.object({
  channel,
  op: z.enum([
    'open',
    'read',
    'write',
    'close',
    'remove',
    'rename',
    'mkdir',
    'rmdir',
    'setstat',
    'upload',
    'download',
  ]),
  path: z.string(),
  toPath: z.string().optional(),
  /** Bytes moved by this operation (a whole file for upload/download). */
  bytes: z.number().int().min(0).optional(),
  /** SHA-256 (hex) of the whole file, for upload/download and for a handle read or written end to end. */
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  status: z.string().optional(),
});

export type TerminalOpen = z.infer<typeof TerminalOpenSchema>;
export type TerminalData = z.infer<typeof TerminalDataSchema>;
export type TerminalResize = z.infer<typeof TerminalResizeSchema>;
export type TerminalExit = z.infer<typeof TerminalExitSchema>;
export type TerminalFile = z.infer<typeof TerminalFileSchema>;

export const terminalPayloadSchemas: Record<string, z.ZodType> = {
  [TerminalKinds.open]: TerminalOpenSchema,
  [TerminalKinds.input]: TerminalDataSchema,
  [TerminalKinds.output]: TerminalDataSchema,
  [TerminalKinds.resize]: TerminalResizeSchema,
  [TerminalKinds.exit]: TerminalExitSchema,
  [TerminalKinds.file]: TerminalFileSchema,
};
