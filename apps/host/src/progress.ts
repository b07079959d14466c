/** A one-line progress bar with rate and ETA, drawn only on a terminal. */

export interface ProgressSnapshot {
  readonly done: number;
  readonly total: number | undefined;
  readonly elapsedMs: number;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${String(m).padStart(2, '0')}:${rest}`;
}

/** Pure: the text of one progress line for a terminal `width` columns wide. */
export function renderProgressLine(label: string, snap: ProgressSnapshot, width: number): string {
  const seconds = snap.elapsedMs / 1000;
  const rate = seconds > 0 ? snap.done / seconds : 0;
  const rateText = `${formatBytes(Math.round(rate))}/s`;
  if (snap.total === undefined || snap.total <= 0) {
    return `${label} ${formatBytes(snap.done)} ${rateText}`.slice(0, width);
  }
  const fraction = Math.min(1, snap.done / snap.total);
  const eta = rate > 0 ? (snap.total - snap.done) / rate : Number.NaN;
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  const tail = ` ${percent} ${formatBytes(snap.done)}/${formatBytes(snap.total)} ${rateText} ETA ${formatDuration(eta)}`;
  const barWidth = Math.max(10, Math.min(40, width - label.length - tail.length - 3));
  const filled = Math.round(fraction * barWidth);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]`;
  return `${label} ${bar}${tail}`.slice(0, width);
}

export interface ProgressOutput {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(text: string): unknown;
}

export class ProgressBar {
  private done = 0;
  private lastDraw = 0;
  private readonly started = performance.now();
  private readonly enabled: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number | undefined,
    private readonly out: ProgressOutput = process.stderr,
    /** Redraws at most this often: a 64 MiB copy must not print 1000 lines' worth. */
    private readonly intervalMs = 100,
  ) {
    this.enabled = out.isTTY === true;
  }

  advance(bytes: number): void {
    this.done += bytes;
    const now = performance.now();
    if (this.enabled && now - this.lastDraw >= this.intervalMs) {
      this.lastDraw = now;
      this.draw(now);
    }
  }

  /** Draws the final state and moves to a new line. */
  finish(): void {
    if (!this.enabled) return;
    this.draw(performance.now());
    this.out.write('\n');
  }

  /** Clears the line (on failure, so the error message starts clean). */
  clear(): void {
    if (this.enabled) this.out.write('\r\x1b[K');
  }

  private draw(now: number): void {
    const snap = { done: this.done, total: this.total, elapsedMs: now - this.started };
    // A pty without a size (script, some CI runners) reports 0 columns.
    const width = this.out.columns !== undefined && this.out.columns > 0 ? this.out.columns : 80;
    this.out.write(`\r${renderProgressLine(this.label, snap, width)}\x1b[K`);
  }
}
