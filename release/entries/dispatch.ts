// One bundle, two programs: `chaperone` (the auditors' CLI) and `kubectl-chaperone` (the kubectl
// plugin), chosen by the name the program was started as, busybox style. A single executable
// copied or linked as kubectl-chaperone is the plugin; the npm package's bin scripts name it.
import { basename } from 'node:path';

export function programName(argv0: string, script: string | undefined): string {
  for (const candidate of [basename(argv0), basename(script ?? '')]) {
    if (candidate.startsWith('kubectl-chaperone') || candidate.startsWith('kubectl_chaperone'))
      return 'kubectl-chaperone';
  }
  return 'chaperone';
}

export function start(name: string): void {
  if (name === 'kubectl-chaperone') void import('../../kubectl-plugin/main.ts');
  else void import('../../cli/main.ts');
}
