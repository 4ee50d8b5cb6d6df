#!/usr/bin/env node
// chaperone-init: applies the capture rules of this pod: rendered here from the inputs the webhook
// put into the pod (env CHAPERONE_CAPTURE), or as rendered by the webhook (env
// CHAPERONE_IPTABLES_V4 / CHAPERONE_IPTABLES_V6, or --ipv4-file/--ipv6-file). Any failure exits
// non-zero, so the pod never starts without capture.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { applyFamily, type Family, ipv6Enabled } from './apply.ts';
import { rulesFromCaptureEnv } from './capture.ts';
import { ENV } from './env.ts';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'ipv4-file': { type: 'string' },
      'ipv6-file': { type: 'string' },
      'iptables-prefix': { type: 'string', default: '' },
    },
  });
  const capture = process.env[ENV.capture];
  const rendered =
    capture && !values['ipv4-file'] && !values['ipv6-file'] ? rulesFromCaptureEnv(capture) : undefined;
  const ipv4 =
    rendered?.ipv4 ??
    (values['ipv4-file'] ? await readFile(values['ipv4-file'], 'utf8') : process.env[ENV.ipv4]);
  const ipv6 =
    rendered?.ipv6 ??
    (values['ipv6-file'] ? await readFile(values['ipv6-file'], 'utf8') : process.env[ENV.ipv6]);
  if (!ipv4 || !ipv6) {
    throw new Error(
      `no rules: set ${ENV.capture}, or ${ENV.ipv4} and ${ENV.ipv6} (or --ipv4-file and --ipv6-file)`,
    );
  }
  const prefix = values['iptables-prefix'];
  const families: Family[] = [
    { name: 'ipv4', iptables: `${prefix}iptables`, restore: `${prefix}iptables-restore`, rules: ipv4 },
  ];
  if (await ipv6Enabled()) {
    families.push({
      name: 'ipv6',
      iptables: `${prefix}ip6tables`,
      restore: `${prefix}ip6tables-restore`,
      rules: ipv6,
    });
  } else {
    // No IPv6 in this kernel/namespace: no IPv6 traffic can leave either.
    process.stderr.write('chaperone-init: this kernel has no IPv6 (EAFNOSUPPORT); only IPv4 rules applied\n');
  }
  for (const family of families) {
    await applyFamily(family);
    process.stdout.write(`chaperone-init: ${family.name} capture rules applied\n`);
  }
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    process.stderr.write(`chaperone-init: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
