// What ONNX Runtime can run on here: its version, the execution providers onnxruntime-node lists, and
// for CUDA whether the provider libraries sit next to libonnxruntime (docs/ARCHITECTURE.md, "Packaging").
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import ort from 'onnxruntime-node';

export type Device = 'cpu' | 'cuda';
export const DEVICES: readonly Device[] = ['cpu', 'cuda'];

const require = createRequire(import.meta.url);

/** The folder holding onnxruntime-node's libonnxruntime.so.1. */
export function ortLibDir(): string {
  const pkg = path.dirname(require.resolve('onnxruntime-node/package.json'));
  return path.join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

export const CUDA_PROVIDER_FILES = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'];

export interface RuntimeReport {
  ortVersion: string;
  libDir: string;
  backends: { name: string; bundled: boolean }[];
  cudaMissing: string[];
}

export function runtimeReport(): RuntimeReport {
  const libDir = ortLibDir();
  return {
    ortVersion: ort.env.versions.common,
    libDir,
    backends: ort.listSupportedBackends().map((b) => ({ name: b.name, bundled: b.bundled })),
    cudaMissing: CUDA_PROVIDER_FILES.filter((f) => !existsSync(path.join(libDir, f))).map((f) => path.join(libDir, f)),
  };
}

/** The message for a CUDA set-up that lacks provider libraries: which files, and how to get them. */
export function cudaMissingMessage(missing: string[]): string {
  return `CUDA execution provider unavailable: missing ${missing.join(', ')}; install them with \`npm run setup:cuda\` (the com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 npm package, ORT 1.29.0) or reinstall onnxruntime-node with ONNXRUNTIME_NODE_INSTALL=cuda12 where NuGet is reachable`;
}

/** onnxruntime-node execution providers for a device. */
export function executionProviders(device: Device): string[] {
  return device === 'cuda' ? ['cuda'] : ['cpu'];
}
