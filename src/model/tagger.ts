// A tagger model as used by prediction: our export (one ONNX file, uint8 letterboxed images in,
// `probs` and `features` out, tags and preprocessing in its metadata_props) or a foreign tagger (WD,
// DeepDanbooru) with its tags from a separate file and its input contract from a preset (src/contracts/contract.ts).
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import type { PadRule, PreprocessOptions } from '../data/images.js';
import type { TagInfo } from '../data/tags.js';
import { UsageError } from '../util/errors.js';
import { readInput } from '../util/fsx.js';
import { checkExternalData } from './external-data.js';
import { chooseForeign } from '../contracts/foreign.js';
import { hfModelFile, type HubOptions } from '../hub/hf-download.js';
import { presetDocs } from '../contracts/contract-doc.js';
import { INFERENCE_FORMAT } from '../../training/artifacts.js';
import { readMetadataProps } from '../onnx/proto.js';
import { WorkerSession } from './worker-session.js';
import { EMBEDDING_OUTPUT, findEmbedding, withEmbeddingOutput } from './embedding.js';
import { parseTaggerMetadata, type TaggerMetadata } from './metadata.js';
import { parseTaught, TAUGHT_KEY, taughtChoice } from './taught.js';
import type { ContractDoc } from '../contracts/contract-doc.js';

export type { TaggerMetadata } from './metadata.js';
import {
  describeContract,
  foreignContract,
  inputTensor,
  type ContractOverrides,
  type InputContract,
} from '../contracts/contract.js';
import { sessionThreads } from '../runtime/threads.js';

export interface LoadOptions {
  executionProviders?: string[];
  threads?: number;
  /** Tags of a foreign model (src/contracts/tag-files.ts); default: its contract's tags file beside the model. */
  tags?: string;
  /** A preset's family name, or 'auto'. */
  preset?: string;
  /** A contract document (--contract FILE.json). */
  contract?: string;
  overrides?: ContractOverrides;
  /** Told which preset `auto` chose, for a foreign model (and of waits for a download). */
  onChoice?: (line: string) => void;
  /** A progress display for a download from the Hugging Face hub. */
  onDownload?: HubOptions['progress'];
  /**
   * A foreign model's embedding as its features (src/model/embedding.ts): `true` finds it, a tensor
   * name (--embedding) names it. Our own models have their features output already.
   */
  embedding?: true | string;
}

/** A float16 export is for GPUs: on the CPU it runs, slower than float32, and loading it says so. */
function warnFp16OnCpu(meta: TaggerMetadata, file: string, opts: LoadOptions): void {
  if (meta.precision === 'fp16' && !(opts.executionProviders ?? ['cpu']).includes('cuda'))
    opts.onChoice?.(
      `warning: ${file} is a float16 export, for GPUs: on the CPU, ONNX Runtime casts around every layer and runs it slower than the float32 export`,
    );
}

/** `hf:…` as a local file, downloaded with the tags files the preset (or, for auto, any preset) names. */
async function hubModel(text: string, opts: LoadOptions): Promise<string> {
  const docs = await presetDocs();
  const preset = opts.preset && opts.preset !== 'auto' ? docs.get(opts.preset) : undefined;
  const tagsFiles = opts.tags ? [] : [...new Set((preset ? [preset] : [...docs.values()]).flatMap((d) => d.tagsFiles))];
  return hfModelFile(text, { tagsFiles, log: opts.onChoice, progress: opts.onDownload });
}

const OURS = (size: number, pad: PadRule): InputContract => ({
  kind: 'ours',
  inputName: 'image',
  probsName: 'probs',
  featuresName: 'features',
  size,
  dtype: 'uint8',
  channels: 'rgb',
  scale: 255,
  padColor: 'black',
  pad,
  kernel: 'lanczos3',
  fit: 'letterbox',
  layout: 'NHWC',
  mean: [0, 0, 0],
  std: [1, 1, 1],
  logits: false,
  fixedBatch: null,
  thresholds: null,
});

/** Our export's output widths against its metadata: a mismatch would read every row at a shifted offset. */
async function checkOutputWidths(session: WorkerSession, meta: TaggerMetadata, file: string): Promise<void> {
  const widths: [string, number, string][] = [['probs', meta.tags.length, 'tags in its metadata']];
  if (meta.hidden > 0) widths.push(['features', meta.hidden, 'features (hidden) in its metadata']);
  for (const [name, want, what] of widths) {
    const out = session.outputMetadata.find((o) => o.name === name) as ort.InferenceSession.TensorValueMetadata;
    const width = out?.shape?.at(-1);
    if (!out || (typeof width === 'number' && width !== want)) {
      await session.release();
      throw new UsageError(
        `Expected ${JSON.stringify(file)} to have ${want} ${what} for its ${name} output's ${out ? width : 'missing'} values, but they differ: the file's metadata does not belong to its graph`,
      );
    }
  }
}

/** The model's session on its worker thread; a model ONNX Runtime cannot load is a usage error naming it. */
async function openSession(
  model: Uint8Array | string,
  file: string,
  opts: LoadOptions,
  /** Where a model given as bytes finds its external data files. */
  externalDir?: string,
): Promise<WorkerSession> {
  try {
    // One thread per core, not spinning between runs: images decode on the same cores meanwhile
    // (docs/ARCHITECTURE.md, "Threads").
    return await WorkerSession.create(model, {
      executionProviders: opts.executionProviders ?? ['cpu'],
      intraOpNumThreads: sessionThreads(opts.threads),
      graphOptimizationLevel: 'all',
      enableMemPattern: false,
      extra: {
        session: {
          intra_op: { allow_spinning: '0' },
          ...(externalDir ? { model_external_initializers_file_folder_path: externalDir } : {}),
        },
      },
    });
  } catch (err) {
    throw new UsageError(
      `Expected an ONNX model that ONNX Runtime can load in ${JSON.stringify(file)} but it fails: ${(err as Error).message.split('\n')[0]}`,
    );
  }
}

/**
 * A foreign model's session again, with its embedding (opts.embedding: found, or named) as one more
 * output, which the contract then reads as the model's features; the first session is released.
 */
async function reopenWithEmbedding(
  first: WorkerSession,
  bytes: Uint8Array,
  contract: InputContract,
  file: string,
  opts: LoadOptions,
  externalData: boolean,
): Promise<{ session: WorkerSession; contract: InputContract; width: number }> {
  const override = opts.embedding === true ? undefined : opts.embedding;
  const cut = await Promise.resolve()
    .then(() => findEmbedding(bytes, contract.probsName, file, override))
    .finally(() => first.release());
  const dir = externalData ? path.dirname(path.resolve(file)) : undefined;
  const session = await openSession(withEmbeddingOutput(bytes, cut), file, opts, dir);
  const c = { ...contract, featuresName: EMBEDDING_OUTPUT };
  return { session, contract: c, width: cut.width ?? (await embeddingWidth(session, c, file)) };
}

/** The width of the embedding output, from one run on a black image (an --embedding the weights do not size). */
async function embeddingWidth(session: WorkerSession, c: InputContract, file: string): Promise<number> {
  const n = c.fixedBatch ?? 1;
  const out = await session.run({ [c.inputName]: inputTensor(c, new Uint8Array(n * c.size * c.size * 3), n) });
  const width = out[EMBEDDING_OUTPUT]!.data.length / n;
  if (!Number.isInteger(width) || width < 1)
    throw new UsageError(`Expected an embedding of at least one number per image from ${JSON.stringify(file)}`);
  return width;
}

/** A foreign model's contract and tags: from its own metadata when it is a taught model, else chooseForeign. */
async function foreignChoice(
  session: WorkerSession,
  file: string,
  props: Map<string, string>,
  opts: LoadOptions,
): Promise<[Awaited<ReturnType<typeof chooseForeign>>, InputContract]> {
  const taught = parseTaught(props, file);
  if (taught && !taught.contract)
    throw new UsageError(`Expected the base's contract in the metadata ${TAUGHT_KEY} of ${JSON.stringify(file)}`);
  const given = Object.fromEntries(Object.entries(opts.overrides ?? {}).filter(([, v]) => v !== undefined));
  const chosen = taught ? taughtChoice(taught) : await chooseForeign(session, file, opts);
  return [chosen, foreignContract(session, file, chosen.doc, { ...(taught?.overrides ?? {}), ...given })];
}

/** The model file's bytes and metadata; a run folder or a file that is not ONNX is a usage error naming it. */
async function readModelFile(file: string): Promise<{ bytes: Buffer; props: Map<string, string> }> {
  if (existsSync(path.join(file, 'config.json'))) {
    throw new UsageError(
      `Expected a model file for --model but ${JSON.stringify(file)} is a training run folder; export its best checkpoint first: alt-i2v-ort export ${file} --out model.onnx`,
    );
  }
  const bytes = await readInput(file, 'a model file for --model');
  try {
    return { bytes, props: readMetadataProps(bytes) };
  } catch {
    throw new UsageError(`Expected an ONNX model in ${JSON.stringify(file)} but it does not parse`);
  }
}

export class TaggerModel {
  private constructor(
    readonly meta: TaggerMetadata,
    readonly contract: InputContract,
    private readonly session: WorkerSession,
    /** Identifies the model (its metadata, size and tags), for files made with it such as kpi.json. */
    readonly fingerprint: string,
    /** The model file (an hf: reference resolved to its place in the cache). */
    readonly file: string,
    /** A foreign model's tags file (none for a taught model: it carries its tags). */
    readonly tagsFile?: string,
    /** A foreign model's contract document (what a model taught on it carries). */
    readonly doc?: ContractDoc,
  ) {}

  static async load(file: string, opts: LoadOptions = {}): Promise<TaggerModel> {
    if (file.startsWith('hf:')) file = await hubModel(file, opts);
    const { bytes, props } = await readModelFile(file);
    const ours = props.get('format') === INFERENCE_FORMAT;
    if (ours && ((opts.preset && opts.preset !== 'auto') || opts.contract))
      throw new UsageError(
        `Expected --preset auto and no --contract for ${JSON.stringify(file)}, an alt-i2v-ort model, but received ${opts.contract ? `--contract ${opts.contract}` : `--preset ${opts.preset}`}`,
      );
    const meta = ours ? parseTaggerMetadata(props, file) : undefined;
    // Weights in external data files are checked before ONNX Runtime reads them from beside the file.
    const external = await checkExternalData(bytes, file);
    const size = bytes.length; // the bytes go to the session's worker thread below
    const fingerprint = (tags: string[]): string =>
      createHash('sha256')
        .update(
          JSON.stringify([
            [...props],
            size,
            tags,
            ...(external.length ? [external.map((r) => [r.location, r.offset, r.length])] : []),
          ]),
        )
        .digest('hex');
    // The bytes go to the session's worker; a copy stays where the embedding is cut from them later.
    const kept = opts.embedding !== undefined && !ours && external.length === 0 ? new Uint8Array(bytes) : bytes;
    let session = await openSession(external.length > 0 ? path.resolve(file) : bytes, file, opts);
    if (meta) {
      await checkOutputWidths(session, meta, file);
      warnFp16OnCpu(meta, file, opts);
      return new TaggerModel(meta, OURS(meta.imageSize, meta.pad), session, fingerprint(meta.tags), file);
    }
    let chosen: Awaited<ReturnType<typeof chooseForeign>>;
    let contract: InputContract;
    try {
      [chosen, contract] = await foreignChoice(session, file, props, opts);
    } catch (err) {
      await session.release();
      throw err;
    }
    const foreignTags = chosen.tags;
    opts.onChoice?.(`${file}: ${chosen.why}: ${describeContract(contract)}`);
    const out = session.outputMetadata.find(
      (o) => o.name === contract.probsName,
    ) as ort.InferenceSession.TensorValueMetadata;
    const width = out?.shape?.at(-1);
    if (typeof width === 'number' && width !== foreignTags.tags.length) {
      await session.release();
      throw new UsageError(
        `Expected ${width} tags in ${chosen.tagsFile ? JSON.stringify(chosen.tagsFile) : `the metadata of ${JSON.stringify(file)}`} for the model's ${width} scores but it has ${foreignTags.tags.length}`,
      );
    }
    const fmeta: TaggerMetadata = {
      tags: foreignTags.tags,
      categories: foreignTags.categories,
      imageSize: contract.size,
      pad: contract.pad,
      hidden: 0,
      source: `${contract.kind} model ${file}`,
      precision: 'fp32',
    };
    if (opts.embedding !== undefined) {
      const e = await reopenWithEmbedding(session, kept, contract, file, opts, external.length > 0);
      [session, contract, fmeta.hidden] = [e.session, e.contract, e.width];
    }
    return new TaggerModel(
      fmeta,
      contract,
      session,
      fingerprint(fmeta.tags),
      file,
      chosen.tagsFile || undefined,
      chosen.doc,
    );
  }

  /** How images are decoded for this model (size, padding, pad colour, resize kernel). */
  /** The model's tags as the option parsers read them. */
  get tagInfo(): TagInfo {
    const { tags, categories, source } = this.meta;
    return { tags, categories, source, thresholds: this.contract.thresholds };
  }

  get preprocess(): Omit<PreprocessOptions, 'maxPixels'> {
    const c = this.contract;
    return { size: c.size, pad: c.pad, padColor: c.padColor, kernel: c.kernel, fit: c.fit };
  }

  /**
   * Run one dummy batch of `batch` images now, so the runtime's first-run work (memory arenas, page
   * faults, kernel choice: a first batch is much slower than a later one) overlaps the first decodes
   * instead of delaying the first real batch. The worker takes requests in order, so a `run` after
   * it waits for it. Resolves to the seconds it took.
   */
  warmUp(batch: number): Promise<number> {
    const t0 = performance.now();
    const n = this.contract.fixedBatch ?? batch;
    const px = this.contract.size * this.contract.size * 3;
    return this.session.run({ [this.contract.inputName]: inputTensor(this.contract, new Uint8Array(n * px), n) }).then(
      () => (performance.now() - t0) / 1000,
      (err: Error) => {
        throw new UsageError(
          `Expected ${this.meta.source || 'the model'} to run on a batch of ${n} images but it fails: ${err.message.split('\n')[0]}`,
        );
      },
    );
  }

  /**
   * Probabilities (n, K) and features (n, D; empty without a features output) of n decoded uint8 RGB
   * images, and which of them got a NaN or an infinity (a broken model: those rows must not be used).
   * A model that gives another number of scores than it has tags is refused (it would shift every row).
   */
  async run(
    images: Uint8Array,
    n: number,
  ): Promise<{ probs: Float32Array; features: Float32Array; nonFinite: number[] }> {
    const c = this.contract;
    const per = c.fixedBatch ?? n;
    const px = c.size * c.size * 3;
    const k = this.meta.tags.length;
    const d = c.featuresName ? this.meta.hidden : 0;
    const probs = new Float32Array(n * k);
    const features = new Float32Array(n * d);
    // A model whose batch dimension is fixed (at 1) runs one image per call.
    for (let i = 0; i < n; i += per) {
      const m = Math.min(per, n - i);
      let batch = images.subarray(i * px, (i + m) * px);
      if (m < per) (batch = new Uint8Array(per * px)).set(images.subarray(i * px, (i + m) * px)); // pad a fixed batch
      const out = await this.session.run({ [c.inputName]: inputTensor(c, batch, per) });
      const scores = out[c.probsName]!.data as Float32Array;
      if (scores.length !== per * k)
        throw new UsageError(
          `Expected ${k} scores per image from ${this.meta.source || 'the model'} (one per tag) but it gives ${scores.length / per}: its tags file or metadata does not belong to it`,
        );
      probs.set(scores.subarray(0, m * k), i * k);
      if (c.logits) for (let j = i * k; j < (i + m) * k; j++) probs[j] = 1 / (1 + Math.exp(-probs[j]!));
      if (c.featuresName) {
        const f = out[c.featuresName]!.data as Float32Array;
        if (f.length !== per * d)
          throw new UsageError(
            `Expected ${d} features per image from ${this.meta.source || 'the model'} but it gives ${f.length / per}`,
          );
        features.set(f.subarray(0, m * d), i * d);
      }
    }
    const nonFinite: number[] = [];
    for (let i = 0; i < n; i++)
      if (
        !probs.subarray(i * k, (i + 1) * k).every(Number.isFinite) ||
        !features.subarray(i * d, (i + 1) * d).every(Number.isFinite)
      )
        nonFinite.push(i);
    return { probs, features, nonFinite };
  }

  /**
   * Every output of the model on n decoded images in one run (a fixed batch padded with black images):
   * `quantize --mode static` reads the activations its calibration model exposes as outputs.
   */
  async runOutputs(images: Uint8Array, n: number): Promise<Record<string, ort.Tensor>> {
    const c = this.contract;
    const per = c.fixedBatch ?? n;
    if (per < n) throw new RangeError(`the model takes ${per} images per run, not ${n}`);
    const batch = per === n ? images : new Uint8Array(per * c.size * c.size * 3);
    if (batch !== images) batch.set(images);
    return this.session.run({ [c.inputName]: inputTensor(c, batch, per) });
  }

  /** Release the session; a second call waits for the first (ONNX Runtime's own release must run once). */
  release(): Promise<void> {
    return (this.releasing ??= this.session.release());
  }

  private releasing?: Promise<void>;
}
