export * from './context.ts';
export * from './frontend.ts';
export * from './gateway.ts';
export { raiseStatement } from './session.ts';
export * from './upstream.ts';
