/**
 * Env variables through which the webhook hands chaperone-init its capture rules: `capture`, the
 * rules' inputs (IptablesOptions as JSON, a few hundred bytes) that chaperone-init renders with the
 * same renderIptablesRules; or, as before, the rendered rules themselves (`ipv4`, `ipv6`, about 3 KB
 * in every pod spec, which cost the apiserver more CPU per create than the webhook does).
 */
export const ENV = {
  capture: 'CHAPERONE_CAPTURE',
  ipv4: 'CHAPERONE_IPTABLES_V4',
  ipv6: 'CHAPERONE_IPTABLES_V6',
} as const;
