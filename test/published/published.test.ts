// Values others define, each pinned to its source in a test that names it, and checked on what the code
// does with it (not on the constant alone): Keras' Adam, BatchNormalization and Glorot-uniform defaults
// and the seed's Dropout 0.3; the WD14 web UI tagger's kaomoji list and sd-scripts' underscore rule;
// mAP as the macro mean of average precision over tags that have positives, by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { averagePrecision, evaluatePredictions } from '../../src/metrics/metrics.js';
import { DEFAULT_CAPTION, displayTag, KAOMOJI } from '../../src/captions/ours.js';
import { SD_SCRIPTS_DEFAULTS, SD_SCRIPTS_MODEL_DIR, SD_SCRIPTS_REPO_ID } from '../../src/captions/sd-scripts.js';
import { DEFAULT_UNDERSCORE_EXCLUDES, WEBUI_THRESHOLD } from '../../src/captions/webui.js';
import { PRED_OPTIONS } from '../../src/select/pred-spec.js';
import { batchFeeds, gradcheckConfig, randomBatch, randomParams } from '../../training/gradcheck.js';
import { ADAM, adamConstants, buildTrainGraph } from '../../training/graphs.js';
import { defaultConfig, initParams, io, numel, paramSpecs } from '../../training/params.js';
import { referenceConvFeatures } from '../../training/reference.js';
import { LOSS_SCALE_DEFAULTS, LossScaler } from '../../src/train/loss-scaler.js';

test("Keras' Adam defaults (keras.optimizers.Adam: learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-07)", () => {
  assert.deepEqual({ ...ADAM }, { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 });
  // The constants the step graph holds are those values rounded once to float32.
  assert.deepEqual(adamConstants(), [0.9, 0.1, 0.999, 0.001].map(Math.fround));
});

test("Keras' BatchNormalization defaults (momentum 0.99, epsilon 0.001) and the seed's Dropout(0.3), as the model is made", () => {
  const c = defaultConfig({ tags: 10 });
  assert.equal(c.bnMomentum, 0.99);
  assert.equal(c.bnEpsilon, 0.001);
  assert.equal(c.dropout, 0.3);
});

test("the train graph's BN running mean is Keras' update: 0.99 · old + 0.01 · batch mean (float64 reference)", async () => {
  const c = gradcheckConfig();
  const params = randomParams(c, 3);
  const batch = randomBatch(c, 4, 5);
  const session = await ort.InferenceSession.create(buildTrainGraph(c).encode());
  const out = await session.run(batchFeeds(c, batch, params, true));
  await session.release();
  const x = referenceConvFeatures(c, params, batch); // (N, F): the BN layer's input
  const f = x.length / batch.n;
  const old = params.get('bn.running_mean')!;
  const got = out[io.newParam('bn.running_mean')]!.data as Float32Array;
  for (let j = 0; j < f; j++) {
    let mean = 0;
    for (let i = 0; i < batch.n; i++) mean += x[i * f + j]! / batch.n;
    const want = 0.99 * old[j]! + 0.01 * mean;
    assert.ok(Math.abs(got[j]! - want) <= 1e-5 * Math.max(1, Math.abs(want)), `feature ${j}: ${got[j]} vs ${want}`);
  }
});

test("Keras' GlorotUniform: U(−limit, limit), limit = √(6 / (fan_in + fan_out)), fans of a conv kernel × its 3×3 field; zero biases, BN γ 1 β 0", () => {
  const c = defaultConfig({
    tags: 40,
    hidden: 64,
    widths: [8, 8, 16, 16, 24, 24, 24, 32, 32, 32, 32, 32, 32],
    imageSize: 64,
  });
  const params = initParams(c, 1);
  for (const s of paramSpecs(c)) {
    const w = params.get(s.name)!;
    assert.equal(w.length, numel(s.shape));
    if (s.name.endsWith('.bias') || s.name === 'bn.beta' || s.role === 'state') {
      if (s.name === 'bn.running_var')
        assert.ok(
          w.every((v) => v === 1),
          s.name,
        );
      else
        assert.ok(
          w.every((v) => v === 0),
          s.name,
        );
      continue;
    }
    if (s.name === 'bn.gamma') {
      assert.ok(
        w.every((v) => v === 1),
        s.name,
      );
      continue;
    }
    // Keras' fans: a dense kernel (in, out) [ours: (in, out) too]; a conv kernel (out, in, 3, 3): × 9.
    const [fanIn, fanOut] = s.shape.length === 4 ? [s.shape[1]! * 9, s.shape[0]! * 9] : [s.shape[0]!, s.shape[1]!];
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    const max = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const mean = w.reduce((a, v) => a + v, 0) / w.length;
    assert.ok(max <= limit, `${s.name}: max |w| ${max} within ${limit}`);
    assert.ok(max > 0.9 * limit, `${s.name}: max |w| ${max} reaches towards ${limit}`);
    assert.ok(Math.abs(mean) < (limit / Math.sqrt(w.length)) * 4, `${s.name}: mean ${mean}`);
  }
});

test('the WD14 web UI tagger\'s kaomoji list (toriato/stable-diffusion-webui-wd14-tagger, tagger/ui.py): its 19 faces keep "_"', () => {
  const SOURCE = [
    '0_0',
    '(o)_(o)',
    '+_+',
    '+_-',
    '._.',
    '<o>_<o>',
    '<|>_<|>',
    '=_=',
    '>_<',
    '3_3',
    '6_9',
    '>_o',
    '@_@',
    '^_^',
    'o_o',
    'u_u',
    'x_x',
    '|_|',
    '||_||',
  ];
  assert.deepEqual([...KAOMOJI].sort(), [...SOURCE].sort());
  for (const face of SOURCE) assert.equal(displayTag(face, 0.9, DEFAULT_CAPTION), face);
});

test("sd-scripts' underscore rule (tag_images_by_wd14_tagger.py --remove_underscore): only tags longer than 3 characters lose their underscores", () => {
  const shown = (tag: string): string => displayTag(tag, 0.9, DEFAULT_CAPTION);
  assert.equal(shown('a_b'), 'a_b');
  assert.equal(shown('^_-'), '^_-');
  assert.equal(shown('ab_c'), 'ab c');
  assert.equal(shown('long_hair'), 'long hair');
  assert.equal(shown('hatsune_miku_(cosplay)'), 'hatsune miku (cosplay)');
  assert.equal(displayTag('long_hair', 0.9, { ...DEFAULT_CAPTION, underscores: true }), 'long_hair');
});

test("sd-scripts v0.9.1's defaults (finetune/tag_images_by_wd14_tagger.py, setup_parser and DEFAULT_WD14_TAGGER_REPO) and the web UI tagger's threshold (tagger/ui.py)", () => {
  assert.equal(SD_SCRIPTS_DEFAULTS.thresh, 0.35); // --thresh, default=0.35; general/character fall back to it
  assert.equal(SD_SCRIPTS_DEFAULTS.captionSeparator, ', '); // --caption_separator, default=", "
  assert.equal(SD_SCRIPTS_DEFAULTS.captionExtension, '.txt'); // --caption_extension, default=".txt"
  // pred's own defaults for the flags it shares with sd-scripts are sd-scripts', so its command lines mean the same.
  assert.equal(PRED_OPTIONS.separator.default, SD_SCRIPTS_DEFAULTS.captionSeparator);
  assert.equal(PRED_OPTIONS['caption-ext'].default, SD_SCRIPTS_DEFAULTS.captionExtension);
  assert.equal(SD_SCRIPTS_MODEL_DIR, 'wd14_tagger_model'); // --model_dir, default="wd14_tagger_model"
  assert.equal(SD_SCRIPTS_REPO_ID, 'SmilingWolf/wd-v1-4-convnext-tagger-v2'); // DEFAULT_WD14_TAGGER_REPO
  assert.equal(WEBUI_THRESHOLD, 0.35); // gr.Slider(label='Threshold', ..., value=0.35)
  assert.deepEqual([...DEFAULT_UNDERSCORE_EXCLUDES].sort(), [...KAOMOJI].sort()); // the Excludes textbox's value
});

test('mAP by hand: the macro mean of AP over tags with positives; a tag without positives counts for nothing; ties rank negatives first', () => {
  // 4 images × 4 tags, row-major (image, tag).
  // tag 0: probs .9 .2 .6 .1, positives {0, 2}: ranked 0+, 2+, 1, 3 → AP = (1/1 + 2/2) / 2 = 1
  // tag 1: probs .1 .6 .7 .3, positives {1}: ranked 2, 1+ → AP = 1/2
  // tag 2: no positives → no AP, left out of the mean (not a 0, not a NaN)
  // tag 3: probs .5 .5 .4 .9, positives {0, 2}: ranked 3, then the tie 1 (negative first), 0+, 2+
  //        → AP = (1/3 + 2/4) / 2 = 5/12
  const probs = [0.9, 0.1, 0.3, 0.5, 0.2, 0.6, 0.2, 0.5, 0.6, 0.7, 0.8, 0.4, 0.1, 0.3, 0.4, 0.9];
  const labels = [1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0];
  // The one mAP `eval` and `train` report.
  const { map, perTag } = evaluatePredictions(probs, labels, 4, ['t0', 't1', 't2', 't3'], 0.5);
  const want = [1, 1 / 2, null, 5 / 12];
  perTag.forEach(({ ap }, j) =>
    assert.ok(ap === want[j] || (ap !== null && Math.abs(ap - want[j]!) < 1e-12), `tag ${j}: ${ap} vs ${want[j]}`),
  );
  assert.ok(Math.abs(map - (1 + 1 / 2 + 5 / 12) / 3) < 1e-12, `mAP ${map}`);
  assert.equal(averagePrecision([0.3, 0.2], [0, 0]), null);
});

test("PyTorch GradScaler's defaults (torch.amp.GradScaler: init_scale 2.0**16, growth_factor 2.0, backoff_factor 0.5, growth_interval 2000), as the scaler acts", () => {
  assert.deepEqual(
    { ...LOSS_SCALE_DEFAULTS },
    { initScale: 65536, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000 },
  );
  const s = new LossScaler();
  assert.equal(s.scale, 2 ** 16);
  for (let i = 0; i < 1999; i++) s.update(true);
  assert.equal(s.scale, 2 ** 16, 'growth_interval − 1 clean steps leave it');
  s.update(true);
  assert.equal(s.scale, 2 ** 17, 'the 2000th doubles it');
  s.update(false);
  assert.equal(s.scale, 2 ** 16, 'an inf halves it');
});
