// The review page's Teach (issue 42, item 3): `teach` run in the background on the dataset under
// review, its tags read from the captions as the page writes them (caption-format.ts), with its phase
// and progress to poll, and each taught tag's holdout AP beside the AP of the model served before it
// (scored on the same holdout images; null for a tag that model lacks). One run at a time; the merged
// model and its tags file are written where `out` says (next to the dataset's images by default).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { categoryOf, formatTagsCsv } from '../data/tags.js';
import { isHoldout } from '../data/shards.js';
import { averagePrecision } from '../metrics/metrics.js';
import type { LoadOptions } from '../model/tagger.js';
import { teach, TEACH_DEFAULTS, teachWorkFor } from '../teach/teach.js';
import { exportTaught } from '../teach/export-taught.js';
import { readRunConfig } from '../train/run-config.js';
import { messageOf } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import type { ReviewSet } from './review-set.js';

export type TeachPhase = 'choosing tags' | 'embedding' | 'training' | 'comparing';

export interface TaughtTag {
  tag: string;
  /** Positives in the holdout and in training. */
  positives: number;
  trainPositives: number;
  ap: number | null;
  /** The AP of the model served before, on the same holdout images; null when it lacks the tag (or the holdout has no positive). */
  previousAp: number | null;
  /** Whether the model served before has the tag. */
  inPrevious: boolean;
  f1: number | null;
  threshold: number | null;
}

export interface TeachStatus {
  state: 'idle' | 'running' | 'done' | 'failed';
  phase: TeachPhase | null;
  /** Progress within the phase: images embedded, or rounds trained (of at most `total`). */
  done: number;
  total: number;
  /** What teach said, the last lines. */
  log: string[];
  error: string | null;
  result: {
    model: string;
    tagsFile: string;
    thresholdsFile: string | null;
    holdoutImages: number;
    tags: TaughtTag[];
    /** Whether the server now serves this model. */
    swapped: boolean;
    /** The taught tags the merged model holds: all, or those kept by `keepOnly`. */
    kept: string[];
  } | null;
}

export interface TeachJobOptions {
  set: ReviewSet;
  /** The model the head is taught over: the one `serve --model` named, whatever is served now. */
  base: { model: string; load: LoadOptions };
  out: string;
  modelBatch: number;
  threads: number;
}

/** The model served now, to compare with: its tags and its scores of the image at an index of the set. */
export interface PreviousModel {
  tags: readonly string[];
  scoresOf(i: number): Promise<Float32Array>;
}

/** A run asked for while one runs. */
export class TeachBusy extends Error {}

const LOG_LINES = 50;

export class TeachJob {
  private s: TeachStatus = { state: 'idle', phase: null, done: 0, total: 0, log: [], error: null, result: null };

  constructor(readonly o: TeachJobOptions) {}

  get status(): TeachStatus {
    return this.s;
  }

  /** The finished run's result, marked served. */
  markSwapped(): void {
    if (this.s.result) this.s.result.swapped = true;
  }

  /**
   * Write the finished run's merged model again with only `tags` of its taught tags (a relearned tag
   * left out keeps the base's output; a new one left out is not in the model).
   */
  async keepOnly(tags: readonly string[]): Promise<void> {
    const r = this.s.result;
    if (this.s.state !== 'done' || !r || !this.runDir) throw new TeachBusy('no finished teach run to choose tags of');
    await exportTaught(this.runDir, await readRunConfig(this.runDir), this.o.out, { keep: tags });
    r.kept = [...tags];
  }

  private runDir?: string;

  /** Start a run (the tags the captions call for, or `chosen`); resolves when it has ended. */
  start(chosen: readonly string[] | undefined, previous: PreviousModel): Promise<void> {
    if (this.s.state === 'running') throw new TeachBusy('a teach run is under way; wait for it to end');
    this.s = { state: 'running', phase: 'choosing tags', done: 0, total: 0, log: [], error: null, result: null };
    return this.run(chosen, previous).catch((err) => {
      this.s = { ...this.s, state: 'failed', error: messageOf(err) };
    });
  }

  private say(line: string): void {
    this.s.log = [...this.s.log, line].slice(-LOG_LINES);
  }

  private async run(chosen: readonly string[] | undefined, previous: PreviousModel): Promise<void> {
    const { set, base, out } = this.o;
    let tags: string | undefined;
    if (chosen) {
      const work = teachWorkFor(out);
      await mkdir(work, { recursive: true });
      tags = path.join(work, 'chosen-tags.csv');
      await writeFileAtomic(
        tags,
        formatTagsCsv(chosen.map((name) => ({ name, category: categoryOf(name), count: 0 }))),
      );
    }
    const r = await teach({
      dataset: set.dir,
      model: base.model,
      load: base.load,
      tags,
      out,
      minCount: TEACH_DEFAULTS.minCount,
      relearnBelow: TEACH_DEFAULTS.relearnBelow,
      hidden: TEACH_DEFAULTS.hidden,
      batch: TEACH_DEFAULTS.batch,
      modelBatch: this.o.modelBatch,
      threads: this.o.threads,
      tagsOf: (e) => set.tagsOfFile(e.file),
      info: (l) => this.say(l),
      warn: (l) => this.say(l),
      embedProgress: {
        onStart: ({ toEmbed }) => Object.assign(this.s, { phase: 'embedding', done: 0, total: toEmbed }),
        onProgress: (done) => (this.s.done = done),
      },
      train: {
        roundStart: (round) => Object.assign(this.s, { phase: 'training', done: round, total: TEACH_DEFAULTS.rounds }),
      },
    });
    this.runDir = r.runDir;
    Object.assign(this.s, { phase: 'comparing', done: 0, total: 0 });
    const holdout = r.exported.holdout;
    const before = await previousAp(
      set,
      previous,
      (holdout?.tags ?? []).map((t) => t.tag),
    );
    this.s = {
      ...this.s,
      state: 'done',
      phase: null,
      result: {
        model: out,
        tagsFile: r.exported.tagsFile,
        thresholdsFile: r.exported.thresholdsFile ?? null,
        holdoutImages: holdout?.images ?? 0,
        tags: (holdout?.tags ?? []).map((t) => ({
          tag: t.tag,
          positives: t.positives,
          trainPositives: t.trainPositives,
          ap: t.ap,
          previousAp: before.get(t.tag) ?? null,
          inPrevious: previous.tags.includes(t.tag),
          f1: t.f1,
          threshold: t.threshold,
        })),
        swapped: false,
        kept: r.exported.taught,
      },
    };
  }
}

/**
 * The previous model's AP of each of `tags` it has, on the holdout images teach held out (the same
 * split by name, the captioned images only); an image it cannot score is left out.
 */
async function previousAp(set: ReviewSet, previous: PreviousModel, tags: string[]): Promise<Map<string, number>> {
  const cols = tags.map((t) => previous.tags.indexOf(t));
  const scores: number[][] = tags.map(() => []);
  const labels: number[][] = tags.map(() => []);
  if (cols.every((c) => c < 0)) return new Map();
  for (const [i, img] of set.images.entries()) {
    if (!isHoldout(img.name, TEACH_DEFAULTS.holdout)) continue;
    const have = await set.tagsOfFile(img.file).catch(() => null);
    const probs = have && (await previous.scoresOf(i).catch(() => null));
    if (!have || !probs) continue;
    cols.forEach((c, j) => {
      if (c < 0) return;
      scores[j]!.push(probs[c]!);
      labels[j]!.push(have.includes(tags[j]!) ? 1 : 0);
    });
  }
  const out = new Map<string, number>();
  cols.forEach((c, j) => {
    const ap = c < 0 ? null : averagePrecision(scores[j]!, labels[j]!);
    if (ap !== null) out.set(tags[j]!, ap);
  });
  return out;
}
