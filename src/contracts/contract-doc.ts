// A model contract as data: how a foreign tagger wants its images and what its outputs and tags file
// are, one small JSON document per model family (src/contracts/presets/*.json, or a user's own with
// --contract). Every field is checked, with one line naming the file and the field; unknown fields are
// refused (a typo must not silently fall back to a default). docs/CONTRACTS.md describes the format.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TAG_FORMATS, type TagFormat } from './tag-files.js';
import { UsageError } from '../util/errors.js';
import { parseJson } from '../util/json.js';
import { readInput } from '../util/fsx.js';

export const CONTRACT_FORMAT = 'alt-i2v-ort contract 1';
export const LAYOUTS = ['NHWC', 'NCHW'] as const;
export const RESIZES = ['pad-then-resize', 'resize-then-pad', 'stretch'] as const;
export const FILTERS = ['bicubic', 'lanczos', 'bilinear'] as const;
export type Rgb = [number, number, number];

export interface ContractDoc {
  family: string;
  about: string;
  /** For --preset auto: the tags file names that identify the family. */
  tagsFiles: string[];
  input: {
    layout: (typeof LAYOUTS)[number];
    channels: 'rgb' | 'bgr';
    /** 255: pixels 0–255; 1: 0–1 (before mean and std). */
    scale: 1 | 255;
    mean: Rgb;
    std: Rgb;
    resize: (typeof RESIZES)[number];
    filter: (typeof FILTERS)[number];
    padColor: Rgb;
    /** null: the model's own input size. */
    size: number | null;
  };
  /** Which output holds the scores: by name, else by position (default 0). */
  output: { name: string | null; index: number; scores: 'probabilities' | 'logits' };
  tags: { file: string; format: TagFormat };
  /** The family's published default thresholds (character: its own), when it has them. */
  thresholds: { default: number; character?: number } | null;
}

/** The preset documents' folder: the source folder, from this module's place in dist/ (tsc copies no .json). */
const PRESET_DIR = fileURLToPath(new URL('../../../src/contracts/presets/', import.meta.url));

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

class Checker {
  constructor(private readonly where: string) {}
  fail(field: string, expected: string, got: unknown): never {
    throw new UsageError(`Expected ${expected} for ${field} in ${this.where} but received ${JSON.stringify(got)}`);
  }
  object(j: unknown, field: string, keys: readonly string[]): Json {
    if (!isObject(j)) this.fail(field, 'an object', j);
    for (const k of Object.keys(j))
      if (!keys.includes(k)) this.fail(`${field}.${k}`, `one of the fields ${keys.join(', ')}`, k);
    return j;
  }
  choice<T extends string | number>(v: unknown, field: string, choices: readonly T[]): T {
    if (!choices.includes(v as T)) this.fail(field, `one of ${choices.join(', ')}`, v);
    return v as T;
  }
  string(v: unknown, field: string): string {
    if (typeof v !== 'string' || v === '') this.fail(field, 'a non-empty string', v);
    return v;
  }
  /** A file beside the model: a plain name, no folder part (no /, \\, .., absolute path). */
  fileName(v: unknown, field: string): string {
    const name = this.string(v, field);
    if (/[/\\\0]/.test(name) || name === '.' || name === '..')
      this.fail(field, "a file name beside the model (no folder, no '..')", name);
    return name;
  }
  rgb(v: unknown, field: string, min: number, max: number, notZero = false): Rgb {
    if (
      !Array.isArray(v) ||
      v.length !== 3 ||
      !v.every((x) => typeof x === 'number' && x >= min && x <= max && (!notZero || x > 0))
    )
      this.fail(field, `3 numbers in [${min}, ${max}]${notZero ? ', none 0' : ''}`, v);
    return v as Rgb;
  }
  threshold(v: unknown, field: string): number {
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) this.fail(field, 'a number in [0, 1]', v);
    return v;
  }
}

const TOP = ['format', 'family', 'about', 'tagsFiles', 'input', 'output', 'tags', 'thresholds'];
const INPUT = ['layout', 'channels', 'scale', 'mean', 'std', 'resize', 'filter', 'padColor', 'size'];

/** A contract document from its parsed JSON, every field checked. */
export function parseContractDoc(j: unknown, where: string): ContractDoc {
  const c = new Checker(where);
  const top = c.object(j, 'the document', TOP);
  if (top.format !== CONTRACT_FORMAT) c.fail('format', JSON.stringify(CONTRACT_FORMAT), top.format);
  const inp = c.object(top.input, 'input', INPUT);
  const out = c.object(top.output, 'output', ['name', 'index', 'scores']);
  const tags = c.object(top.tags, 'tags', ['file', 'format']);
  if (!Array.isArray(top.tagsFiles)) c.fail('tagsFiles', 'a list of file names', top.tagsFiles);
  (top.tagsFiles as unknown[]).forEach((t, i) => c.fileName(t, `tagsFiles[${i}]`));
  const size = inp.size;
  if (size !== null && !(Number.isInteger(size) && (size as number) >= 8 && (size as number) <= 4096))
    c.fail('input.size', 'null (the model says) or an integer in [8, 4096]', size);
  if (out.name !== null) c.string(out.name, 'output.name');
  const index = out.index ?? 0;
  if (!Number.isInteger(index) || (index as number) < 0 || (index as number) > 64)
    c.fail('output.index', 'an integer in [0, 64]', out.index);
  let thresholds: ContractDoc['thresholds'] = null;
  if (top.thresholds !== null && top.thresholds !== undefined) {
    const t = c.object(top.thresholds, 'thresholds', ['default', 'character']);
    thresholds = { default: c.threshold(t.default, 'thresholds.default') };
    if (t.character !== undefined) thresholds.character = c.threshold(t.character, 'thresholds.character');
  }
  return {
    family: c.string(top.family, 'family'),
    about: typeof top.about === 'string' ? top.about : '',
    tagsFiles: top.tagsFiles as string[],
    input: {
      layout: c.choice(inp.layout, 'input.layout', LAYOUTS),
      channels: c.choice(inp.channels, 'input.channels', ['rgb', 'bgr'] as const),
      scale: c.choice(inp.scale, 'input.scale', [1, 255] as const),
      mean: c.rgb(inp.mean, 'input.mean', -1000, 1000),
      std: c.rgb(inp.std, 'input.std', 1e-6, 1000, true),
      resize: c.choice(inp.resize, 'input.resize', RESIZES),
      filter: c.choice(inp.filter, 'input.filter', FILTERS),
      padColor: c.rgb(inp.padColor, 'input.padColor', 0, 255),
      size: size as number | null,
    },
    output: {
      name: out.name as string | null,
      index: index as number,
      scores: c.choice(out.scores, 'output.scores', ['probabilities', 'logits'] as const),
    },
    tags: { file: c.fileName(tags.file, 'tags.file'), format: c.choice(tags.format, 'tags.format', TAG_FORMATS) },
    thresholds,
  };
}

/** A user's contract file (--contract). */
export async function readContractFile(file: string): Promise<ContractDoc> {
  const bytes = await readInput(file, 'a contract JSON file for --contract');
  let j: unknown;
  try {
    j = parseJson(bytes.toString('utf8'));
  } catch (err) {
    throw new UsageError(`Expected JSON in ${JSON.stringify(file)} but it does not parse: ${(err as Error).message}`);
  }
  return parseContractDoc(j, JSON.stringify(file));
}

/** The preset names, for --preset's choices: the files in contracts/ (listed once, at startup). */
export const PRESET_NAMES: readonly string[] = readdirSync(PRESET_DIR)
  .filter((n) => n.endsWith('.json'))
  .map((n) => n.slice(0, -5))
  .sort();

let presets: Map<string, ContractDoc> | undefined;

/** The shipped presets by family name (each file is named as its family). */
export async function presetDocs(): Promise<Map<string, ContractDoc>> {
  if (presets) return presets;
  const out = new Map<string, ContractDoc>();
  for (const name of PRESET_NAMES) {
    const doc = await readContractFile(path.join(PRESET_DIR, `${name}.json`));
    out.set(doc.family, doc);
  }
  presets = out;
  return out;
}
