// Registers the addon's exports; the work lives in native_engine.cc.
#include <napi.h>

#include "native_engine.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  alt_i2v::NativeEngine::Init(env, exports);
  exports.Set("ortApiVersion", Napi::Number::New(env, ORT_API_VERSION));
  return exports;
}

NODE_API_MODULE(alt_i2v_native, Init)
