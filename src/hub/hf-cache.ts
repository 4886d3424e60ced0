// `--model hf:OWNER/REPO[@REVISION][:FILE]`: a model the Python tools (huggingface_hub: sd-scripts,
// the web UI tagger, ComfyUI) already downloaded, read from the Hugging Face cache where they keep it:
// HF_HUB_CACHE (or the older HUGGINGFACE_HUB_CACHE), else HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub; inside it
// models--OWNER--REPO/refs/REVISION holds the commit, snapshots/COMMIT/FILE the files. FILE defaults to
// model.onnx; the tags file is then found beside it as for any model. hf-download.ts fetches what the
// cache lacks.
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../util/errors.js';

/** The hub cache folder, as huggingface_hub finds it. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const cache = env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE;
  if (cache) return cache;
  const home = env.HF_HOME ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface');
  return path.join(home, 'hub');
}

export interface HfRef {
  repo: string;
  revision: string;
  file: string;
}

const NAME = /^[\w.-]+$/;

/** hf:OWNER/REPO[@REVISION][:FILE], each part checked (no `..`, no absolute file). */
export function parseHfRef(text: string): HfRef {
  const m = /^hf:([^/@:]+)\/([^/@:]+)(?:@([^:]+))?(?::(.+))?$/.exec(text);
  const bad = (why: string): never => {
    throw new UsageError(
      `Expected hf:OWNER/REPO[@REVISION][:FILE] for --model but received ${JSON.stringify(text)}: ${why}`,
    );
  };
  if (!m) return bad('it does not have that form');
  const [, owner, name, revision = 'main', file = 'model.onnx'] = m as unknown as string[];
  if (!NAME.test(owner!) || !NAME.test(name!) || owner === '..' || name === '..')
    bad('owner and repo are letters, digits, - _ .');
  if (revision.split('/').some((p) => p === '' || p === '..' || p === '.'))
    bad('the revision is a branch, tag or commit');
  if (path.isAbsolute(file) || file.split(/[\\/]/).some((p) => p === '..' || p === ''))
    bad('the file is a path inside the repository');
  return { repo: `${owner}/${name}`, revision, file };
}

/** The command that fetches `ref` with the Python tools. */
export const hfFetchHint = (ref: HfRef): string =>
  `fetch it with: huggingface-cli download ${ref.repo} ${ref.file}${ref.revision === 'main' ? '' : ` --revision ${ref.revision}`}`;

/** The local path of `ref` in the hub cache, or why it is not there. */
export function cachedHfFile(ref: HfRef, env: NodeJS.ProcessEnv = process.env): { file?: string; why: string } {
  const repoDir = path.join(hubCacheDir(env), `models--${ref.repo.replace('/', '--')}`);
  let commit = ref.revision;
  if (!/^[0-9a-f]{40}$/.test(ref.revision)) {
    const refFile = path.join(repoDir, 'refs', ...ref.revision.split('/'));
    if (!existsSync(refFile))
      return {
        why: `Expected ${ref.repo} at revision ${ref.revision} in the Hugging Face cache but ${JSON.stringify(refFile)} does not exist`,
      };
    commit = readFileSync(refFile, 'utf8').trim();
    if (!/^[0-9a-f]{40}$/.test(commit))
      throw new UsageError(
        `Expected a commit hash in ${JSON.stringify(refFile)} but it holds ${JSON.stringify(commit.slice(0, 80))}`,
      );
  }
  const file = path.join(repoDir, 'snapshots', commit, ...ref.file.split('/'));
  if (!existsSync(file))
    return {
      why: `Expected ${ref.file} of ${ref.repo} (commit ${commit.slice(0, 12)}) in the Hugging Face cache at ${JSON.stringify(file)} but it is not there`,
    };
  return { file, why: '' };
}
