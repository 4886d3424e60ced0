#!/usr/bin/env bash
# One prepared check for a machine with an NVIDIA GPU (CUDA 13 runtime, cuBLAS, cuDNN 9; no internet):
# provider libraries, the CUDA gradient check, the NativeEngine-vs-OrtEngine equality test on CUDA, the demo
# in float32 and float16, the full-size training step on CUDA at batch 64 and 128 (float32, TF32, float16)
# the train loop's ceiling on the host, and which provider runs each node of every graph with the train
# step's top ten ops (bench/coverage.ts). Each step is timed against its budget on the device; the
# results (JSON) go to $OUT (default bench/results), and the run fails if one is missing.
#   On a machine with the npm registry:  npm ci && npm run setup:cuda && bash bench/gpu.sh
#   On an offline GPU machine, with a bundle made by bench/gpu-bundle.sh:  bash bench/gpu.sh --bundle DIR
#   Rehearsal, anywhere (CI runs it): bash bench/gpu.sh --dry-run — every step on the CPU with tiny sizes
#   (demo of 150 images and 2 rounds, the step bench with the tiny model at batch 4 and 8), its results in
#   a temporary folder, then the budget of the real run per step.
set -uo pipefail
cd "$(dirname "$0")/.."
log() { echo "== $*"; }

dry=0
case "${1:-}" in
--dry-run) dry=1 ;;
--bundle)
  b=$2
  if [ ! -x node_modules/.node/bin/node ]; then log "unpacking $b/runtime.tar.xz"; xz -d -T0 < "$b/runtime.tar.xz" | tar -x; fi
  log "unpacking the CUDA provider libraries from $b/cuda.tar.xz.*"
  cat "$b"/cuda.tar.xz.[0-9][0-9] | xz -d -T0 | tar -x -C node_modules/onnxruntime-node/bin/napi-v6/linux/x64
  export PATH="$PWD/node_modules/.node/bin:$PATH"
  ;;
esac
if [ $dry = 1 ]; then
  out=${OUT:-$(mktemp -d)}
  dev=cpu
  demo_size=(--count 150 --rounds 2)
  batches=(4 8)
else
  out=${OUT:-bench/results}
  dev=cuda
  demo_size=()
  batches=(64 128)
fi
mkdir -p "$out"
export ALT_I2V_BENCH_RESULTS=$out
tmp=${TMPDIR:-/tmp}

# Seconds each step may take on the device (H200, 2026-11-27 log and the steps since; the whole run
# must fit in 8 minutes with its results copied back): checked by the dry run, reported by the real one.
declare -A budget=([libraries]=10 [doctor]=20 [equality]=30 [demo]=60 [demo-fp16]=70 [step-bench]=220 [loop]=45 [coverage]=25)
order=(libraries doctor equality demo demo-fp16 step-bench loop coverage)
declare -A took
failed=0
step() {
  local name=$1
  shift
  log "$name: $*"
  local t0=$SECONDS
  "$@" || { echo "!! step $name failed"; failed=1; }
  took[$name]=$((SECONDS - t0))
}

libraries() {
  if [ $dry = 1 ]; then
    node --version
    node -e "const r=require('onnxruntime-node');console.log('onnxruntime-node', r.env.versions.common, '(CPU provider; no GPU in a dry run)')"
    return
  fi
  # CUDA runtime libraries: the system's and those of pip's nvidia-* packages, where present.
  for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
    $(find /opt /usr/local/lib /usr/lib/python3 -path '*site-packages/nvidia*' -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u); do
    [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
  done
  export LD_LIBRARY_PATH
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  node --version
  local lib
  lib=$(node -e "console.log(require('path').dirname(require.resolve('onnxruntime-node/package.json')))")/bin/napi-v6/linux/x64
  ls -la "$lib"
  echo "unresolved libraries of the CUDA provider:"
  ldd "$lib/libonnxruntime_providers_cuda.so" | grep "not found" || echo none
}
doctor() { node dist/src/cli/main.js doctor --device $dev --gradcheck 2>&1 | grep -v 'max rel error'; }
equality() {
  # The leak test (1,000 steps) is the CPU suite's; on the device the equality tests are what matter.
  ALT_I2V_TEST_DEVICE=$dev ALT_I2V_SKIP_LEAK_TEST=1 node --test --test-reporter=spec \
    dist/test/native/native-engine.test.js 2>&1 | grep -E '✔|✖|ℹ (pass|fail)|Error'
  return "${PIPESTATUS[0]}"
}
demo() {
  local precision=$1
  rm -rf "$tmp/alt-i2v-demo-$dev-$precision"
  node dist/src/cli/main.js demo --device $dev --precision "$precision" "${demo_size[@]}" \
    --out "$tmp/alt-i2v-demo-$dev-$precision" 2>/dev/null | grep -E '^round (1|2|30|60)/|^done|^holdout mAP' |
    tee "$out/demo-$precision.txt"
  return "${PIPESTATUS[0]}"
}
step_bench() {
  local flags=(--device $dev --batches "${batches[@]}")
  [ $dry = 1 ] && flags=(--device cpu --rehearse --batches "${batches[@]}")
  node dist/bench/run.js native "${flags[@]}" 2>&1 | grep -E '^\||results'
  return "${PIPESTATUS[0]}"
}
loop() {
  node dist/bench/run.js loop --quick 2>&1 | grep -E '^\||results'
  local rc=${PIPESTATUS[0]}
  cp "$out/loop.json" "$out/loop-gpu-host.json" 2>/dev/null
  return "$rc"
}

coverage() {
  # Which provider ran each node of every graph (tiny model) and the full train step's top ten ops; on
  # CUDA with blocking launches, so that the profiler's node times include their kernels.
  local flags=(--device $dev)
  [ $dry = 1 ] && flags+=(--rehearse)
  CUDA_LAUNCH_BLOCKING=1 node dist/bench/run.js coverage "${flags[@]}" 2>&1 | grep -E '^\||: |results'
  return "${PIPESTATUS[0]}"
}

step libraries libraries
step doctor doctor
step equality equality
step demo demo fp32
step demo-fp16 demo fp16
if [ "${GPU_BENCH:-1}" = 1 ]; then
  step step-bench step_bench
  step loop loop
  step coverage coverage
fi

log "results in $out"
results=(demo-fp32.txt demo-fp16.txt)
if [ "${GPU_BENCH:-1}" = 1 ]; then
  # The summary (gpu-DATE.json) and README's table of the run: node dist/bench/gpu-report.js DIR --readme
  # where the results came back to.
  node dist/bench/gpu-report.js "$out" || failed=1
  results+=(native-cuda.json loop-gpu-host.json coverage-cuda.json "gpu-$(date -u +%F).json")
fi
for f in "${results[@]}"; do
  if [ ! -s "$out/$f" ]; then
    echo "!! missing result $out/$f"
    failed=1
  fi
done
total=0
printf '%-12s %8s %14s\n' step "took (s)" "device budget"
for s in "${order[@]}"; do
  [ -n "${took[$s]:-}" ] || continue # a step GPU_BENCH=0 leaves out
  printf '%-12s %8s %14s\n' "$s" "${took[$s]}" "${budget[$s]}"
  total=$((total + budget[$s]))
done
printf '%-12s %8s %14s\n' total "$SECONDS" "$total"
if [ "$total" -gt 480 ]; then
  echo "!! the device run's budget is $total s, over the 8 minutes it may take"
  failed=1
fi
[ $dry = 1 ] && [ -z "${OUT:-}" ] && rm -rf "$out"
exit $failed
