#!/usr/bin/env bash
# `npm run setup:cuda`: puts ONNX Runtime 1.29.0's CUDA provider libraries next to the libonnxruntime
# that onnxruntime-node ships, from the npm package com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
# (needs the npm registry; CUDA 13 runtime, cuBLAS and cuDNN 9 on the machine). Opt-in: never part
# of `npm install` or CI.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=node_modules/onnxruntime-node/bin/napi-v6/linux/x64
[ -f "$dest/libonnxruntime.so.1" ] || { echo "setup:cuda: $dest/libonnxruntime.so.1 not found; run npm install first" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 >/dev/null && tar xzf ./*.tgz package/Plugins/Linux/x64)
for lib in libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so; do
  cp "$tmp/package/Plugins/Linux/x64/$lib" "$dest/$lib.tmp"
  mv "$dest/$lib.tmp" "$dest/$lib"
done
echo "setup:cuda: installed the CUDA provider libraries in $dest"
node dist/src/cli/main.js doctor --device cuda || true
