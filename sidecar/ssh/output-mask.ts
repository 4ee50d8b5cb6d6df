// Masking of a terminal output stream (stdout or stderr of a shell or exec channel) with the
// policy's masking detectors, when the ssh target says `maskOutput`.
//
// Output arrives in SSH packets cut anywhere, so a card number may come in two. Every value the
// built-in detectors find (card numbers, IBANs, national ids, emails) is made of letters, digits and
// ` .@_+-`; the masker holds back the trailing run of such bytes of each chunk (when it holds a letter
// or digit, at most HOLD_MAX bytes) and masks it together with the next chunk. When no next chunk
// comes within `holdMs`, the held bytes go out on their own: a value split over two packets that
// arrive further apart than that (a program that prints half a number and sleeps) is not found, nor
// is a custom pattern whose match spans bytes outside that set across packets. Typed characters echo
// `holdMs` later with masking on.
import type { RowMasker } from '../policy/index.ts';

/** Longest held run: an email address is at most 254 bytes. */
export const HOLD_MAX = 320;

export interface MaskedChunk {
  /** What goes to the agent (and to the recording). */
  data: Buffer;
  /** The unmasked bytes, when masking changed something. */
  original?: Buffer;
}

function heldByte(b: number): boolean {
  return (
    (b >= 0x30 && b <= 0x39) ||
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x61 && b <= 0x7a) ||
    b === 0x20 ||
    b === 0x2e ||
    b === 0x40 ||
    b === 0x5f ||
    b === 0x2b ||
    b === 0x2d
  );
}

function alnum(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
}

/** Where the bytes to hold back start (data.length: nothing to hold). */
export function holdFrom(data: Buffer): number {
  let i = data.length;
  let letters = false;
  while (i > 0 && data.length - i < HOLD_MAX && heldByte(data[i - 1]!)) {
    i--;
    if (alnum(data[i]!)) letters = true;
  }
  return letters ? i : data.length;
}

export class OutputMasker {
  private tail: Buffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly row: RowMasker;
  private readonly emit: (chunk: MaskedChunk) => void;
  private readonly holdMs: number;

  constructor(row: RowMasker, emit: (chunk: MaskedChunk) => void, holdMs = 10) {
    this.row = row;
    this.emit = emit;
    this.holdMs = holdMs;
  }

  push(chunk: Buffer): void {
    clearTimeout(this.timer);
    const data = this.tail ? Buffer.concat([this.tail, chunk]) : chunk;
    const cut = holdFrom(data);
    this.tail = cut < data.length ? data.subarray(cut) : undefined;
    if (cut > 0) this.out(data.subarray(0, cut));
    if (this.tail) this.timer = setTimeout(() => this.flush(), this.holdMs).unref();
  }

  /** Sends what is held (at EOF, exit or when no more output came in time). */
  flush(): void {
    clearTimeout(this.timer);
    const tail = this.tail;
    this.tail = undefined;
    if (tail) this.out(tail);
  }

  close(): void {
    clearTimeout(this.timer);
    this.tail = undefined;
  }

  private out(bytes: Buffer): void {
    const r = this.row.maskRow([bytes]);
    if (r.maskedCells === 0) this.emit({ data: bytes });
    else this.emit({ data: r.values[0] ?? Buffer.alloc(0), original: bytes });
  }
}
