// A node:test reporter for the flake detector: one JSON line per finished test (not per suite),
// with its full name (file > describe > test), outcome and duration.
import type { TestEvent } from 'node:test/reporters';

/** One finished test, as written to a run's JSON lines and read back by run.ts. */
export interface Finished {
  file: string;
  name: string;
  outcome: 'pass' | 'fail' | 'skip';
  ms: number;
  error?: string;
}

export default async function* flakeReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  // Names of the open describe/test blocks per file, by nesting level (events of one file come in
  // order; files may interleave).
  const stacks = new Map<string, string[]>();
  for await (const event of source) {
    if (event.type !== 'test:start' && event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const data = event.data as {
      name: string;
      nesting: number;
      file?: string;
      skip?: string | boolean;
      todo?: string | boolean;
      details?: { type?: string; duration_ms?: number; error?: unknown };
    };
    const file = data.file ?? '(no file)';
    const stack = stacks.get(file) ?? [];
    stacks.set(file, stack);
    if (event.type === 'test:start') {
      stack.length = data.nesting;
      stack[data.nesting] = data.name;
      continue;
    }
    if (data.details?.type === 'suite') continue;
    const path = [...stack.slice(0, data.nesting), data.name].join(' > ');
    const finished: Finished = {
      file,
      name: path,
      outcome: event.type === 'test:fail' ? 'fail' : data.skip || data.todo ? 'skip' : 'pass',
      ms: data.details?.duration_ms ?? 0,
    };
    if (event.type === 'test:fail') {
      const error = data.details?.error as { cause?: { message?: string }; message?: string } | undefined;
      finished.error = String(error?.cause?.message ?? error?.message ?? 'failed').split('\n')[0];
    }
    yield `${JSON.stringify(finished)}\n`;
  }
}
