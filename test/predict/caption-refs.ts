// Independent references for caption-styles.test.ts, written from the two programs' source, line by
// line, in their own terms (Python lists, insert(0), str.split, dicts in insertion order):
// - sd-scripts v0.9.1, finetune/tag_images_by_wd14_tagger.py: main() (tag lists, character expand,
//   remove_underscore, tag_replacement, undesired and always-first lists), run_batch() (per image) and
//   the --frequency_tags print;
// - toriato/stable-diffusion-webui-wd14-tagger 99bf7d8: Interrogator.postprocess_tags (interrogator.py),
//   on_interrogate's batch branch (ui.py), split_str (utils.py), the web UI's re_special `([\\()])`.
// They share no code with src/.

/** Python's str.strip() for the ASCII whitespace these tests use. */
const strip = (s: string): string => s.replace(/^[ \t\n\r\f\v]+|[ \t\n\r\f\v]+$/g, '');

export interface SdArgs {
  thresh?: number;
  general_threshold?: number;
  character_threshold?: number;
  remove_underscore?: boolean;
  undesired_tags?: string;
  tag_replacement?: string;
  character_tags_first?: boolean;
  always_first_tags?: string;
  use_rating_tags?: boolean;
  use_rating_tags_as_last_tag?: boolean;
  caption_separator?: string;
  append_tags?: boolean;
  character_tag_expand?: boolean;
}

/** sd-scripts v0.9.1 over images in order: each image's caption file text, and the frequency print. */
export function sdScriptsReference(
  rows: readonly [string, string][],
  args: SdArgs,
  images: readonly { prob: readonly number[]; existing?: string }[],
): { captions: string[]; frequencies: string[] } {
  const thresh = args.thresh ?? 0.35;
  const generalThreshold = args.general_threshold ?? thresh;
  const characterThreshold = args.character_threshold ?? thresh;
  const captionSeparator = args.caption_separator ?? ', ';
  let ratingTags = rows.filter((r) => r[1] === '9').map((r) => r[0]);
  let generalTags = rows.filter((r) => r[1] === '0').map((r) => r[0]);
  let characterTags = rows.filter((r) => r[1] === '4').map((r) => r[0]);
  if (args.character_tag_expand) {
    characterTags.forEach((tag, i) => {
      if (tag.endsWith(')')) {
        const tags = tag.split('(');
        let characterTag = tags.slice(0, -1).join('(');
        if (characterTag.endsWith('_')) characterTag = characterTag.slice(0, -1);
        const seriesTag = tags[tags.length - 1]!.split(')').join('');
        characterTags[i] = characterTag + captionSeparator + seriesTag;
      }
    });
  }
  if (args.remove_underscore) {
    const ru = (tags: string[]): string[] => tags.map((tag) => (tag.length > 3 ? tag.split('_').join(' ') : tag));
    ratingTags = ru(ratingTags);
    generalTags = ru(generalTags);
    characterTags = ru(characterTags);
  }
  if (args.tag_replacement !== undefined) {
    const escaped = args.tag_replacement.split('\\,').join('@@@@').split('\\;').join('####');
    for (const tagReplacement of escaped.split(';')) {
      const tags = tagReplacement.split(',');
      if (tags.length !== 2) throw new Error('tag replacement must be in the format of `source,target`');
      const [source, target] = tags.map((t) => t.split('@@@@').join(',').split('####').join(';')) as [string, string];
      if (generalTags.includes(source)) generalTags[generalTags.indexOf(source)] = target;
      else if (characterTags.includes(source)) characterTags[characterTags.indexOf(source)] = target;
      else if (ratingTags.includes(source)) ratingTags[ratingTags.indexOf(source)] = target;
    }
  }
  const freq = new Map<string, number>();
  const stripped = strip(captionSeparator);
  const undesired = new Set(
    (args.undesired_tags ?? '')
      .split(stripped)
      .map(strip)
      .filter((t) => t !== ''),
  );
  const alwaysFirst =
    args.always_first_tags === undefined ? null : args.always_first_tags.split(stripped).filter((t) => strip(t) !== '');
  const captions: string[] = [];
  for (const { prob, existing } of images) {
    const combined: string[] = [];
    prob.slice(4).forEach((p, i) => {
      if (i < generalTags.length && p >= generalThreshold) {
        const tagName = generalTags[i]!;
        if (!undesired.has(tagName)) {
          freq.set(tagName, (freq.get(tagName) ?? 0) + 1);
          combined.push(tagName);
        }
      } else if (i >= generalTags.length && p >= characterThreshold) {
        const tagName = characterTags[i - generalTags.length]!;
        if (!undesired.has(tagName)) {
          freq.set(tagName, (freq.get(tagName) ?? 0) + 1);
          if (args.character_tags_first) combined.splice(0, 0, tagName);
          else combined.push(tagName);
        }
      }
    });
    if (args.use_rating_tags || args.use_rating_tags_as_last_tag) {
      const ratings = prob.slice(0, 4);
      const foundRating = ratingTags[ratings.indexOf(Math.max(...ratings))]!;
      if (!undesired.has(foundRating)) {
        freq.set(foundRating, (freq.get(foundRating) ?? 0) + 1);
        if (args.use_rating_tags) combined.splice(0, 0, foundRating);
        else combined.push(foundRating);
      }
    }
    for (const tag of alwaysFirst ?? []) {
      if (combined.includes(tag)) {
        combined.splice(combined.indexOf(tag), 1);
        combined.splice(0, 0, tag);
      }
    }
    let tagText = combined.join(captionSeparator);
    if (args.append_tags && existing !== undefined) {
      const existingContent = existing.replace(/^\n+/, '').replace(/\n+$/, '');
      const existingTags = existingContent
        .split(stripped)
        .map(strip)
        .filter((t) => t !== '');
      const newTags = combined.filter((t) => !existingTags.includes(t));
      tagText = [...existingTags, ...newTags].join(captionSeparator);
    }
    captions.push(tagText + '\n');
  }
  const sorted = [...freq].sort((a, b) => b[1] - a[1]);
  return { captions, frequencies: ['Tag frequencies:', ...sorted.map(([t, f]) => `${t}: ${f}`)] };
}

export interface WebuiArgs {
  threshold?: number;
  additional_tags?: string;
  exclude_tags?: string;
  sort_by_alphabetical_order?: boolean;
  add_confident_as_weight?: boolean;
  replace_underscore?: boolean;
  replace_underscore_excludes?: string;
  escape_tag?: boolean;
  action_on_conflict?: 'ignore' | 'copy' | 'append' | 'prepend';
  remove_duplicated_tag?: boolean;
}

const KAOMOJI_SETTING =
  '0_0, (o)_(o), +_+, +_-, ._., <o>_<o>, <|>_<|>, =_=, >_<, 3_3, 6_9, >_o, @_@, ^_^, o_o, u_u, x_x, |_|, ||_||';

const splitStr = (s: string): string[] =>
  s
    .split(',')
    .filter((x) => x !== '')
    .map(strip);

/** Python's repr of a float in (1e-4, 1e16): the shortest digits that round-trip, `.0` on integers. */
const pyRepr = (x: number): string => {
  if (!(x > 1e-4 && x < 1e16)) throw new Error(`the reference has no repr for ${x}`);
  return Number.isInteger(x) ? `${x}.0` : String(x);
};

/** The web UI tagger's batch mode for one image: the file text written, or null when it skips the image. */
export function webuiReference(
  rows: readonly [string, string][],
  prob: readonly number[],
  a: WebuiArgs,
  existing?: string,
): string | null {
  const output: string[] = [];
  if (existing !== undefined) {
    output.push(strip(existing));
    if ((a.action_on_conflict ?? 'ignore') === 'ignore') return null;
  }
  let tags = new Map<string, number>();
  rows.slice(4).forEach(([name], i) => tags.set(name, prob[i + 4]!));
  for (const t of splitStr(a.additional_tags ?? '')) tags.set(t, 1.0);
  const byName = a.sort_by_alphabetical_order ?? false;
  const items = [...tags].sort((x, y) => (byName ? (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0) : y[1] - x[1]));
  const exclude = splitStr(a.exclude_tags ?? '');
  tags = new Map(items.filter(([t, c]) => c >= (a.threshold ?? 0.35) && !exclude.includes(t)));
  const excludes = splitStr(a.replace_underscore_excludes ?? KAOMOJI_SETTING);
  const newTags = new Map<string, number>();
  for (const [tag, c] of tags) {
    let newTag = tag;
    if ((a.replace_underscore ?? true) && !excludes.includes(tag)) newTag = newTag.split('_').join(' ');
    if (a.escape_tag) newTag = newTag.replace(/([\\()])/g, '\\$1');
    if (a.add_confident_as_weight) newTag = `(${newTag}:${pyRepr(c)})`;
    newTags.set(newTag, c);
  }
  const plainTags = [...newTags.keys()].join(', ');
  const action = a.action_on_conflict ?? 'ignore';
  if (action === 'copy') output.splice(0, output.length, plainTags);
  else if (action === 'prepend') output.splice(0, 0, plainTags);
  else output.push(plainTags);
  if (a.remove_duplicated_tag) return [...new Set(output.join(',').split(',').map(strip))].join(', ');
  return output.join(', ');
}
