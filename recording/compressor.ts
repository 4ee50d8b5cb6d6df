// One long-lived zstd stream per recorder: each segment is one zstd frame, ended with a
// ZSTD_e_end flush. Reusing the stream keeps one compression context for the process's life
// instead of allocating one per segment in the thread pool (which grows the C heap's arenas).
import { constants, createZstdCompress, type ZstdCompress } from 'node:zlib';

export class Compressor {
  private readonly level: number;
  private stream: ZstdCompress | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private output: Buffer[] = [];
  private failure: Error | undefined;

  constructor(level: number) {
    this.level = level;
  }

  private open(): ZstdCompress {
    if (this.stream && !this.failure) return this.stream;
    this.failure = undefined;
    const s = createZstdCompress({
      params: { [constants.ZSTD_c_compressionLevel]: this.level, [constants.ZSTD_c_checksumFlag]: 1 },
    });
    s.on('data', (chunk: Buffer) => this.output.push(chunk));
    s.on('error', (err) => {
      this.failure = err;
    });
    this.stream = s;
    return s;
  }

  /** Compresses the chunks as one complete zstd frame. Calls are served one at a time, in order. */
  compress(chunks: readonly Buffer[]): Promise<Buffer> {
    const run = () =>
      new Promise<Buffer>((resolve, reject) => {
        const s = this.open();
        this.output = [];
        for (const c of chunks) s.write(c);
        s.flush(constants.ZSTD_e_end, () => {
          if (this.failure) {
            reject(this.failure);
            return;
          }
          const out = this.output.length === 1 ? this.output[0]! : Buffer.concat(this.output);
          this.output = [];
          resolve(out);
        });
      });
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => {});
    return result;
  }

  close(): void {
    this.stream?.destroy();
    this.stream = undefined;
  }
}
