// NativeEngine: the JS face of the Engine (engine.h). Argument checks, promises and one AsyncWorker per
// call; the engine itself never sees N-API.
#pragma once

#include <napi.h>

#include <memory>

#include "engine.h"

namespace alt_i2v {

class NativeEngine : public Napi::ObjectWrap<NativeEngine> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit NativeEngine(const Napi::CallbackInfo& info);

  // Called by the workers on the JS thread when they finish.
  void Release() { busy_ = false; }
  // A finished load/setState hands its engine back; ignored once dispose() ran, so it is freed.
  void Attach(std::shared_ptr<Engine> engine) {
    if (!disposed_) engine_ = std::move(engine);
  }

 private:
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value Evaluate(const Napi::CallbackInfo& info);
  Napi::Value GetState(const Napi::CallbackInfo& info);
  Napi::Value SetState(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsBusy(const Napi::CallbackInfo& info);
  Napi::Value IsLoaded(const Napi::CallbackInfo& info);
  void CheckUsable(Napi::Env env, const char* method, bool need_engine);

  std::shared_ptr<Engine> engine_;
  bool busy_ = false;
  bool disposed_ = false;
};

}  // namespace alt_i2v
