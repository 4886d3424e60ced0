// The in-place Adam pass. Built with -ffp-contract=off (CMakeLists.txt): every product and sum is
// rounded to float32 on its own, as the graph's separate Mul/Add ops are, so no FMA changes a bit.
#include "adam.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

namespace alt_i2v {

namespace {

constexpr size_t kChunk = 1 << 16;  // elements per work item: 256 KB of each array

void AdamRange(const AdamTensor& t, size_t begin, size_t end, const AdamConstants& c, float lr_t, float eps_t) {
  float* __restrict p = t.param;
  const float* __restrict g = t.grad;
  float* __restrict m = t.m;
  float* __restrict v = t.v;
  for (size_t i = begin; i < end; i++) {
    const float gi = g[i];
    const float mi = m[i] * c.beta1 + gi * c.one_minus_beta1;
    const float vi = v[i] * c.beta2 + (gi * gi) * c.one_minus_beta2;
    p[i] = p[i] - (mi * lr_t) / (std::sqrt(vi) + eps_t);
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace

void AdamInPlace(const std::vector<AdamTensor>& tensors, const AdamConstants& c, float lr_t, float eps_t, int threads) {
  struct Item {
    size_t tensor, begin, end;
  };
  std::vector<Item> items;
  for (size_t k = 0; k < tensors.size(); k++) {
    for (size_t b = 0; b < tensors[k].numel; b += kChunk)
      items.push_back({k, b, std::min(tensors[k].numel, b + kChunk)});
  }
  if (items.empty()) return;
  std::atomic<size_t> next{0};
  auto work = [&]() {
    for (size_t i = next.fetch_add(1); i < items.size(); i = next.fetch_add(1)) {
      AdamRange(tensors[items[i].tensor], items[i].begin, items[i].end, c, lr_t, eps_t);
    }
  };
  const size_t helpers = std::min(items.size(), static_cast<size_t>(std::max(threads, 1))) - 1;
  std::vector<std::thread> pool;
  pool.reserve(helpers);
  for (size_t i = 0; i < helpers; i++) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
}

}  // namespace alt_i2v
