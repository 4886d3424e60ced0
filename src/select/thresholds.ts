// Per-tag thresholds for `pred --thresholds FILE.csv`: the CSV that `eval --per-tag` writes, using its
// P = R column (each tag's threshold where its precision equals its recall), or one with a `threshold`
// column, as a taught model's FILE.thresholds.csv holds (each tag's best F1 on the holdout).
import { parse } from 'csv-parse/sync';
import { UsageError } from '../util/errors.js';
import { readInput } from '../util/fsx.js';

export const PR_COLUMN = 'threshold_p_eq_r';
/** The column of a taught model's thresholds file (src/teach/), read in preference to PR_COLUMN. */
export const THRESHOLD_COLUMN = 'threshold';

/** The thresholds by tag; a tag listed twice (the last row wins) or unknown to the model gets a warning. */
export async function readTagThresholds(
  file: string,
  known: ReadonlySet<string>,
  warn: (line: string) => void,
): Promise<Map<string, number>> {
  const where = JSON.stringify(file);
  let rows: Record<string, string>[];
  try {
    rows = parse(await readInput(file, 'a per-tag CSV written by `eval --per-tag` for --thresholds'), {
      bom: true,
      columns: true,
      skip_empty_lines: true,
    });
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`Expected CSV in ${where} but it does not parse: ${(err as Error).message}`);
  }
  if (rows.length === 0)
    throw new UsageError(
      `Expected per-tag thresholds (rows of tag,${PR_COLUMN} as \`eval --per-tag\` writes) in ${where} but it has none`,
    );
  const col = THRESHOLD_COLUMN in rows[0]! ? THRESHOLD_COLUMN : PR_COLUMN;
  if (!('tag' in rows[0]!) || !(col in rows[0]!)) {
    throw new UsageError(
      `Expected columns tag and ${PR_COLUMN} (as \`eval --per-tag\` writes) or ${THRESHOLD_COLUMN} in ${where} but found ${Object.keys(rows[0]!).join(', ')}`,
    );
  }
  const out = new Map<string, number>();
  rows.forEach((r, i) => {
    if (r[col] === '' || r[col] === undefined) return; // a tag without positives has none
    const t = Number(r[col]);
    if (!(t >= 0 && t <= 1))
      throw new UsageError(
        `Expected a threshold between 0 and 1 in ${where} row ${i + 2} but received ${JSON.stringify(r[col])}`,
      );
    if (out.has(r.tag!))
      warn(`${where} row ${i + 2}: ${JSON.stringify(r.tag)} is listed again; this row's threshold is used`);
    else if (!known.has(r.tag!)) warn(`${where} row ${i + 2}: the model has no tag ${JSON.stringify(r.tag)}`);
    out.set(r.tag!, t);
  });
  return out;
}
