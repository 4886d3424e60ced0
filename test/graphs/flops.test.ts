// FLOP accounting: the config formula against VGG16's published conv cost and against the graph as
// ONNX Runtime ran it (multiply-adds counted from the shapes in its profile), inference and train step.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { multiplyAdds, readProfile } from '../../src/runtime/profile.js';
import { inferenceFlops, layerFlops, trainStepFlops } from '../../training/flops.js';
import { batchFeeds, gradcheckConfig, randomBatch, randomParams } from '../../training/gradcheck.js';
import { buildInferenceGraph, buildTrainGraph } from '../../training/graphs.js';
import { defaultConfig, io, type ModelConfig } from '../../training/params.js';
import { tempDir } from '../helpers.js';

test('full VGG16 at 224: 15.35 G multiply-adds in the convs; 8 frozen convs make a train step ≈ 48 GFLOP', () => {
  const c = defaultConfig({ tags: 5000 });
  const convMacs = layerFlops(c)
    .filter((l) => l.layer.startsWith('conv'))
    .reduce((a, l) => a + l.forward / 2, 0);
  assert.ok(Math.abs(convMacs / 15.35e9 - 1) < 0.003, `${convMacs}`);
  const head = 2 * (25088 * 5000 + 5000 * 5000);
  assert.ok(Math.abs(inferenceFlops(c) - (2 * convMacs + head)) < 1);
  // Backward: dW of convs 9–13, dX of convs 10–13 (conv 9 is the lowest trainable), both dense layers.
  const at = (side: number, ci: number, co: number): number => 2 * side * side * ci * co * 9;
  const dw = 2 * at(28, 512, 512) + 3 * at(14, 512, 512);
  const dx = at(28, 512, 512) + 3 * at(14, 512, 512);
  assert.ok(Math.abs(trainStepFlops(c) - (inferenceFlops(c) + dw + dx + 2 * head)) < 1);
  assert.ok(trainStepFlops(c) > 47e9 && trainStepFlops(c) < 49e9, `${trainStepFlops(c) / 1e9}`);
  assert.equal(
    trainStepFlops({ ...c, freeze: 13 }),
    inferenceFlops(c) + 2 * head,
    "all convs frozen: the head's dW and dX (batch norm needs fc1's dX)",
  );
});

async function profiledFlops(
  c: ModelConfig,
  bytes: Uint8Array,
  feeds: Record<string, ort.Tensor>,
  n: number,
): Promise<number> {
  const dir = await tempDir();
  const s = await ort.InferenceSession.create(bytes, {
    graphOptimizationLevel: 'all',
    enableProfiling: true,
    profileFilePrefix: path.join(dir, 'p'),
  });
  await s.run(feeds);
  s.endProfiling();
  await s.release();
  const file = (await readdir(dir)).find((f) => f.endsWith('.json'))!;
  const runs = await readProfile(path.join(dir, file));
  assert.ok(runs.length > 20);
  return runs.reduce((a, r) => a + 2 * multiplyAdds(r), 0) / n;
}

for (const freeze of [0, 5, 13]) {
  test(`freeze ${freeze}: the formula equals the FLOPs of the graph as executed, inference and train step`, async (t) => {
    const c = gradcheckConfig({
      widths: [16, 16, 32, 32, 32, 48, 48, 48, 64, 64, 64, 64, 64],
      imageSize: 64,
      hidden: 24,
      tags: 7,
      freeze,
    });
    const params = randomParams(c, 1);
    const n = 3;
    const batch = randomBatch(c, n, 1);
    const infer = await profiledFlops(
      c,
      buildInferenceGraph(c, params).encode(),
      { [io.image]: new ort.Tensor('uint8', batch.images, [n, 64, 64, 3]) },
      n,
    );
    const train = await profiledFlops(c, buildTrainGraph(c).encode(), batchFeeds(c, batch, params, true), n);
    t.diagnostic(`inference ${infer} vs ${inferenceFlops(c)}; train ${train} vs ${trainStepFlops(c)}`);
    assert.equal(infer, inferenceFlops(c));
    assert.equal(train, trainStepFlops(c));
  });
}
