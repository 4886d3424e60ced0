// A taught model's own description (src/teach/): the merged ONNX file carries its base's contract, its
// tags with their categories, which of them were taught and the base's SHA-256 in one metadata entry,
// so it loads like its base with no tags file and no flag. Checked as any outside input is.
import { parseContractDoc, type ContractDoc } from '../contracts/contract-doc.js';
import type { ForeignChoice } from '../contracts/foreign.js';
import type { ContractOverrides } from '../contracts/contract.js';
import { checkTagNames } from '../data/tags.js';
import { UsageError } from '../util/errors.js';
import { parseJson } from '../util/json.js';

export const TAUGHT_KEY = 'alt_i2v_taught';
export const TAUGHT_FORMAT = 'alt-i2v-ort/taught';

export interface TaughtMeta {
  format: typeof TAUGHT_FORMAT;
  version: 1;
  /** The base model: its file name when merged and its modelSha256. */
  base: { file: string; sha256: string };
  /** The base's contract (absent where the base is an alt-i2v-ort model, whose own metadata says). */
  contract?: ContractDoc;
  overrides?: { channels?: 'rgb' | 'bgr'; scale?: number; padColor?: [number, number, number] };
  tags: string[];
  categories: number[];
  /** The taught tags (a subset of `tags`), and those of them that replaced a base tag of that name. */
  taught: string[];
  replaced: string[];
}

/** The taught description in `props`, checked; undefined when the model has none. */
export function parseTaught(props: Map<string, string>, file: string): TaughtMeta | undefined {
  const text = props.get(TAUGHT_KEY);
  if (text === undefined) return undefined;
  const where = `the metadata ${TAUGHT_KEY} of ${JSON.stringify(file)}`;
  const bad = (what: string): never => {
    throw new UsageError(`Expected ${what} in ${where} but it is not`);
  };
  let j: Partial<TaughtMeta>;
  try {
    j = parseJson(text) as Partial<TaughtMeta>;
  } catch {
    return bad('JSON');
  }
  if (j?.format !== TAUGHT_FORMAT || j.version !== 1) bad(`format ${TAUGHT_FORMAT} version 1`);
  if (typeof j.base?.file !== 'string' || !/^[0-9a-f]{64}$/.test(String(j.base?.sha256)))
    bad("the base model's file name and SHA-256");
  const tags = j.tags;
  if (!Array.isArray(tags) || tags.length === 0 || !tags.every((t) => typeof t === 'string')) bad('a list of tags');
  checkTagNames(tags!, where);
  const cats = j.categories;
  if (
    !Array.isArray(cats) ||
    cats.length !== tags!.length ||
    !cats.every((c) => Number.isInteger(c) && c >= 0 && c < 1000)
  )
    bad(`${tags!.length} category ids`);
  const names = new Set(tags);
  for (const k of ['taught', 'replaced'] as const)
    if (!Array.isArray(j[k]) || !j[k]!.every((t) => names.has(t))) bad(`${k}: a list of the model's tags`);
  const o = j.overrides ?? {};
  if (typeof o !== 'object' || (o.channels !== undefined && o.channels !== 'rgb' && o.channels !== 'bgr'))
    bad('overrides');
  if (o.scale !== undefined && o.scale !== 1 && o.scale !== 255) bad('overrides.scale of 1 or 255');
  if (
    o.padColor !== undefined &&
    !(
      Array.isArray(o.padColor) &&
      o.padColor.length === 3 &&
      o.padColor.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)
    )
  )
    bad('overrides.padColor as [R, G, B]');
  const contract = j.contract === undefined ? undefined : parseContractDoc(j.contract, where);
  return { ...(j as TaughtMeta), overrides: o, contract };
}

/** A foreign base's choice for a taught model: its contract and tags from the metadata, none from beside it. */
export function taughtChoice(t: TaughtMeta): ForeignChoice & { overrides: ContractOverrides } {
  return {
    doc: t.contract!,
    why: `taught model (${t.taught.length} taught tags over the base ${t.base.file}, SHA-256 ${t.base.sha256.slice(0, 12)}…)`,
    tagsFile: '',
    tags: { tags: t.tags, categories: t.categories },
    overrides: t.overrides ?? {},
  };
}
