// A foreign tagger's contract and tags: from --contract FILE.json, --preset NAME, or auto (the tags
// file named by --tags, or a preset's tags file found beside the model, and the model's input layout).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { presetDocs, readContractFile, type ContractDoc } from './contract-doc.js';
import { autoPreset, inputLayout } from './contract.js';
import { parseForeignTags, readTagsFile, sniffTagFormat, type ForeignTags } from './tag-files.js';
import { UsageError } from '../util/errors.js';
import type ort from 'onnxruntime-node';

export interface ForeignChoice {
  doc: ContractDoc;
  /** Why this contract, for the line `pred` prints. */
  why: string;
  tagsFile: string;
  tags: ForeignTags;
}

export async function chooseForeign(
  session: Pick<ort.InferenceSession, 'inputMetadata' | 'outputNames'>,
  file: string,
  o: { preset?: string; contract?: string; tags?: string },
): Promise<ForeignChoice> {
  const docs = await presetDocs();
  const beside = (doc: ContractDoc): string => path.join(path.dirname(file), doc.tags.file);
  let doc: ContractDoc | undefined;
  let why = '';
  if (o.contract) {
    doc = await readContractFile(o.contract);
    why = `contract ${o.contract}`;
  } else if (o.preset && o.preset !== 'auto') {
    doc = docs.get(o.preset);
    if (!doc)
      throw new UsageError(
        `Expected a preset (${[...docs.keys()].join(', ')}) for --preset but received ${JSON.stringify(o.preset)}`,
      );
    why = `preset ${o.preset}`;
  }
  let tagsFile = o.tags ?? (doc ? beside(doc) : undefined);
  if (!tagsFile) {
    const layout = inputLayout(session);
    const found = [...docs.values()].find((d) => d.input.layout === layout && existsSync(beside(d)));
    if (!found)
      throw new UsageError(
        `Expected an alt-i2v-ort model (metadata format=alt-i2v-ort/model) in ${JSON.stringify(file)} but its metadata has no format; export one with \`alt-i2v-ort export\`, or give --tags for a foreign tagger (or put its tags file beside it: ${[...new Set([...docs.values()].map((d) => d.tags.file))].join(', ')})`,
      );
    tagsFile = beside(found);
  }
  if (!existsSync(tagsFile) && !o.tags)
    throw new UsageError(`Expected the tags file ${JSON.stringify(tagsFile)} (${why}) beside the model, or --tags`);
  const bytes = await readTagsFile(tagsFile);
  if (!doc) {
    const format = sniffTagFormat(tagsFile, bytes);
    const auto = autoPreset(docs, session, tagsFile, format, file);
    doc = auto.doc;
    why = `preset ${doc.family} (${auto.why})`;
  }
  // A tags file the user names is read by its own format; one found beside the model, by the contract's.
  return { doc, why, tagsFile, tags: parseForeignTags(bytes, tagsFile, o.tags ? undefined : doc.tags.format) };
}
