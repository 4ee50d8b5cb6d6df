// Names of the ssh gateway's own rules, as policy.blocked events record them.
/** The built-in rules of the ssh gateway, as recorded in policy.blocked. */
export const SSH_RULES = {
  hostKey: 'upstream-host-key',
  forwarding: 'ssh-forwarding',
  channel: 'ssh-channel',
  env: 'ssh-env',
  uncertainLine: 'shell-line-uncertain',
} as const;
