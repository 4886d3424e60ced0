// What a tagger model tells about itself, checked before its numbers are used: our export's
// metadata_props (format, tags, categories, image size, padding, hidden width, precision), each field
// typed and in range, and the tag names of any model (ours or a foreign tags file): no control
// characters, which would reach a terminal or a caption as they are.
import type { PadRule } from '../data/images.js';
import { UsageError } from '../util/errors.js';
import { parseJson } from '../util/json.js';
import { checkTagNames } from '../data/tags.js';
import { INFERENCE_FORMAT } from '../../training/artifacts.js';

export interface TaggerMetadata {
  tags: string[];
  categories: number[];
  imageSize: number;
  pad: PadRule;
  /** Width of the `features` output; 0 for a model without one. */
  hidden: number;
  source: string;
  /** `int8` for a model from `export --int8`; `fp32` otherwise (foreign models included). */
  precision: 'fp32' | 'fp16' | 'int8';
}

export function parseTaggerMetadata(props: Map<string, string>, file: string): TaggerMetadata {
  const where = JSON.stringify(file);
  if (props.get('format') !== INFERENCE_FORMAT) {
    throw new UsageError(
      `Expected an alt-i2v-ort model (metadata format=${INFERENCE_FORMAT}) in ${where} but its metadata has ${props.has('format') ? `format=${props.get('format')}` : 'no format'}; export one with \`alt-i2v-ort export\`, or give --tags for a WD or DeepDanbooru model`,
    );
  }
  const missing = ['tags', 'categories', 'image_size', 'pad', 'hidden'].filter((k) => !props.has(k));
  if (missing.length) throw new UsageError(`Expected metadata ${missing.join(', ')} in ${where} but it is missing`);
  const bad = (field: string, what: string): UsageError =>
    new UsageError(`Expected ${what} in the metadata field ${field} of ${where} but it is not`);
  const json = (field: string): unknown => {
    try {
      return parseJson(props.get(field)!);
    } catch {
      throw bad(field, 'JSON');
    }
  };
  const tags = json('tags');
  if (!Array.isArray(tags) || tags.length === 0 || !tags.every((t) => typeof t === 'string'))
    throw bad('tags', 'a non-empty array of strings');
  const categories = json('categories');
  if (
    !Array.isArray(categories) ||
    categories.length !== tags.length ||
    !categories.every((c) => Number.isInteger(c) && c >= 0 && c < 1000)
  )
    throw bad('categories', `an array of ${tags.length} category ids (one per tag)`);
  const int = (field: string, min: number, max: number): number => {
    const v = Number(props.get(field));
    if (!Number.isInteger(v) || v < min || v > max) throw bad(field, `an integer between ${min} and ${max}`);
    return v;
  };
  const imageSize = int('image_size', 32, 4096);
  if (imageSize % 32 !== 0) throw bad('image_size', 'a multiple of 32');
  const pad = props.get('pad');
  if (pad !== 'center' && pad !== 'topleft') throw bad('pad', 'center or topleft');
  const precision = props.get('precision') ?? 'fp32';
  if (precision !== 'fp32' && precision !== 'fp16' && precision !== 'int8')
    throw bad('precision', 'fp32, fp16 or int8');
  checkTagNames(tags as string[], `the tags of ${where}`);
  return {
    tags: tags as string[],
    categories: categories as number[],
    imageSize,
    pad,
    hidden: int('hidden', 0, 1 << 20),
    source: props.get('source') ?? '',
    precision,
  };
}
