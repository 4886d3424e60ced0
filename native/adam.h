// Adam applied in place to host-resident state (the CPU engine): one pass that reads the parameter,
// its gradient and both moments and writes the parameter and moments back, instead of the twelve
// element-wise graph ops (each a full pass over memory) and three fresh output buffers per tensor.
#pragma once

#include <cstddef>
#include <vector>

namespace alt_i2v {

// float32 constants exactly as the graph's Adam holds them (computed and rounded by the TypeScript
// side), so both give bit-identical results.
struct AdamConstants {
  float beta1 = 0, one_minus_beta1 = 0, beta2 = 0, one_minus_beta2 = 0;
};

struct AdamTensor {
  float* param;
  const float* grad;
  float* m;
  float* v;
  size_t numel;
};

// The graph's update, op for op in float32 (training/graphs.ts adamUpdate):
//   m' = m·β1 + g·(1−β1),  v' = v·β2 + (g·g)·(1−β2),  p' = p − (m'·lr_t) / (√v' + ε_t)
// spread over `threads` threads (≥ 1) in chunks.
void AdamInPlace(const std::vector<AdamTensor>& tensors, const AdamConstants& c, float lr_t, float eps_t, int threads);

}  // namespace alt_i2v
