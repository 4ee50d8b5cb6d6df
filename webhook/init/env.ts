/** Env variables through which the webhook hands chaperone-init its rules. */
export const ENV = { ipv4: 'CHAPERONE_IPTABLES_V4', ipv6: 'CHAPERONE_IPTABLES_V6' } as const;
