/**
 * A progress bar on stderr for long copies and hashes. On a TTY it redraws one line (at most every
 * 100 ms); elsewhere it prints a plain line at each quarter so logs stay readable; disabled, it does
 * nothing. `done()` always leaves the cursor on a fresh line.
 */
import { formatBytes, formatRate } from './output.js';

export interface ProgressOptions {
  label: string;
  total: number;
  stream?: NodeJS.WriteStream | { isTTY?: boolean; columns?: number; write(s: string): boolean };
  /** Default: true. */
  enabled?: boolean;
  now?: () => number;
}

export class ProgressBar {
  readonly #label: string;
  readonly #total: number;
  readonly #stream: NonNullable<ProgressOptions['stream']>;
  readonly #enabled: boolean;
  readonly #tty: boolean;
  readonly #now: () => number;
  readonly #start: number;
  #lastDraw = 0;
  #lastQuarter = 0;
  #done = 0;
  #finished = false;

  constructor(opts: ProgressOptions) {
    this.#label = opts.label;
    this.#total = Math.max(0, opts.total);
    this.#stream = opts.stream ?? process.stderr;
    this.#enabled = opts.enabled ?? true;
    this.#tty = this.#stream.isTTY === true;
    this.#now = opts.now ?? (() => performance.now());
    this.#start = this.#now();
  }

  /** Reports `done` bytes out of the total. */
  update(done: number): void {
    if (!this.#enabled || this.#finished) return;
    this.#done = Math.min(done, this.#total);
    const t = this.#now();
    if (this.#tty) {
      if (t - this.#lastDraw < 100 && this.#done < this.#total) return;
      this.#lastDraw = t;
      this.#stream.write(`\r${this.render(t)}\u001b[K`);
    } else {
      const q = this.#total === 0 ? 4 : Math.floor((this.#done / this.#total) * 4);
      if (q > this.#lastQuarter && q < 4) {
        this.#lastQuarter = q;
        this.#stream.write(`${this.render(t)}\n`);
      }
    }
  }

  /** The bar as text (exposed for tests). */
  render(t = this.#now()): string {
    const frac = this.#total === 0 ? 1 : this.#done / this.#total;
    const cols = Math.max(10, Math.min(40, ((this.#stream as { columns?: number }).columns ?? 80) - 60));
    const filled = Math.round(frac * cols);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(cols - filled)}`;
    const pct = `${(frac * 100).toFixed(0).padStart(3)}%`;
    return `${this.#label} ${bar} ${pct} ${formatBytes(this.#done)}/${formatBytes(this.#total)} ${formatRate(this.#done, t - this.#start)}`;
  }

  /** Final draw and newline. */
  done(): void {
    if (!this.#enabled || this.#finished) return;
    this.#finished = true;
    this.#done = this.#total;
    const line = this.render();
    this.#stream.write(this.#tty ? `\r${line}\u001b[K\n` : `${line}\n`);
  }
}
