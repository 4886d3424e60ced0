#!/usr/bin/env bash
# Packs what bench/gpu.sh needs on an offline GPU machine without Node.js or a registry: the node binary
# (as node_modules/.node/bin/node), node_modules without other platforms' binaries, dist/, the built
# addon (runtime.tar.xz), and the CUDA provider libraries from `npm run setup:cuda` as cuda.tar.xz.NN
# chunks (FIRST_MB, then CHUNK_MB each) sized for a file transfer with a per-call limit.
#   bash bench/gpu-bundle.sh DIR        then, on the GPU machine: bash bench/gpu.sh --bundle DIR
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: bench/gpu-bundle.sh DIR}
first=${FIRST_MB:-12}
chunk=${CHUNK_MB:-61}
lib=node_modules/onnxruntime-node/bin/napi-v6/linux/x64
[ -f "$lib/libonnxruntime_providers_cuda.so" ] || { echo "run npm run setup:cuda first" >&2; exit 1; }
[ -f build/Release/alt_i2v_native.node ] || { echo "run npm run build:native first" >&2; exit 1; }
rm -rf "$dir" && mkdir -p "$dir/stage/node_modules/.node/bin"
cp "$(command -v node)" "$dir/stage/node_modules/.node/bin/node"
tar -cf - --exclude='node_modules/com.github.asus4.onnxruntime*' --exclude='node_modules/typescript' \
  --exclude='node_modules/onnxruntime-node/bin/napi-v6/darwin' --exclude='node_modules/onnxruntime-node/bin/napi-v6/win32' \
  --exclude='node_modules/onnxruntime-node/bin/napi-v6/linux/arm64' --exclude="$lib/libonnxruntime_providers_*" \
  node_modules dist build/Release/alt_i2v_native.node | tar -xf - -C "$dir/stage"
tar -cf - -C "$dir/stage" . | xz -T0 -6 > "$dir/runtime.tar.xz"
rm -rf "$dir/stage"
tar -cf - -C "$lib" libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so | xz -T0 -9 > "$dir/cuda.tar.xz"
head -c "$((first << 20))" "$dir/cuda.tar.xz" > "$dir/cuda.tar.xz.00"
tail -c "+$(((first << 20) + 1))" "$dir/cuda.tar.xz" | split -b "${chunk}m" -d --numeric-suffixes=1 - "$dir/cuda.tar.xz."
rm "$dir/cuda.tar.xz"
ls -la "$dir"
