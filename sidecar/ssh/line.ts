// Reconstructs the shell line an agent types into a PTY, for the command guard at Enter. Best
// effort: it models what a line editor does with printable bytes, backspace, ^U, ^W and ^C, and skips
// bracketed-paste markers. Anything that edits the line in a way it cannot see (cursor and history
// keys, tab completion, other escape sequences, other control bytes) marks the line uncertain; the
// session refuses uncertain lines when command rules exist (docs/security.md, "SSH").

const ESC = 0x1b;

export interface Line {
  text: string;
  uncertain: boolean;
  /** The line outgrew the limit; its start was dropped. */
  truncated: boolean;
}

export class LineTracker {
  private bytes: number[] = [];
  private uncertain = false;
  private truncated = false;
  /** 0: text; 1: after ESC; 2: inside CSI (ESC [); 3: after ESC O. */
  private esc = 0;
  private csi = '';
  private readonly maxBytes: number;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /** Feeds buf[from..]; returns the index of the Enter byte (\r or \n) that ends a line, or -1. */
  feed(buf: Buffer, from = 0): number {
    for (let i = from; i < buf.length; i++) {
      const b = buf[i]!;
      if (this.esc === 1) {
        if (b === 0x5b) {
          this.esc = 2;
          this.csi = '';
        } else if (b === 0x4f) this.esc = 3;
        else {
          this.esc = 0;
          this.uncertain = true; // Alt-<key>: word motions and the like.
        }
        continue;
      }
      if (this.esc === 2) {
        if (b >= 0x40 && b <= 0x7e) {
          this.esc = 0;
          const seq = this.csi + String.fromCharCode(b);
          // Bracketed paste start/end: the pasted bytes are plain text.
          if (seq !== '200~' && seq !== '201~') this.uncertain = true;
        } else this.csi += String.fromCharCode(b);
        continue;
      }
      if (this.esc === 3) {
        this.esc = 0;
        this.uncertain = true;
        continue;
      }
      if (b === 0x0d || b === 0x0a) return i;
      if (b === ESC) this.esc = 1;
      else if (b === 0x7f || b === 0x08) this.backspace();
      else if (b === 0x15 || b === 0x03) this.clear();
      else if (b === 0x17) this.deleteWord();
      else if (b < 0x20) {
        // ^A ^E ^K ^R ^Y tab...: the line editor does something this tracker does not model.
        if (b !== 0x04 || this.bytes.length > 0) this.uncertain = true;
      } else {
        if (this.bytes.length >= this.maxBytes) {
          this.bytes.shift();
          this.truncated = true;
        }
        this.bytes.push(b);
      }
    }
    return -1;
  }

  /** The line so far (at Enter), and a fresh one for what follows. */
  take(): Line {
    const line = {
      text: Buffer.from(this.bytes).toString('utf8'),
      uncertain: this.uncertain,
      truncated: this.truncated,
    };
    this.clear();
    return line;
  }

  private clear(): void {
    this.bytes = [];
    this.uncertain = false;
    this.truncated = false;
  }

  private backspace(): void {
    // One character: drop UTF-8 continuation bytes, then the lead byte.
    while (this.bytes.length > 0 && (this.bytes[this.bytes.length - 1]! & 0xc0) === 0x80) this.bytes.pop();
    this.bytes.pop();
  }

  private deleteWord(): void {
    while (this.bytes.length > 0 && this.bytes[this.bytes.length - 1] === 0x20) this.bytes.pop();
    while (this.bytes.length > 0 && this.bytes[this.bytes.length - 1] !== 0x20) this.bytes.pop();
  }
}
