#!/usr/bin/env bash
# One prepared check for a machine with an NVIDIA GPU (CUDA 13 runtime, cuBLAS, cuDNN 9; no internet):
# provider libraries, the CUDA gradient check, the NativeEngine-vs-OrtEngine equality test on CUDA, the demo
# in float32 and float16, the full-size training step on CUDA at batch 64 and 128 (float32, TF32, float16)
# and the train loop's ceiling on the host. Never part of CI.
#   On a machine with the npm registry:  npm ci && npm run setup:cuda && bash bench/gpu.sh
#   On an offline GPU machine, with a bundle made by bench/gpu-bundle.sh:  bash bench/gpu.sh --bundle DIR
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/results}
mkdir -p "$out"
log() { echo "== $*"; }

if [ "${1:-}" = "--bundle" ]; then
  b=$2
  if [ ! -x node_modules/.node/bin/node ]; then log "unpacking $b/runtime.tar.xz"; xz -d -T0 < "$b/runtime.tar.xz" | tar -x; fi
  log "unpacking the CUDA provider libraries from $b/cuda.tar.xz.*"
  cat "$b"/cuda.tar.xz.[0-9][0-9] | xz -d -T0 | tar -x -C node_modules/onnxruntime-node/bin/napi-v6/linux/x64
  export PATH="$PWD/node_modules/.node/bin:$PATH"
fi
# CUDA runtime libraries: the system's and those of pip's nvidia-* packages, where present.
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
  $(find /opt /usr/local/lib /usr/lib/python3 -path '*site-packages/nvidia*' -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u); do
  [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
export LD_LIBRARY_PATH

log "machine"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; node --version
lib=$(node -e "console.log(require('path').dirname(require.resolve('onnxruntime-node/package.json')))")/bin/napi-v6/linux/x64
log "provider libraries in $lib"; ls -la "$lib"
log "unresolved libraries of the CUDA provider"; ldd "$lib/libonnxruntime_providers_cuda.so" | grep "not found" || echo none
log "doctor --device cuda --gradcheck"; node dist/src/cli/main.js doctor --device cuda --gradcheck 2>&1 | grep -v 'max rel error'
log "NativeEngine on CUDA vs OrtEngine on the CPU"
ALT_I2V_TEST_DEVICE=cuda node --test --test-reporter=spec dist/test/native/native-engine.test.js 2>&1 | grep -E '✔|✖|ℹ|Error'
log "demo on CUDA (synth → tags → pairs → train → export → predictions)"
rm -rf "${TMPDIR:-/tmp}/alt-i2v-demo-cuda"
node dist/src/cli/main.js demo --device cuda --out "${TMPDIR:-/tmp}/alt-i2v-demo-cuda" 2>/dev/null | grep -E '^round (1|30|60)/|^done|^holdout mAP|^  0|^      \|'
log "demo on CUDA with --precision fp16 (holdout mAP beside the float32 one above; goal: within 0.01)"
rm -rf "${TMPDIR:-/tmp}/alt-i2v-demo-cuda-fp16"
node dist/src/cli/main.js demo --device cuda --precision fp16 --out "${TMPDIR:-/tmp}/alt-i2v-demo-cuda-fp16" 2>/dev/null | grep -E '^round (1|30|60)/|^done|^holdout mAP'
[ "${GPU_BENCH:-1}" = 1 ] || exit 0
log "full-size training step on CUDA: float32, TF32, float16 (mixed) vs TF32, batch 64 and 128, with TFLOP/s and % of peak"
node dist/bench/run.js native --device cuda --batches 64 128 2>&1 | grep -E '^\||results'
cp bench/results/native-cuda.json "$out/" 2>/dev/null || true
log "train loop around a null engine on this host: ceiling img/s and how long a 2 GB checkpoint blocks it"
node dist/bench/run.js loop --quick 2>&1 | grep -E '^\||results'
cp bench/results/loop.json "$out/loop-gpu-host.json" 2>/dev/null || true
