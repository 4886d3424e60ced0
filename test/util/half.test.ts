// binary16 conversion against numpy's astype(np.float16) (an independent implementation): every half
// value back to float32, and float32 values around every rounding edge (ties, subnormals, overflow).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fromHalf, toHalf } from '../../src/onnx/half.js';
import { Rng } from '../../training/rng.js';

const PY = '/usr/bin/python3';
const hasNumpy = spawnSync(PY, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;
const skip = hasNumpy ? false : 'python3 with numpy not installed (apt-get install python3-numpy)';

/** numpy's conversion of the float32 bytes on stdin: their binary16 bits, and every half's float32 value. */
function numpy(values: Float32Array): { bits: Uint16Array; decoded: Float32Array } {
  const script =
    'import sys, numpy as np\n' +
    'x = np.frombuffer(sys.stdin.buffer.read(), dtype=np.float32)\n' +
    'sys.stdout.buffer.write(x.astype(np.float16).view(np.uint16).tobytes())\n' +
    'sys.stdout.buffer.write(np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32).tobytes())\n';
  const r = spawnSync(PY, ['-W', 'ignore', '-c', script], { input: Buffer.from(values.buffer) });
  assert.equal(r.status, 0, String(r.stderr));
  const out = r.stdout as Buffer;
  const copy = new Uint8Array(out).buffer;
  return {
    bits: new Uint16Array(copy, 0, values.length),
    decoded: new Float32Array(copy.slice(values.length * 2)),
  };
}

test('float32 → float16 → float32 matches numpy bit for bit, edges included', { skip }, () => {
  const rng = new Rng(7);
  const edges: number[] = [
    0,
    -0,
    1,
    -1,
    65504,
    65519.99,
    65520,
    1e9,
    -1e9,
    Infinity,
    -Infinity,
    NaN,
    2 ** -24,
    2 ** -25,
    2 ** -25 * 1.0001,
    3 * 2 ** -26,
    2 ** -14,
    2 ** -14 * (1 - 2 ** -11),
  ];
  // Every tie and near-tie: halfway between two halves, and one float32 ulp either side.
  for (let h = 0; h < 0x7c00; h += 97) {
    const mid = (fromHalf([h])[0]! + fromHalf([h + 1])[0]!) / 2;
    const f = new Float32Array([mid]);
    const u = new Uint32Array(f.buffer);
    edges.push(
      f[0]!,
      new Float32Array(new Uint32Array([u[0]! + 1]).buffer)[0]!,
      new Float32Array(new Uint32Array([u[0]! - 1]).buffer)[0]!,
    );
  }
  for (let i = 0; i < 20000; i++) edges.push((rng.next() * 2 - 1) * 2 ** rng.int(-30, 17));
  const values = Float32Array.from(edges);
  const ref = numpy(values);
  const ours = toHalf(values);
  const isNaN16 = (b: number): boolean => (b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0;
  for (let i = 0; i < values.length; i++) {
    if (isNaN16(ref.bits[i]!)) assert.ok(isNaN16(ours[i]!), `NaN at ${values[i]}`);
    else assert.equal(ours[i], ref.bits[i], `float16 bits of ${values[i]}`);
  }
  const all = fromHalf(Uint16Array.from({ length: 65536 }, (_, i) => i));
  for (let i = 0; i < 65536; i++)
    if (Number.isNaN(ref.decoded[i])) assert.ok(Number.isNaN(all[i]), `half ${i.toString(16)}`);
    else
      assert.equal(
        Object.is(all[i], ref.decoded[i]) || all[i] === ref.decoded[i],
        true,
        `half 0x${i.toString(16)}: ${all[i]} vs ${ref.decoded[i]}`,
      );
});
