// Where the CLI writes: stdout for results, stderr for warnings and progress. A progress bar
// (count, rate, ETA) on a terminal, plain lines every few seconds otherwise. Tests pass their own Io.
import cliProgress from 'cli-progress';

export interface Io {
  out(line: string): void;
  err(line: string): void;
  /** Whether stderr is a terminal (progress bars) or a log (plain lines). */
  readonly tty: boolean;
}

export const processIo: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  tty: Boolean(process.stderr.isTTY),
};

export interface Progress {
  /** Set the number done, with an optional short note (e.g. the current loss). */
  update(done: number, note?: string): void;
  /** Print a line without breaking the bar. */
  log(line: string): void;
  stop(): void;
}

/** Seconds as 42s or 3m07s ('?' when unknown). */
export const fmtTime = (s: number): string => {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
};

export function startProgress(io: Io, label: string, total: number, unit = 'img', intervalMs = 5000): Progress {
  const started = performance.now();
  const rate = (done: number): number => done / Math.max(1e-3, (performance.now() - started) / 1000);
  if (io.tty) {
    const multi = new cliProgress.MultiBar(
      {
        format: `${label} [{bar}] {value}/{total} | {rate} ${unit}/s | ETA {eta_formatted}{note}`,
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    const bar = multi.create(total, 0, { rate: '0.0', note: '' });
    return {
      update: (done, note) => bar.update(done, { rate: rate(done).toFixed(1), note: note ? ` | ${note}` : '' }),
      log: (line) => multi.log(`${line}\n`),
      stop: () => multi.stop(),
    };
  }
  let last = started;
  let lastDone = 0;
  let lastNote = '';
  const line = (done: number): string => {
    const r = rate(done);
    const pct = total > 0 ? ` (${((100 * done) / total).toFixed(1)}%)` : '';
    return `${label}: ${done}/${total}${pct}, ${r.toFixed(1)} ${unit}/s, ETA ${fmtTime((total - done) / r)}${lastNote ? `, ${lastNote}` : ''}`;
  };
  return {
    update: (done, note) => {
      lastDone = done;
      if (note) lastNote = note;
      const now = performance.now();
      if (now - last >= intervalMs) {
        last = now;
        io.err(line(done));
      }
    },
    log: (l) => io.err(l),
    stop: () => io.err(line(lastDone)),
  };
}
