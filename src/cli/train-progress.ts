// `train`'s progress on the terminal: a bar per round, with the whole run's ETA from the mean duration of
// the rounds done so far; log lines printed without breaking it.
import type { TrainHooks } from '../train/run.js';
import { fmtTime, startProgress, type Io, type Progress } from './io.js';

/** A progress bar per round, with the whole run's ETA from the mean duration of the rounds done so far. */
export function roundProgress(
  io: Io,
  rounds: number,
): { hooks: Pick<TrainHooks, 'roundStart' | 'step' | 'roundEnd'>; log: (line: string) => void; stop: () => void } {
  let bar: Progress | undefined;
  const roundTimes: number[] = [];
  let roundStarted = 0;
  let runEta = '';
  return {
    hooks: {
      roundStart: (round, _shard, images) => {
        if (roundStarted) roundTimes.push((performance.now() - roundStarted) / 1000);
        roundStarted = performance.now();
        const mean = roundTimes.length ? roundTimes.reduce((a, b) => a + b, 0) / roundTimes.length : 0;
        runEta = mean ? ` | run ETA ${fmtTime(mean * (rounds - round + 1))}` : '';
        bar = startProgress(io, `round ${round}/${rounds}`, images);
      },
      step: (done, loss) => bar?.update(done, `loss ${loss.toFixed(4)}${runEta}`),
      roundEnd: (line) => {
        bar?.stop();
        bar = undefined;
        io.out(line);
      },
    },
    log: (line) => (bar ? bar.log(line) : io.err(line)),
    stop: () => bar?.stop(),
  };
}
