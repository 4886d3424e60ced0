// `pred IMAGE|DIR|- ... --model model.onnx`: tags for images, the seed's --pred done for collections:
// folders, stdin lists, thresholds, MCut, several output formats, captions next to the images.
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { stringify } from 'csv-stringify/sync';
import { defineCommand, type Command } from '../command.js';
import { checkChoice, checkInteger, checkNumber } from '../../util/errors.js';
import { DEVICES, executionProviders, type Device } from '../../runtime/providers.js';
import { decodeBatches, listImages } from '../../predict/inputs.js';
import { TaggerModel } from '../../predict/model.js';
import { selectTags, type TagScore } from '../../predict/select.js';

const FORMATS = ['text', 'json', 'jsonl', 'csv', 'caption'] as const;

export const predCommand: Command = ({ io }) =>
  defineCommand({
    command: 'pred <images..>',
    describe: 'Predict tags for images, folders (recursive) or `-` (paths on stdin)',
    builder: (y) =>
      y
        .positional('images', { type: 'string', array: true, demandOption: true, describe: 'Image files, folders, or - for a list on stdin' })
        .option('model', { type: 'string', demandOption: true, describe: 'Model exported by `export`' })
        .option('top', { type: 'number', default: 30, describe: 'At most K tags per image' })
        .option('threshold', { type: 'number', describe: 'Only tags with probability ≥ T' })
        .option('mcut', { type: 'boolean', default: false, describe: 'MCut: keep tags above the largest gap in sorted probabilities' })
        .option('exclude', { type: 'string', describe: 'Comma-separated tags never to report' })
        .option('batch', { type: 'number', default: 8, describe: 'Images per inference run' })
        .option('format', { type: 'string', choices: FORMATS, default: 'text', describe: 'Output format; caption writes NAME.txt next to each image' })
        .option('underscores', { type: 'boolean', default: false, describe: 'caption: keep underscores in tags' })
        .option('overwrite', { type: 'boolean', default: false, describe: 'caption: replace existing .txt files' })
        .option('device', { type: 'string', choices: DEVICES, default: 'cpu', describe: 'Where the model runs' }),
    handler: async (argv: { images: string[]; model: string; top: number; threshold?: number; mcut: boolean; exclude?: string; batch: number; format: string; underscores: boolean; overwrite: boolean; device: string }) => {
      const top = checkInteger('--top', argv.top, 1, 1e6);
      const threshold = argv.threshold === undefined ? undefined : checkNumber('--threshold', argv.threshold, 0, 1);
      const batch = checkInteger('--batch', argv.batch, 1, 4096);
      const format = checkChoice('--format', argv.format, FORMATS);
      const device = checkChoice('--device', argv.device, DEVICES) as Device;
      const exclude = new Set((argv.exclude ?? '').split(',').map((t) => t.trim()).filter(Boolean));
      const t0 = performance.now();
      const tagger = await TaggerModel.load(argv.model, { executionProviders: executionProviders(device) });
      const loaded = performance.now();
      const { tags, categories, imageSize, pad } = tagger.meta;
      const json: { file: string; tags: TagScore[] }[] = [];
      if (format === 'csv') io.out(stringify([['file', 'tag', 'prob', 'category']]).trimEnd());
      let failed = 0;
      let done = 0;
      try {
        for await (const b of decodeBatches(listImages(argv.images), { size: imageSize, pad, batch })) {
          for (const f of b.failures) {
            failed++;
            io.err(`warning: ${f.file}: skipped, ${f.reason}`);
          }
          if (b.files.length === 0) continue;
          const { probs } = await tagger.run(b.images, b.files.length);
          for (let i = 0; i < b.files.length; i++) {
            const file = b.files[i]!;
            const chosen = selectTags(probs.subarray(i * tags.length, (i + 1) * tags.length), tags, categories, { top, threshold, mcut: argv.mcut, exclude });
            done++;
            if (format === 'text') for (const s of chosen) io.out(`${file} tag=${s.tag} prob=${s.prob.toFixed(4)}`);
            else if (format === 'jsonl') io.out(JSON.stringify({ file, tags: chosen }));
            else if (format === 'json') json.push({ file, tags: chosen });
            else if (format === 'csv') io.out(stringify(chosen.map((s) => [file, s.tag, s.prob.toFixed(6), s.category])).trimEnd());
            else {
              const target = file.replace(/\.[^./\\]+$/, '') + '.txt';
              if (existsSync(target) && !argv.overwrite) {
                io.err(`warning: ${target} exists, not overwritten (use --overwrite)`);
                continue;
              }
              const text = chosen.map((s) => (argv.underscores ? s.tag : s.tag.replace(/_/g, ' '))).join(', ');
              await writeFile(target, `${text}\n`);
            }
          }
        }
      } finally {
        await tagger.release();
      }
      if (format === 'json') io.out(JSON.stringify(json, null, 1));
      const seconds = (performance.now() - loaded) / 1000;
      io.err(`pred: ${done} images in ${seconds.toFixed(2)} s, ${(done / seconds).toFixed(2)} img/s (model loaded in ${((loaded - t0) / 1000).toFixed(2)} s)`);
      if (failed > 0) throw new Error(`${failed} of ${failed + done} images could not be read (warnings above); the others were tagged`);
    },
  });
