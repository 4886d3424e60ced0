#!/usr/bin/env bash
# `npm run test:quick`: the inner loop's subset of `npm test`, under a minute on 2 cores — the tree and
# docs checks, published constants, data, selection, captions, contracts, the hub, serve, the CLI, the
# graph layers and the rewrites. Left to `npm test` (which CI runs whole): training runs, the native
# engine (its leak test alone takes ~45 s), the fault suite's kills and full disks, KPI fits, the
# quantize stand-ins.
set -euo pipefail
cd "$(dirname "$0")/.."
t=dist/test
exec node --test --test-concurrency=2 \
  $t/structure/*.test.js $t/published/*.test.js \
  $t/data/{tags,scan,synth,pad-resize,images,sniff}.test.js \
  $t/predict/{options,caption,caption-styles,pred-spec,contracts,foreign,frames,hf-cache,hf-download,hf-timeout,part,skip-done,gallery,batched}.test.js \
  $t/graphs/{rng,flops,layers,precision}.test.js $t/train/{loss-scaler,threads}.test.js \
  $t/quantize/{norms,layout,tiles,agreement}.test.js $t/serve/serve.test.js $t/model/embedding.test.js $t/cli/{cli,option-specs}.test.js $t/util/*.test.js
