// `similar QUERY --index FILE.npy [--k 10]`: nearest neighbours of an image among the rows of a `vec`
// index: cosine similarity for probs/features, Hamming distance for binary hashes.
import { readFile } from 'node:fs/promises';
import { defineCommand, type Command } from '../command.js';
import { checkInteger, UsageError } from '../../util/errors.js';
import { TaggerModel } from '../../predict/model.js';
import { readNpy } from '../../predict/npy.js';
import { vectorize, type VecIndexMeta } from './vec.js';

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, i) => i.toString(2).replace(/0/g, '').length);

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>, off = 0): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[off + i]!;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

export function hamming(a: ArrayLike<number>, b: ArrayLike<number>, off = 0): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += POPCOUNT[a[i]! ^ b[off + i]!]!;
  return d;
}

export const similarCommand: Command = ({ io }) =>
  defineCommand({
    command: 'similar <query>',
    describe: 'Nearest neighbours of an image in a `vec` index (cosine, or Hamming for binary)',
    builder: (y) =>
      y
        .positional('query', { type: 'string', demandOption: true, describe: 'Query image' })
        .option('index', { type: 'string', demandOption: true, describe: '.npy written by `vec --out`' })
        .option('k', { type: 'number', default: 10, describe: 'Neighbours to list' })
        .option('model', { type: 'string', describe: 'Model [default: the one recorded with the index]' }),
    handler: async (argv: { query: string; index: string; k: number; model?: string }) => {
      const k = checkInteger('--k', argv.k, 1, 1e6);
      let meta: VecIndexMeta;
      try {
        meta = JSON.parse(await readFile(`${argv.index}.json`, 'utf8'));
      } catch {
        throw new UsageError(`Expected ${JSON.stringify(`${argv.index}.json`)} next to the index (written by \`vec --out FILE.npy\`) but it cannot be read`);
      }
      const index = await readNpy(argv.index);
      if (index.shape[0] !== meta.files.length) throw new UsageError(`Expected ${meta.files.length} rows in ${JSON.stringify(argv.index)} as its .json lists but it has ${index.shape[0]}`);
      const model = await TaggerModel.load(argv.model ?? meta.model);
      let q: Awaited<ReturnType<typeof vectorize>>;
      try {
        q = await vectorize(model, [argv.query], meta.kind, 1, (file, reason) => {
          throw new UsageError(`Expected a readable query image but ${file}: ${reason}`);
        });
      } finally {
        await model.release();
      }
      const query = q.rows[0]!;
      const width = index.shape[1];
      if (query.length !== width) throw new UsageError(`Expected the model's ${meta.kind} vectors to have ${width} values as in the index but they have ${query.length}`);
      const scored = meta.files.map((file, i) => ({ file, score: meta.kind === 'binary' ? hamming(query, index.data, i * width) : cosine(query, index.data, i * width) }));
      scored.sort((a, b) => (meta.kind === 'binary' ? a.score - b.score : b.score - a.score));
      scored.slice(0, k).forEach((s, r) => io.out(`${r + 1}\t${meta.kind === 'binary' ? `${s.score} bits` : s.score.toFixed(4)}\t${s.file}`));
    },
  });
