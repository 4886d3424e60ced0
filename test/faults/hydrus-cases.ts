// A Hydrus client whose answers lie (issue 43): every answer of its Client API is checked before its
// numbers are used, and a lie ends the run in one line naming the endpoint and what was expected
// (exit 1), before any tag is written.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fakeHydrus } from '../hydrus/fake-hydrus.js';
import { solid, tinyModel } from '../helpers.js';
import { assertOneLine, fault, root, runAsync } from './harness.js';

const KEY = 'cd'.repeat(32);

export function registerHydrus(): void {
  fault(
    'a Hydrus client whose answers lie is refused in one line naming the endpoint, and nothing is written',
    async () => {
      const model = await tinyModel(path.join(root, 'hydrus-model.onnx'), ['a', 'b'], [0, 0]);
      const png = await solid(20, 20, [10, 20, 30]).png().toBuffer();
      const hash = createHash('sha256').update(png).digest('hex');
      type Answer = Record<string, unknown>;
      const meta = (a: Answer): Answer[] => a.metadata as Answer[];
      const lies: [string, (a: Answer) => unknown, RegExp][] = [
        ['/verify_access_key', () => 'not json{', /Expected JSON from Hydrus' \/verify_access_key/],
        [
          '/verify_access_key',
          (a) => ({ ...a, basic_permissions: 'all' }),
          /Expected basic_permissions in the answer of Hydrus' \/verify_access_key/,
        ],
        [
          '/get_services',
          (a) => ({ ...a, services_v2: [{ name: 5, service_key: 'zz', type: 5 }] }),
          /services with a name, a hexadecimal service_key and a type/,
        ],
        [
          '/get_files/search_files',
          () => ({ file_ids: ['1'] }),
          /Expected file_ids in the answer of Hydrus' \/get_files\/search_files/,
        ],
        ['/get_files/file_metadata', () => ({ metadata: [] }), /Expected metadata for the 1 files asked/],
        [
          '/get_files/file_metadata',
          (a) => ({ metadata: meta(a).map((m) => ({ ...m, hash: '../../etc/passwd' })) }),
          /file 1 with its SHA-256 hash/,
        ],
        [
          '/get_files/file_metadata',
          (a) => ({ metadata: meta(a).map((m) => ({ ...m, tags: { ab: { storage_tags: { '0': 'a' } } } })) }),
          /storage_tags of file 1 as lists of tags/,
        ],
      ];
      for (const [endpoint, lie, want] of lies) {
        const h = await fakeHydrus(KEY, [{ id: 1, hash, mime: 'image/png', bytes: png, tags: {} }]);
        try {
          h.lie.set(endpoint, lie);
          const r = await runAsync(
            ['hydrus', '--api', h.url, '--search', 'system:inbox', '--service', 'my tags', '--model', model],
            {
              HYDRUS_ACCESS_KEY: KEY,
            },
          );
          assert.equal(r.code, 1, `${endpoint}: ${r.err}`);
          assertOneLine(r.err, want);
          assert.equal(h.adds.length, 0, endpoint);
        } finally {
          await h.app.close();
        }
      }
    },
  );
}
