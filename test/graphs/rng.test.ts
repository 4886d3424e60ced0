// The seeded generator's bulk dropout draw equals drawing one number at a time.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../training/rng.js';

test('fillKeep draws what next() < rate draws, value for value, and leaves the same state', () => {
  for (const seed of [0, 7, 2 ** 31 - 1])
    for (const rate of [0, 1e-9, 0.3, 0.5, 0.999999, 1, 2 ** -32, 1 - 2 ** -32]) {
      const bulk = new Rng(seed);
      const one = new Rng(seed);
      const got = bulk.fillKeep(new Uint8Array(4099), rate);
      const want = Uint8Array.from({ length: 4099 }, () => (one.next() < rate ? 0 : 1));
      assert.deepEqual(got, want, `seed ${seed}, rate ${rate}`);
      assert.deepEqual(bulk.state(), one.state(), `state after, seed ${seed}, rate ${rate}`);
    }
  // A threshold exactly at a drawn value: u / 2³² < rate must be false when rate = u / 2³².
  const probe = new Rng(3);
  const u = new Rng(3).uint32();
  assert.deepEqual(probe.fillKeep(new Uint8Array(1), u / 4294967296), Uint8Array.of(1));
  assert.deepEqual(new Rng(3).fillKeep(new Uint8Array(1), (u + 1) / 4294967296), Uint8Array.of(0));
});
