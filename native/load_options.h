// options of NativeEngine.load(): the JS object, checked and copied once into plain C++ (engine.h Options).
#pragma once

#include <napi.h>

#include "engine.h"

namespace alt_i2v {

Options ParseLoadOptions(const Napi::Object& o);

}  // namespace alt_i2v
