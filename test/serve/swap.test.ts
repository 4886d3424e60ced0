// Swapping the served model (issue 42, item 3): requests in flight finish on the model they started
// with, new ones go to the new model, and the old model is released after the last request holding it
// is answered, not before; the server's admission and counts go on across the swap.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { TaggerModel } from '../../src/model/tagger.js';
import { buildServer } from '../../src/serve/app.js';
import { solid, tempDir, tinyModel } from '../helpers.js';

const dir = await tempDir();
const OLD = await tinyModel(path.join(dir, 'old.onnx'), ['old_a', 'old_b'], [0, 0]);
const NEW = await tinyModel(path.join(dir, 'new.onnx'), ['new_a', 'new_b', 'new_c'], [0, 0, 0], 5);
const png = await solid(24, 24, [10, 200, 30]).png().toBuffer();
const OPTS = { name: 'm', batch: 2, maxWaitMs: 1, queue: 16, timeoutMs: 10_000, bodyLimit: 2 ** 20, maxPixels: 1e6 };

/** Call `seen` when `model` is released (then release it). */
function onRelease(model: TaggerModel, seen: () => void): void {
  const release = model.release.bind(model);
  model.release = async () => {
    seen();
    await release();
  };
}

test('a swap: requests in flight answered by the old model, new ones by the new, the old released after its last request', async () => {
  const old = await TaggerModel.load(OLD);
  const events: string[] = [];
  onRelease(old, () => events.push('old released'));
  // Requests wait up to 400 ms for others to batch with: three are in flight when the swap comes.
  const app = await buildServer(old, { ...OPTS, batch: 8, maxWaitMs: 400 });
  const tag = async (): Promise<string[]> => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/tag?threshold=0&rating=all',
      headers: { 'content-type': 'image/png' },
      payload: png,
    });
    assert.equal(r.statusCode, 200, r.body);
    events.push('answered');
    return Object.values(r.json().images[0].tags as Record<string, { tag: string }[]>)
      .flat()
      .map((t) => t.tag)
      .sort();
  };
  const inflight = [tag(), tag(), tag()];
  while (app.served.current.queued < 3) await new Promise((r) => setTimeout(r, 5));
  await app.served.swap(await TaggerModel.load(NEW));
  events.push('swapped');
  assert.deepEqual(events, ['swapped']); // three requests hold the old model: not released
  const answers = await Promise.all(inflight);
  assert.deepEqual(
    answers,
    [0, 1, 2].map(() => ['old_a', 'old_b']),
  );
  assert.deepEqual(events.sort(), ['answered', 'answered', 'answered', 'old released', 'swapped']);
  assert.deepEqual(await tag(), ['new_a', 'new_b', 'new_c']);
  const model = (await app.inject({ url: '/v1/model' })).json();
  assert.equal(model.tags.length, 3);
  const health = (await app.inject({ url: '/healthz' })).json();
  assert.equal(health.images, 4); // counted across the swap
  await app.close();
});

test('a swap with nothing in flight releases the old model at once', async () => {
  const old = await TaggerModel.load(OLD);
  let released = false;
  onRelease(old, () => (released = true));
  const app = await buildServer(old, OPTS);
  await app.served.swap(await TaggerModel.load(NEW));
  assert.ok(released);
  await app.close();
});
