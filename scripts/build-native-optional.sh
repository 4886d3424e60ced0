#!/bin/sh
# `npm install`'s native step: build the trainer addon when cmake, a C++ compiler and make or ninja are
# here; otherwise say in one line what is missing and what still works, and succeed: the addon is
# optional (train and demo fall back to the onnxruntime-node engine). ALT_I2V_REQUIRE_NATIVE=1 (CI)
# turns a missing toolchain or a failed build into a failed install.
missing=""
command -v cmake >/dev/null 2>&1 || missing="cmake"
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1; then
  missing="${missing:+$missing, }a C++ compiler (g++)"
fi
if ! command -v make >/dev/null 2>&1 && ! command -v ninja >/dev/null 2>&1; then
  missing="${missing:+$missing, }make or ninja"
fi
works="pred, eval, vec, similar, synth, tags, pairs, export and doctor work without it, and train and demo run on the onnxruntime-node engine (the native one trains the full model 2-6x faster and is needed for CUDA)"
later="to build it later, install cmake and g++ (e.g. apt-get install cmake g++) and run \`npm run build:native\`"
if [ -n "$missing" ]; then
  echo "alt-i2v-ort: native trainer addon not built: $missing not found; $works; $later" >&2
  [ "${ALT_I2V_REQUIRE_NATIVE:-0}" = 1 ] && exit 1
  exit 0
fi
if ! npm run build:native; then
  echo "alt-i2v-ort: native trainer addon build failed (output above); $works; fix the error and run \`npm run build:native\`" >&2
  [ "${ALT_I2V_REQUIRE_NATIVE:-0}" = 1 ] && exit 1
  exit 0
fi
