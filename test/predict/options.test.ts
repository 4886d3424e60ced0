// pred's option parsing against the defaults it must keep: a WD model given only some thresholds keeps
// the web UI tagger's other defaults (general 0.35, character 0.85) instead of letting every tag pass.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { presetDocs } from '../../src/contracts/contract-doc.js';
import { selectOptionsFrom } from '../../src/select/options.js';
import { predDefaults, type PredArgs } from '../../src/select/pred-spec.js';
import { selectTags } from '../../src/select/select.js';
import { CATEGORY, type TagInfo } from '../../src/data/tags.js';

const TAGS = ['1girl', 'smile', 'hatsune_miku', 'kagamine_rin', 'rating:general'];
const CATS = [0, 0, 4, 4, 9];
const PROBS = [0.9, 0.4, 0.9, 0.3, 0.8];
const wdDoc = (await presetDocs()).get('wd')!;
const wd: TagInfo = { tags: TAGS, categories: CATS, source: 'test', thresholds: wdDoc.thresholds };
const base: PredArgs = predDefaults();
const chosen = async (over: Partial<PredArgs>): Promise<string[]> =>
  selectTags(PROBS, TAGS, CATS, await selectOptionsFrom({ ...base, ...over }, wd, () => undefined)).map((t) => t.tag);

test('a WD model given only --general-threshold keeps the character default 0.85, and the reverse', async () => {
  assert.deepEqual((await chosen({})).sort(), ['1girl', 'hatsune_miku', 'rating:general', 'smile']);
  // Only the general threshold: kagamine_rin (0.3) stays out under the character default.
  assert.deepEqual((await chosen({ generalThreshold: 0.5 })).sort(), ['1girl', 'hatsune_miku', 'rating:general']);
  // Only the character threshold: smile (0.4) stays in under the general default 0.35.
  assert.deepEqual((await chosen({ characterThreshold: 0.2 })).sort(), [
    '1girl',
    'hatsune_miku',
    'kagamine_rin',
    'rating:general',
    'smile',
  ]);
  const opts = await selectOptionsFrom({ ...base, categoryThreshold: 'copyright=0.6' }, wd, () => undefined);
  assert.equal(opts.threshold, 0.35);
  assert.equal(opts.categoryThresholds?.get(CATEGORY.character), 0.85);
  // MCut over general tags keeps the character default; --threshold covers every category without its own.
  assert.ok(!(await chosen({ mcut: 'general' })).includes('kagamine_rin'));
  assert.deepEqual((await chosen({ threshold: 0.25 })).sort(), [...TAGS].sort());
});
