// options of NativeEngine.load(): the JS object, checked and copied once into plain C++ (engine.h Options).
#pragma once

#include <napi.h>

#include "engine.h"

namespace alt_i2v {

Options ParseLoadOptions(const Napi::Object& o);

// Float32Array views of a JS array of typed arrays, checked against the expected element counts
// (empty when allow_empty and the value is undefined or null).
std::vector<const float*> FloatViews(const Napi::Value& v, const std::vector<size_t>& counts, const char* what,
                                     bool allow_empty);

struct StateViews {
  std::vector<const float*> params, m, v;
};

bool HasTrainable(const std::vector<TensorSpec>& specs);

// params[], m?[], v?[], checked against the specs' element counts.
StateViews ParseState(const Napi::Value& params, const Napi::Value& m, const Napi::Value& v,
                      const std::vector<TensorSpec>& specs);

}  // namespace alt_i2v
