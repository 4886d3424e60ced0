// Where `pred`'s results go, by --format: lines on stdout (text, the seed's `NAME tag=… prob=…`; jsonl;
// csv), one JSON array at the end, or caption files beside the images (written as the captioner says,
// never replacing an image or another image's caption); and the run's tag frequencies as a CSV.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { captionTargets, checkCaptionsInside, saveCaption, type CaptionOutcome } from '../captions/caption-file.js';
import type { Captioner } from '../captions/style.js';
import type { PredictSink } from '../predict/predict-images.js';
import type { TagFrequency } from '../predict/tagging.js';
import type { TagScore } from '../select/select.js';
import { writeFileAtomic } from '../util/fsx.js';
import { openRowFile, type RowFile } from './row-file.js';
import { UsageError } from '../util/errors.js';

export const PRED_FORMATS = ['text', 'json', 'jsonl', 'csv', 'caption'] as const;

/** pred's CSV header. */
export const CSV_HEADER = stringify([['file', 'tag', 'prob', 'category']]).trimEnd();
export type PredFormat = (typeof PRED_FORMATS)[number];

export interface PredOutputOptions {
  format: PredFormat;
  captioner: Captioner;
  /** caption: the caption files' extension, and whether an image without tags may empty its caption. */
  captionExt: string;
  allowEmpty: boolean;
  /** Lines of the results (stdout), and notes and warnings (stderr). */
  out: (line: string) => void;
  /** jsonl and csv: the --out file the rows go to instead of `out` (its CSV header its own). */
  rows?: RowFile;
  err: (line: string) => void;
}

export interface PredOutput extends PredictSink {
  /** The JSON array, or the caption summary line. */
  end(): void;
  /** How the caption files went. */
  captions: Record<CaptionOutcome, number>;
  /** Whether a caption file was to be written (listFirst for predictImages). */
  listFirst: boolean;
  /** Whether an image is done already (--skip-done): its caption exists, or the --out file has its rows. Asked after `begin`. */
  isDone(file: string): boolean;
}

export function predOutput(o: PredOutputOptions): PredOutput {
  const json: { file: string; tags: TagScore[] }[] = [];
  const captions: Record<CaptionOutcome, number> = { written: 0, kept: 0, empty: 0, failed: 0 };
  let targets = new Map<string, string>();
  const { format, out, err, captioner, rows } = o;
  // An image without tags has no CSV row: nothing to write (a blank line would be no row either).
  const emit = async (line: string): Promise<void> => (rows ? (line ? rows.write(line) : undefined) : out(line));
  return {
    captions,
    listFirst: format === 'caption',
    isDone: (file) => (format === 'caption' ? existsSync(targets.get(file) ?? '') : (rows?.done.has(file) ?? false)),
    async begin(entries) {
      if (format === 'csv' && !rows) out(CSV_HEADER);
      if (format !== 'caption') return;
      targets = captionTargets(
        (entries ?? []).map((e) => e.file),
        o.captionExt,
        err,
      );
      await checkCaptionsInside(entries ?? [], targets);
    },
    async add({ file, tags, items }) {
      if (format === 'text') for (const s of tags) out(`${file} tag=${s.tag} prob=${s.prob.toFixed(4)}`);
      else if (format === 'jsonl') await emit(JSON.stringify({ file, tags }));
      else if (format === 'json') json.push({ file, tags });
      else if (format === 'csv')
        await emit(stringify(tags.map((s) => [file, s.tag, s.prob.toFixed(6), s.category])).trimEnd());
      else {
        const r = await saveCaption(targets.get(file)!, (existing) => captioner.fileText(items, existing), {
          overwrite: captioner.overwrite,
          merge: captioner.merge !== undefined,
          allowEmpty: o.allowEmpty,
        });
        captions[r.outcome]++;
        if (r.note) err(`warning: ${r.note}`);
      }
    },
    end() {
      if (format === 'json') out(JSON.stringify(json, null, 1));
      if (format === 'caption')
        err(
          `pred: captions written ${captions.written}, kept ${captions.kept}, empty ${captions.empty}, failed ${captions.failed}`,
        );
    },
  };
}

/** The run's tag counts as CSV (tag,count), most frequent first, ties by name, written atomically. */
export async function writeFrequency(file: string, frequency: TagFrequency): Promise<void> {
  await writeFileAtomic(path.resolve(file), stringify(frequency.rows(), { header: true, columns: ['tag', 'count'] }));
}

/**
 * The --out file of the row formats, opened (continued with --skip-done), or undefined without --out;
 * --out with another format, and --skip-done with neither captions nor --out, are refused.
 */
export async function predRows(
  format: PredFormat,
  out: string | undefined,
  skipDone: boolean,
  warn: (line: string) => void,
): Promise<RowFile | undefined> {
  if (out !== undefined && format !== 'jsonl' && format !== 'csv')
    throw new UsageError(
      `Expected --format jsonl or csv with --out (rows appended one at a time) but received --format ${format}`,
    );
  if (skipDone && format !== 'caption' && out === undefined)
    throw new UsageError(
      'Expected --format caption or --out FILE with --skip-done: what is done is a caption, or a row in that file',
    );
  if (out === undefined) return undefined;
  return openRowFile(out, format as 'jsonl' | 'csv', {
    header: format === 'csv' ? CSV_HEADER : undefined,
    resume: skipDone,
    warn,
  });
}
