// Files from elsewhere for foreign taggers (issue: every tagger users run): contract documents, the
// taggers' JSON tags files, a Hugging Face cache and a pad colour that lie are each refused in one line
// naming the file or argument, before any number from them is used.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { A, Graph } from '../../src/onnx/graph.js';
import { assertOneLine, fault, root, run } from './harness.js';

const dir = path.join(root, 'contract-cases');
const S = 8;

/** A JoyTag-layout stand-in: NCHW [N, 3, 8, 8] → 3 logits (channel means). */
function model(): Uint8Array {
  const g = new Graph('nchw');
  const x = g.input('pixel_values', 'float32', ['N', 3, S, S]);
  g.output(g.op('ReduceMean', [x], { axes: A.ints([2, 3]), keepdims: A.i(0) }), 'logits', 'float32', ['N', 3]);
  return g.encode();
}

async function setup(): Promise<{ onnx: string; img: string }> {
  await mkdir(dir, { recursive: true });
  const onnx = path.join(dir, 'model.onnx');
  await writeFile(onnx, model());
  const img = path.join(dir, 'a.png');
  await sharp({ create: { width: S, height: S, channels: 3, background: { r: 1, g: 2, b: 3 } } })
    .png()
    .toFile(img);
  return { onnx, img };
}

const write = async (name: string, body: unknown): Promise<string> => {
  const f = path.join(dir, name);
  await mkdir(path.dirname(f), { recursive: true });
  await writeFile(f, typeof body === 'string' ? body : JSON.stringify(body));
  return f;
};

const CONTRACT = {
  format: 'alt-i2v-ort contract 1',
  family: 'mine',
  tagsFiles: [],
  input: {
    layout: 'NCHW',
    channels: 'rgb',
    scale: 1,
    mean: [0, 0, 0],
    std: [1, 1, 1],
    resize: 'pad-then-resize',
    filter: 'bicubic',
    padColor: [255, 255, 255],
    size: null,
  },
  output: { name: null, scores: 'logits' },
  tags: { file: 'top_tags.txt', format: 'txt' },
  thresholds: null,
};

export function registerContracts(): void {
  fault(
    'a contract document that lies is refused naming the file and the field: std 0, an unknown field, an output the model lacks, not JSON',
    async () => {
      const { onnx, img } = await setup();
      const tags = await write('tags3.txt', 'a\nb\nc\n');
      const cases: [unknown, RegExp][] = [
        [
          { ...CONTRACT, input: { ...CONTRACT.input, std: [1, 0, 1] } },
          /Expected 3 numbers .* none 0 for input\.std in ".*c0\.json"/,
        ],
        [
          { ...CONTRACT, input: { ...CONTRACT.input, gamma: 2 } },
          /Expected one of the fields .* for input\.gamma in ".*c1\.json"/,
        ],
        [
          { ...CONTRACT, output: { name: 'probs', scores: 'logits' } },
          /Expected the scores output "probs" \(contract mine\) in ".*model\.onnx" but its outputs are \["logits"\]/,
        ],
        ['{"format": ', /Expected JSON in ".*c3\.json" but it does not parse/],
        // A contract's files stay beside the model: no folder part, no '..', no absolute path.
        [
          { ...CONTRACT, tags: { file: '../../../../etc/passwd', format: 'txt' } },
          /Expected a file name beside the model \(no folder, no '\.\.'\) for tags\.file in ".*c4\.json"/,
        ],
        [
          { ...CONTRACT, tags: { file: '/etc/passwd', format: 'txt' } },
          /Expected a file name beside the model .* for tags\.file in ".*c5\.json" but received "\/etc\/passwd"/,
        ],
        [{ ...CONTRACT, tagsFiles: ['ok.txt', 'sub/x.txt'] }, /for tagsFiles\[1\] in ".*c6\.json"/],
        [{ ...CONTRACT, tags: { file: '..', format: 'txt' } }, /for tags\.file in ".*c7\.json"/],
        // Nested 100,000 deep: refused before any walk of it could overflow the stack.
        [
          `{"format": "alt-i2v-ort contract 1", "about": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
          /Expected JSON in ".*c8\.json" but it does not parse: it is nested more than 100 levels deep/,
        ],
      ];
      for (const [i, [body, message]] of cases.entries()) {
        const r = run(['pred', img, '--model', onnx, '--tags', tags, '--contract', await write(`c${i}.json`, body)]);
        assertOneLine(r.err, message);
      }
    },
  );

  fault(
    "a tagger's JSON tags file that lies is refused naming the file and the key: a gap in Camie's indices, PixAI's split, a cl_tagger category",
    async () => {
      const { onnx, img } = await setup();
      const cases: [string, unknown, RegExp][] = [
        [
          'camie/camie-tagger-v2-metadata.json',
          { dataset_info: { tag_mapping: { idx_to_tag: { 0: 'a', 1: 'b', 5: 'c' }, tag_to_category: {} } } },
          /idx_to_tag entries indexed 0 to 2, each once, in ".*camie-tagger-v2-metadata\.json" but found the index "5"/,
        ],
        [
          'pixai/tags_v0.9_13k.json',
          { tag_map: { a: 0, b: 1, c: 2 }, tag_split: { gen_tag_count: 2, character_tag_count: 2 } },
          /gen_tag_count \+ character_tag_count = 3 .*tags_v0\.9_13k\.json" but received 2 \+ 2/,
        ],
        [
          'cl/tag_mapping.json',
          {
            0: { tag: 'a', category: 'General' },
            1: { tag: 'b', category: 'Vibes' },
            2: { tag: 'c', category: 'General' },
          },
          /at "1"\.category of ".*tag_mapping\.json" but received "Vibes"/,
        ],
        // Categories are our own ids only, never an object's inherited keys; each tag once.
        [
          'cl2/tag_mapping.json',
          {
            0: { tag: 'a', category: '__proto__' },
            1: { tag: 'b', category: 'General' },
            2: { tag: 'c', category: 'General' },
          },
          /at "0"\.category of ".*cl2\/tag_mapping\.json" but received "__proto__"/,
        ],
        [
          'camie2/camie-tagger-v2-metadata.json',
          {
            dataset_info: {
              tag_mapping: {
                idx_to_tag: { 0: 'a', 1: 'constructor', 2: 'c' },
                tag_to_category: { a: 'General', c: 'General' },
              },
            },
          },
          /tag_to_category\["constructor"\] of ".*camie-tagger-v2-metadata\.json" but received undefined/,
        ],
        [
          'cl3/tag_mapping.json',
          {
            0: { tag: 'a', category: 'General' },
            1: { tag: 'b', category: 'General' },
            2: { tag: 'a', category: 'General' },
          },
          /Expected each tag once in ".*cl3\/tag_mapping\.json" but "a" is at rows 1 and 3/,
        ],
      ];
      for (const [name, body, message] of cases)
        assertOneLine(run(['pred', img, '--model', onnx, '--tags', await write(name, body)]).err, message);
    },
  );

  fault(
    'a Hugging Face cache whose ref is not a commit, and a --pad-color out of range, are one line each',
    async () => {
      const { img } = await setup();
      const cache = path.join(dir, 'hub');
      await write(path.join('hub', 'models--o--r', 'refs', 'main'), '../../../etc\n');
      assertOneLine(
        run(['pred', img, '--model', 'hf:o/r'], { HF_HUB_CACHE: cache }).err,
        /Expected a commit hash in ".*refs\/main" but it holds "\.\.\/\.\.\/\.\.\/etc"/,
      );
      const { onnx } = await setup();
      await write('top_tags.txt', 'a\nb\nc\n');
      assertOneLine(
        run(['pred', img, '--model', onnx, '--pad-color', '300,0,0']).err,
        /Expected white, black or R,G,B \(each 0–255\) for --pad-color but received "300,0,0"/,
      );
      assertOneLine(
        run(['pred', img, '--model', onnx, '--pad-color', ',,']).err,
        /Expected white, black or R,G,B \(each 0–255\) for --pad-color but received ",,"/,
      );
    },
  );
}
