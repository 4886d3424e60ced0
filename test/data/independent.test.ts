// Our files read by someone else's code: a few lines of Python (header JSON + numpy.frombuffer) decode a
// shard, a checkpoint and `vec` outputs, and check dtypes, shapes, key names and values against the
// sources (tag files, the model config) — not against our own readers. Skipped, not passed, without
// Python and NumPy (CI installs Debian's python3-numpy).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { isHoldout } from '../../src/data/shards.js';
import { cliSteps, solid, tempDir } from '../helpers.js';

const PY = '/usr/bin/python3';
const hasNumpy = spawnSync(PY, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;
const skip = hasNumpy ? false : 'python3 with numpy not installed (apt-get install python3-numpy)';

function python(script: string, ...args: string[]): unknown {
  const r = spawnSync(PY, ['-c', script, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const READ = `
import json, struct, sys, numpy as np
def read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    header = json.loads(b[8:8 + n])
    meta = header.pop('__metadata__', {})
    dt = {'U8': np.uint8, 'F32': np.float32}
    arrays = {k: np.frombuffer(b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]], dtype=dt[v['dtype']]).reshape(v['shape']) for k, v in header.items()}
    return arrays, meta, {k: v['dtype'] for k, v in header.items()}
`;

const root = await tempDir();
const data = path.join(root, 'data');
const COLOURS: [number, number, number][] = [
  [250, 10, 10],
  [10, 250, 10],
  [10, 10, 250],
  [240, 240, 40],
];
const TAGS = ['red', 'green', 'blue', 'yellow'];
{
  const { mkdir } = await import('node:fs/promises');
  await mkdir(data);
  for (let i = 0; i < 12; i++) {
    await solid(40, 40, COLOURS[i % 4]!)
      .png()
      .toFile(path.join(data, `c${i}.png`));
    await writeFile(path.join(data, `c${i}.txt`), `${TAGS[i % 4]} ${i % 2 ? 'odd' : 'even'}`);
  }
}
await cliSteps(
  ['tags', data, '--out', path.join(root, 'tags.csv')],
  [
    'pairs',
    data,
    '--tags',
    path.join(root, 'tags.csv'),
    '--out',
    path.join(root, 'shards'),
    '--size',
    '32',
    '--holdout',
    '0',
  ],
  [
    'train',
    path.join(root, 'shards'),
    '--out',
    path.join(root, 'run'),
    '--backbone',
    'vgg16-tiny',
    '--hidden',
    '8',
    '--batch',
    '4',
    '--rounds',
    '1',
    '--freeze',
    '2',
  ],
  ['export', path.join(root, 'run'), '--out', path.join(root, 'model.onnx')],
  [
    'vec',
    data,
    '--model',
    path.join(root, 'model.onnx'),
    '--kind',
    'features',
    '--out',
    path.join(root, 'features.npy'),
  ],
  ['vec', data, '--model', path.join(root, 'model.onnx'), '--kind', 'binary', '--out', path.join(root, 'binary.npy')],
);

test(
  'a shard read with Python: uint8 images [N,32,32,3] whose centre pixel is the source colour, labels [N,K] equal to the tag files',
  { skip },
  () => {
    const r = python(
      `${READ}
a, meta, dtypes = read(sys.argv[1] + '/shard-00000.safetensors')
names = json.loads(meta['files'])
tags = [l.split(',')[1] for l in open(sys.argv[2]).read().strip().split('\\n')[1:]]
want = [[1 if t in open(sys.argv[3] + '/' + n[:-4] + '.txt').read().split() else 0 for t in tags] for n in names]
print(json.dumps({'keys': sorted(a), 'dtypes': dtypes, 'images': list(a['images'].shape), 'labels': list(a['labels'].shape),
  'centre': a['images'][:, 16, 16, :].tolist(), 'names': names, 'labelsOk': a['labels'].tolist() == want}))`,
      path.join(root, 'shards'),
      path.join(root, 'tags.csv'),
      data,
    ) as {
      keys: string[];
      dtypes: Record<string, string>;
      images: number[];
      labels: number[];
      centre: number[][];
      names: string[];
      labelsOk: boolean;
    };
    assert.deepEqual(r.keys, ['images', 'labels']);
    assert.deepEqual(r.dtypes, { images: 'U8', labels: 'U8' });
    assert.deepEqual(r.images, [12, 32, 32, 3]);
    assert.deepEqual(r.labels, [12, 6]);
    assert.ok(r.labelsOk, 'labels equal the tag files');
    r.names.forEach((n, i) => {
      const want = COLOURS[Number(/c(\d+)/.exec(n)![1]) % 4]!;
      r.centre[i]!.forEach((v, c) => assert.ok(Math.abs(v - want[c]!) <= 2, `${n} channel ${c}: ${v} vs ${want[c]}`));
    });
  },
);

test(
  'a checkpoint read with Python: param/, adam_m/, adam_v/ keys and float32 shapes from the model config alone; frozen convs have no Adam state',
  { skip },
  () => {
    const r = python(
      `${READ}
import glob
f = sorted(glob.glob(sys.argv[1] + '/checkpoints/round-*.safetensors'))[-1]
a, meta, dtypes = read(f)
c = json.loads(meta['config'])
shapes, cin = {}, 3
for i, co in enumerate(c['widths']):
    shapes['conv%d.weight' % (i + 1)] = [co, cin, 3, 3]; shapes['conv%d.bias' % (i + 1)] = [co]; cin = co
feat = c['widths'][12] * (c['imageSize'] // 32) ** 2
shapes.update({'bn.gamma': [feat], 'bn.beta': [feat], 'bn.running_mean': [feat], 'bn.running_var': [feat], 'fc1.weight': [feat, c['hidden']], 'fc1.bias': [c['hidden']], 'fc2.weight': [c['hidden'], c['tags']], 'fc2.bias': [c['tags']]})
frozen = {k for k in shapes if k.startswith('conv') and int(k[4:].split('.')[0]) <= c['freeze']}
trainable = {k for k in shapes if k not in frozen and not k.startswith('bn.running')}
want = {'param/' + k: s for k, s in shapes.items()}
want.update({p + k: shapes[k] for k in trainable for p in ('adam_m/', 'adam_v/')})
got = {k: list(v.shape) for k, v in a.items()}
print(json.dumps({'same': got == want, 'missing': sorted(set(want) - set(got)), 'extra': sorted(set(got) - set(want)), 'allF32': all(d == 'F32' for d in dtypes.values()),
  'vNonNegative': all(bool((a[k] >= 0).all()) for k in a if k.startswith('adam_v/')), 'runningVarPositive': bool((a['param/bn.running_var'] > 0).all()), 'step': int(meta['step'])}))`,
      path.join(root, 'run'),
    ) as {
      same: boolean;
      missing: string[];
      extra: string[];
      allF32: boolean;
      vNonNegative: boolean;
      runningVarPositive: boolean;
      step: number;
    };
    assert.deepEqual([r.missing, r.extra], [[], []]);
    assert.ok(r.same && r.allF32 && r.vNonNegative && r.runningVarPositive);
    assert.equal(r.step, 3, '12 images in batches of 4: 3 steps');
  },
);

test(
  'binary vectors equal numpy.packbits(features > 0, axis=1); the holdout split is a fixed function of the name',
  { skip },
  () => {
    const r = python(
      `
import json, sys, numpy as np
f = np.load(sys.argv[1]); b = np.load(sys.argv[2])
print(json.dumps({'equal': bool((np.packbits(f > 0, axis=1) == b).all()), 'shape': list(b.shape), 'dtype': str(b.dtype)}))`,
      path.join(root, 'features.npy'),
      path.join(root, 'binary.npy'),
    ) as { equal: boolean; shape: number[]; dtype: string };
    assert.ok(r.equal);
    assert.deepEqual(r.shape, [12, 1]);
    assert.equal(r.dtype, 'uint8');
    const names = ['000/00001.png', '000/00002.jpg', 'a/b/c.webp', 'illustration.png', 'ü/名前.png'];
    const py = python(
      `
import hashlib, json, sys
print(json.dumps([int.from_bytes(hashlib.sha1(n.encode()).digest()[:4], 'big') / 2**32 < 0.3 for n in json.loads(sys.argv[1])]))`,
      JSON.stringify(names),
    ) as boolean[];
    assert.deepEqual(
      names.map((n) => isHoldout(n, 0.3)),
      py,
    );
    // Pinned: these assignments must never move between versions.
    assert.deepEqual(
      names.map((n) => isHoldout(n, 0.4)),
      [false, true, false, false, true],
    );
  },
);
