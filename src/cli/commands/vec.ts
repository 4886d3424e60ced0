// `vec IMAGE|DIR|- ... --model model.onnx [--kind probs|features|binary] [--out FILE]`: the
// "illustration to vector": tag probabilities, hidden features, or illustration2vec's binary hash, as
// .npy (with FILE.json naming the images, the model and the kind) or JSONL.
import path from 'node:path';
import { defineCommand, type Command } from '../command.js';
import { checkChoice, checkInteger, UsageError } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/fsx.js';
import { decodeBatches, listImages } from '../../predict/inputs.js';
import { TaggerModel } from '../../predict/model.js';
import { packBits, writeNpy } from '../../predict/npy.js';

export const KINDS = ['probs', 'features', 'binary'] as const;
export type VecKind = (typeof KINDS)[number];

export interface VecIndexMeta {
  format: 'alt-i2v-ort/vec';
  model: string;
  kind: VecKind;
  dim: number;
  files: string[];
}

/** Vectors of decoded images: float rows (probs/features) or packed bits (binary). */
export async function vectorize(model: TaggerModel, args: string[], kind: VecKind, batch: number, onFailure: (file: string, reason: string) => void): Promise<{ files: string[]; rows: (Float32Array | Uint8Array)[]; dim: number }> {
  const files: string[] = [];
  const rows: (Float32Array | Uint8Array)[] = [];
  const dim = kind === 'probs' ? model.meta.tags.length : model.meta.hidden;
  for await (const b of decodeBatches(listImages(args), { size: model.meta.imageSize, pad: model.meta.pad, batch })) {
    for (const f of b.failures) onFailure(f.file, f.reason);
    if (b.files.length === 0) continue;
    const out = await model.run(b.images, b.files.length);
    const src = kind === 'probs' ? out.probs : out.features;
    for (let i = 0; i < b.files.length; i++) {
      const row = src.slice(i * dim, (i + 1) * dim);
      rows.push(kind === 'binary' ? packBits(row, 1, dim) : row);
      files.push(b.files[i]!);
    }
  }
  return { files, rows, dim };
}

export const vecCommand: Command = ({ io }) =>
  defineCommand({
    command: 'vec <images..>',
    describe: 'Illustration vectors: tag probabilities, hidden features or binary hashes, as .npy or JSONL',
    builder: (y) =>
      y
        .positional('images', { type: 'string', array: true, demandOption: true, describe: 'Image files, folders, or - for a list on stdin' })
        .option('model', { type: 'string', demandOption: true, describe: 'Model exported by `export`' })
        .option('kind', { type: 'string', choices: KINDS, default: 'features', describe: 'probs (K), features (hidden), binary (features > 0, packed bits)' })
        .option('out', { type: 'string', describe: 'FILE.npy (plus FILE.npy.json naming the rows) or FILE.jsonl [default: JSONL on stdout]' })
        .option('batch', { type: 'number', default: 8 }),
    handler: async (argv: { images: string[]; model: string; kind: string; out?: string; batch: number }) => {
      const kind = checkChoice('--kind', argv.kind, KINDS);
      const batch = checkInteger('--batch', argv.batch, 1, 4096);
      if (argv.out && !/\.(npy|jsonl)$/.test(argv.out)) throw new UsageError(`Expected --out ending in .npy or .jsonl but received ${JSON.stringify(argv.out)}`);
      const model = await TaggerModel.load(argv.model);
      let failed = 0;
      let r: Awaited<ReturnType<typeof vectorize>>;
      try {
        r = await vectorize(model, argv.images, kind, batch, (file, reason) => {
          failed++;
          io.err(`warning: ${file}: skipped, ${reason}`);
        });
      } finally {
        await model.release();
      }
      const line = (i: number): string =>
        JSON.stringify({ file: r.files[i], [kind === 'binary' ? 'hash' : 'vector']: kind === 'binary' ? Buffer.from(r.rows[i]!).toString('hex') : Array.from(r.rows[i]!) });
      if (argv.out?.endsWith('.npy')) {
        const width = kind === 'binary' ? Math.ceil(r.dim / 8) : r.dim;
        const data = kind === 'binary' ? new Uint8Array(r.rows.length * width) : new Float32Array(r.rows.length * width);
        r.rows.forEach((row, i) => data.set(row, i * width));
        await writeNpy(argv.out, kind === 'binary' ? { dtype: 'u1', shape: [r.rows.length, width], data: data as Uint8Array } : { dtype: 'f4', shape: [r.rows.length, width], data: data as Float32Array });
        const meta: VecIndexMeta = { format: 'alt-i2v-ort/vec', model: path.resolve(argv.model), kind, dim: r.dim, files: r.files.map((f) => path.resolve(f)) };
        await writeFileAtomic(`${argv.out}.json`, JSON.stringify(meta));
        io.out(`wrote ${r.rows.length} ${kind} vectors (${r.dim}${kind === 'binary' ? ' bits' : ''}) to ${argv.out} and their names to ${argv.out}.json`);
      } else if (argv.out) {
        await writeFileAtomic(argv.out, r.files.map((_, i) => line(i)).join('\n') + (r.files.length ? '\n' : ''));
        io.out(`wrote ${r.rows.length} ${kind} vectors to ${argv.out}`);
      } else r.files.forEach((_, i) => io.out(line(i)));
      if (failed > 0) throw new Error(`${failed} images could not be read (warnings above); the others were written`);
    },
  });
