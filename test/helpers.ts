// Test helpers: temp folders, a captured Io for runCli, and small generated images of known content.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import sharp, { type Sharp } from 'sharp';
import type { Io } from '../src/cli/io.js';
import { runCli } from '../src/cli/index.js';
import { encodeInferenceModel } from '../training/artifacts.js';
import { gradcheckConfig, randomParams } from '../training/gradcheck.js';

/** A fresh temp folder, removed when the test file ends. */
export async function tempDir(prefix = 'alt-i2v-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface Captured {
  code: number;
  out: string[];
  err: string[];
}

/** Run the CLI in-process with captured output. */
export async function cli(...argv: string[]): Promise<Captured> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => out.push(l), err: (l) => err.push(l), tty: false };
  const code = await runCli(argv, io);
  return { code, out, err };
}

/** Run CLI command lines in order, failing on the first that does not exit 0 (test fixtures). */
export async function cliSteps(...steps: string[][]): Promise<void> {
  for (const argv of steps) {
    const r = await cli(...argv);
    if (r.code !== 0) throw new Error(`alt-i2v-ort ${argv.join(' ')} exited ${r.code}: ${r.err.join('\n')}`);
  }
}

/** The tiny dataset every test that trains or evaluates starts from: its folders under `root`. */
export interface TinyDataset {
  data: string;
  tags: string;
  shards: string;
}

/**
 * Demo images → tags.csv → shards under `root` (data/, tags.csv, shards/), by the CLI as a user runs it:
 * `count` images drawn with `seed`, tags on at least `minCount` images, `size` px shards of `shardSize`
 * images with a `holdout` share held out.
 */
export async function tinyDataset(
  root: string,
  o: { count: number; seed: number; minCount?: number; size?: number; shardSize?: number; holdout?: number },
): Promise<TinyDataset> {
  const [data, tags, shards] = ['data', 'tags.csv', 'shards'].map((f) => path.join(root, f)) as [
    string,
    string,
    string,
  ];
  const { minCount = 5, size = 32, shardSize = 40, holdout = 0.2 } = o;
  await cliSteps(
    ['synth', '--out', data, '--count', String(o.count), '--seed', String(o.seed)],
    ['tags', data, '--out', tags, '--min-count', String(minCount)],
    [
      ...['pairs', data, '--tags', tags, '--out', shards, '--size', String(size), '--shard-size', String(shardSize)],
      ...['--holdout', String(holdout)],
    ],
  );
  return { data, tags, shards };
}

/** tinyDataset's shards folder with its defaults (32 px, shards of 40, a fifth held out). */
export const tinyShards = async (root: string, count: number, seed: number): Promise<string> =>
  (await tinyDataset(root, { count, seed })).shards;

/** `train SHARDS --out OUT` of the tiny VGG16 (hidden 16, batch 8) with `more` options. */
export const tinyTrain = (shards: string, out: string, ...more: string[]): Promise<Captured> =>
  cli('train', shards, '--out', out, '--backbone', 'vgg16-tiny', '--hidden', '16', '--batch', '8', ...more);

/** A tiny exported model with random weights (32 px, hidden 12) for the given tags, written to `file`. */
export async function tinyModel(file: string, tags: string[], categories: number[], seed = 3): Promise<string> {
  const config = gradcheckConfig({ tags: tags.length, hidden: 12 });
  await writeFile(
    file,
    encodeInferenceModel(config, randomParams(config, seed), { tags, categories, pad: 'center', source: 'test' }),
  );
  return file;
}

export type Rgb = [number, number, number];

/** A solid-colour image of the given size, encoded by `encode`. */
export function solid(width: number, height: number, rgb: Rgb): Sharp {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });
}

/** The RGB pixel at (x, y) of an S×S×3 buffer. */
export function pixel(buf: Uint8Array, size: number, x: number, y: number): Rgb {
  const i = (y * size + x) * 3;
  return [buf[i]!, buf[i + 1]!, buf[i + 2]!];
}

export function near(a: Rgb, b: Rgb, tol = 12): boolean {
  return a.every((v, i) => Math.abs(v - b[i]!) <= tol);
}
