// The capture rules' inputs as chaperone-init receives them (env CHAPERONE_CAPTURE): parsed strictly
// (addresses must be IP addresses, ports and IDs integers in range, no unknown field), then rendered
// by the same pure renderIptablesRules the webhook ran at admission to check them, so the rules
// applied are exactly those the validating webhook compared, by their inputs.
import { isIP } from 'node:net';
import { z } from 'zod';
import { type IptablesOptions, type IptablesRules, renderIptablesRules } from '../iptables.ts';

const port = z.number().int().min(1).max(65535);
const id = z
  .number()
  .int()
  .min(0)
  .max(2 ** 32 - 2);
const ip = z.string().refine((s) => isIP(s) !== 0, 'an IP address');

export const captureSchema = z.strictObject({
  sidecarUid: id,
  sidecarGid: id,
  dnsResolvers: z.array(ip).min(1),
  redirects: z.array(z.strictObject({ host: ip, port, listenPort: port })),
  adminPort: port,
  inboundPorts: z.array(z.strictObject({ port, protocol: z.enum(['TCP', 'UDP']) })),
});

/** The env value for these inputs (the webhook writes it, chaperone-init reads it). */
export function captureEnv(options: IptablesOptions): string {
  const { sidecarUid, sidecarGid, dnsResolvers, redirects, adminPort, inboundPorts } = options;
  return JSON.stringify({
    sidecarUid,
    sidecarGid,
    dnsResolvers,
    redirects: redirects.map(({ host, port, listenPort }) => ({ host, port, listenPort })),
    adminPort,
    inboundPorts: inboundPorts.map(({ port, protocol }) => ({ port, protocol })),
  });
}

/** The rules for an env value; throws on anything but exactly the inputs captureEnv writes. */
export function rulesFromCaptureEnv(value: string): IptablesRules {
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch (error) {
    throw new Error(`capture inputs are not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  const parsed = captureSchema.safeParse(json);
  if (!parsed.success) throw new Error(`capture inputs refused: ${z.prettifyError(parsed.error)}`);
  return renderIptablesRules(parsed.data);
}
