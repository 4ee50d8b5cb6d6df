// Public API of kubectl-plugin/: the `kubectl chaperone` program.
export { approveCommand } from './approvals.ts';
export { buildPlugin, type PluginIo, runPlugin } from './program.ts';
