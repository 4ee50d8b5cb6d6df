// Entry of the npm package's bundle: bin/chaperone.cjs and bin/kubectl-chaperone.cjs call main().
import { start } from './dispatch.ts';

export function main(name: 'chaperone' | 'kubectl-chaperone'): void {
  start(name);
}
