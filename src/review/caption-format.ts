// How the review page reads and writes a dataset's captions: as `pred --format caption` writes them,
// in the chosen --caption-style with its separator, extension and per-tag spelling (underscores or
// spaces, escaped brackets). The page works in tag keys (underscores, as tags.csv spells them); a tag
// the caption already holds keeps its own text when the caption is written again.
import { captionItemKey, captionItems, DEFAULT_CAPTION, displayTag } from '../captions/ours.js';
import { checkCaptionExt } from '../captions/caption-file.js';
import { sdRemoveUnderscore, strippedSeparator } from '../captions/sd-scripts.js';
import { DEFAULT_UNDERSCORE_EXCLUDES, webuiTagText } from '../captions/webui.js';
import type { CaptionStyle, PredArgs } from '../select/pred-spec.js';
import { tagKey } from '../select/select.js';

/** The flags of pred's caption format that the review page follows (PRED_OPTIONS declares them). */
export const REVIEW_CAPTION_FLAGS = [
  'caption-style',
  'separator',
  'caption-ext',
  'underscores',
  'escape-brackets',
  'remove-underscore',
] as const;

export type CaptionFormatArgs = Partial<
  Pick<PredArgs, 'captionStyle' | 'separator' | 'captionExt' | 'underscores' | 'escapeBrackets' | 'removeUnderscore'>
>;

export interface CaptionItem {
  key: string;
  text: string;
}

export interface CaptionFormat {
  style: CaptionStyle;
  /** The caption file's extension, with its dot. */
  ext: string;
  /**
   * A caption file's items in order, each once (the first of a key): split on the separator, or where
   * the caption has none on whitespace, as `train` and `teach` read captions (src/data/scan.ts).
   */
  items(text: string): CaptionItem[];
  /** How the style writes a tag (a key) that the caption does not hold yet. */
  textOf(key: string): string;
  /** The key an item's text reads back as among others; null when it would split (a separator, a line break). */
  keyOf(text: string): string | null;
  /** The caption file's whole text for these items' texts. */
  fileText(texts: readonly string[]): string;
}

export function captionFormat(a: CaptionFormatArgs): CaptionFormat {
  const style = a.captionStyle ?? 'ours';
  // The web UI tagger always joins with ", " and ends without a newline; the others end with one.
  const separator = style === 'webui' ? ', ' : (a.separator ?? DEFAULT_CAPTION.separator);
  const textOf =
    style === 'sd-scripts'
      ? (key: string) => (a.removeUnderscore ? sdRemoveUnderscore(key) : key)
      : style === 'webui'
        ? (key: string) =>
            webuiTagText(key, {
              replaceUnderscore: !a.underscores,
              underscoreExcludes: DEFAULT_UNDERSCORE_EXCLUDES,
              escape: a.escapeBrackets ?? false,
            })
        : (key: string) =>
            displayTag(key, 1, {
              ...DEFAULT_CAPTION,
              underscores: a.underscores ?? false,
              escapeBrackets: a.escapeBrackets ?? false,
            });
  // What an existing caption is split on: as pred's styles split one they append to.
  const split = style === 'sd-scripts' ? strippedSeparator(separator) : separator.trim() || ',';
  return {
    style,
    ext: checkCaptionExt(a.captionExt ?? '.txt'),
    items: (text) => {
      const seen = new Set<string>();
      const body = text.replace(/^\uFEFF/, '').normalize('NFC');
      // Without the separator, tags apart by whitespace (booru style), as the dataset reader reads them.
      const items = captionItems(body.includes(split) ? body : body.replace(/\s+/g, '\n'), split);
      return items.filter((it) => !seen.has(it.key) && seen.add(it.key));
    },
    textOf: (key) => textOf(tagKey(key)),
    keyOf: (text) => (text.includes(split) || /[\r\n]/.test(text) ? null : captionItemKey(text.trim())),
    fileText: (texts) =>
      texts.length === 0 ? '' : style === 'webui' ? texts.join(separator) : `${texts.join(separator)}\n`,
  };
}
