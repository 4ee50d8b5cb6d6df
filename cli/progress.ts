// Progress bars for long downloads and verifications (cli-progress): drawn on stderr and only when
// stderr is a terminal, so pipes, `--json` consumers and CI logs never see them.
import { Presets, SingleBar } from 'cli-progress';
import type { Io } from './commands/shared.ts';

export interface Progress {
  tick(by?: number): void;
  stop(): void;
}

const NONE: Progress = { tick() {}, stop() {} };

export function progress(io: Io, label: string, total: number): Progress {
  if (!io.errIsTTY || total < 2) return NONE;
  const bar = new SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} {eta_formatted}`,
      stream: process.stderr,
      clearOnComplete: true,
      hideCursor: true,
    },
    Presets.shades_classic,
  );
  bar.start(total, 0);
  return {
    tick: (by = 1) => bar.increment(by),
    stop: () => bar.stop(),
  };
}
