// `export --fp16`: the inference model with its convolutions and GEMMs in float16, loaded by `pred`
// like any model, its probabilities within 2e-3 of the float32 export's and its metadata saying fp16.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { TaggerModel } from '../../src/model/tagger.js';
import { encodeInferenceModel } from '../../training/artifacts.js';
import { gradcheckConfig, randomParams } from '../../training/gradcheck.js';
import { Rng } from '../../training/rng.js';
import { cli, tempDir } from '../helpers.js';

test('a float16 export gives the float32 export’s probabilities within 2e-3 and says fp16 in its metadata', async () => {
  const dir = await tempDir();
  const tags = Array.from({ length: 9 }, (_, i) => `tag_${i}`);
  const config = gradcheckConfig({ tags: tags.length, hidden: 12 });
  const params = randomParams(config, 5);
  const meta = { tags, categories: tags.map(() => 0), pad: 'center' as const, source: 'test' };
  const files = { fp32: path.join(dir, 'm32.onnx'), fp16: path.join(dir, 'm16.onnx') };
  await writeFile(files.fp32, encodeInferenceModel(config, params, meta));
  await writeFile(files.fp16, encodeInferenceModel(config, params, { ...meta, fp16: true }));
  const heard: string[] = [];
  const onChoice = (line: string): number => heard.push(line);
  const [a, b] = [await TaggerModel.load(files.fp32, { onChoice }), await TaggerModel.load(files.fp16, { onChoice })];
  try {
    // On the CPU a float16 export runs, slowly: said once, for it alone.
    assert.equal(heard.length, 1, heard.join('\n'));
    assert.match(heard[0]!, /^warning: .*m16\.onnx is a float16 export, for GPUs: on the CPU/);
    assert.equal(a.meta.precision, 'fp32');
    assert.equal(b.meta.precision, 'fp16');
    const rng = new Rng(2);
    const n = 6;
    const s = config.imageSize;
    const images = Uint8Array.from({ length: n * s * s * 3 }, () => rng.uint32() & 255);
    const [pa, pb] = [await a.run(images, n), await b.run(images, n)];
    let max = 0;
    for (let i = 0; i < pa.probs.length; i++) max = Math.max(max, Math.abs(pa.probs[i]! - pb.probs[i]!));
    assert.ok(max < 2e-3, `max |Δp| ${max}`);
    assert.ok(max > 0, 'the float16 model computes in float16');
  } finally {
    await a.release();
    await b.release();
  }
  assert.throws(
    () =>
      encodeInferenceModel(config, params, { ...meta, fp16: true, int8: { ranges: {} as never, images: 1, from: '' } }),
    /int8 or fp16, not both/,
  );
  const r = await cli('export', dir, '--out', path.join(dir, 'x.onnx'), '--int8', '--fp16');
  assert.equal(r.code, 2);
  assert.match(r.err.join('\n'), /Expected --int8 or --fp16, not both/);
});
