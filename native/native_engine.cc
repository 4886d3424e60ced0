// NativeEngine: the N-API surface (argument checks, promises, workers) over the Engine (engine.cc).
// Workers convert inputs on the JS thread, run only the engine in Execute(), and build results in
// OnOK; errors carry the ORT error code and the caller's stack.
#include "native_engine.h"

#include <cstring>
#include <utility>

#include "load_options.h"

namespace alt_i2v {

namespace {

const uint8_t* CheckedBytes(const Napi::Value& v, size_t want, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(v.Env(), std::string("Expected Uint8Array for ") + what);
  }
  auto a = v.As<Napi::Uint8Array>();
  if (a.ByteLength() != want) {
    throw Napi::RangeError::New(v.Env(), std::string("Expected ") + std::to_string(want) + " bytes for " + what +
                                             " but received " + std::to_string(a.ByteLength()));
  }
  return a.Data();
}

Napi::Float32Array ToFloat32Array(Napi::Env env, const std::vector<float>& v) {
  auto out = Napi::Float32Array::New(env, v.size());
  std::memcpy(out.Data(), v.data(), v.size() * sizeof(float));
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Workers

class EngineWorker : public Napi::AsyncWorker {
 public:
  EngineWorker(Napi::Env env, NativeEngine* owner, Napi::Object self, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), owner_(owner), name_(name) {
    self_ = Napi::Persistent(self);
    // An Error made now holds the caller's stack; failures reuse it so they point at the JS call.
    caller_ = Napi::Persistent(Napi::Error::New(env, name).Value());
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  // Holds a JS buffer (or array of them) alive while Execute() reads it; primitives need no holding.
  void Keep(Napi::Value v) {
    if (v.IsObject()) kept_.push_back(Napi::Persistent(v));
  }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;

  void Execute() override {
    try {
      Run();
    } catch (const Ort::Exception& e) {
      code_ = OrtCodeName(e.GetOrtErrorCode());
      SetError(e.what());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    owner_->Release();
    Napi::Value result = Result(env);
    deferred_.Resolve(result);
  }
  void OnError(const Napi::Error& e) override {
    owner_->Release();
    Napi::Object err = caller_.Value().As<Napi::Object>();
    std::string message = name_ + ": " + e.Message();
    err.Set("message", message);
    if (!code_.empty()) err.Set("code", code_);
    std::string stack = err.Get("stack").ToString().Utf8Value();
    size_t eol = stack.find('\n');
    err.Set("stack", "Error: " + message + (eol == std::string::npos ? "" : stack.substr(eol)));
    deferred_.Reject(err);
  }

  Napi::Promise::Deferred deferred_;
  NativeEngine* owner_;
  Napi::ObjectReference self_;
  Napi::ObjectReference caller_;
  std::vector<Napi::Reference<Napi::Value>> kept_;
  std::string name_;  // "NativeEngine.step": starts every error message
  std::string code_;
};

// load() makes a new engine and uploads the state; setState() (name "NativeEngine.setState") uploads
// into the existing one.
class LoadWorker : public EngineWorker {
 public:
  LoadWorker(Napi::Env env, NativeEngine* s, Napi::Object self, const char* name, Options options,
             std::vector<const float*> params, std::vector<const float*> m, std::vector<const float*> v,
             std::shared_ptr<Engine> existing)
      : EngineWorker(env, s, self, name),
        options_(std::move(options)),
        params_(std::move(params)),
        m_(std::move(m)),
        v_(std::move(v)),
        engine_(std::move(existing)) {}

 protected:
  void Run() override {
    if (!engine_) engine_ = std::make_shared<Engine>(std::move(options_));
    engine_->Upload(params_, m_, v_);
  }
  Napi::Value Result(Napi::Env env) override {
    owner_->Attach(engine_);
    return env.Undefined();
  }

 private:
  Options options_;
  std::vector<const float*> params_, m_, v_;
  std::shared_ptr<Engine> engine_;
};

class StepWorker : public EngineWorker {
 public:
  StepWorker(Napi::Env env, NativeEngine* s, Napi::Object self, std::shared_ptr<Engine> e, const uint8_t* images,
             const uint8_t* labels, const uint8_t* keep, int64_t n, float lr_t, float eps_t, float loss_scale)
      : EngineWorker(env, s, self, "NativeEngine.step"),
        engine_(std::move(e)),
        images_(images),
        labels_(labels),
        keep_(keep),
        n_(n),
        lr_t_(lr_t),
        eps_t_(eps_t),
        loss_scale_(loss_scale) {}

 protected:
  void Run() override { loss_ = engine_->Step(images_, labels_, keep_, n_, lr_t_, eps_t_, loss_scale_, &applied_); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("loss", Napi::Number::New(env, loss_));
    out.Set("applied", Napi::Boolean::New(env, applied_));
    return out;
  }

 private:
  std::shared_ptr<Engine> engine_;
  const uint8_t *images_, *labels_, *keep_;
  int64_t n_;
  float lr_t_, eps_t_, loss_scale_;
  float loss_ = 0;
  bool applied_ = true;
};

class EvaluateWorker : public EngineWorker {
 public:
  EvaluateWorker(Napi::Env env, NativeEngine* s, Napi::Object self, std::shared_ptr<Engine> e, const uint8_t* images,
                 const uint8_t* labels, int64_t n)
      : EngineWorker(env, s, self, "NativeEngine.evaluate"),
        engine_(std::move(e)),
        images_(images),
        labels_(labels),
        n_(n) {}

 protected:
  void Run() override { loss_ = engine_->Evaluate(images_, labels_, n_, &probs_); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("loss", Napi::Number::New(env, loss_));
    out.Set("probs", ToFloat32Array(env, probs_));
    return out;
  }

 private:
  std::shared_ptr<Engine> engine_;
  const uint8_t *images_, *labels_;
  int64_t n_;
  float loss_ = 0;
  std::vector<float> probs_;
};

// Downloads into JS Float32Arrays made (or handed in) on the JS thread, so the copy and its page faults
// happen on the worker thread and the JS thread only resolves the promise.
class GetStateWorker : public EngineWorker {
 public:
  GetStateWorker(Napi::Env env, NativeEngine* s, Napi::Object self, std::shared_ptr<Engine> e, Napi::Object out,
                 std::vector<float*> params, std::vector<float*> m, std::vector<float*> v)
      : EngineWorker(env, s, self, "NativeEngine.getState"),
        engine_(std::move(e)),
        params_(std::move(params)),
        m_(std::move(m)),
        v_(std::move(v)) {
    out_ = Napi::Persistent(out);
  }

 protected:
  void Run() override { engine_->Download(params_, m_, v_); }
  Napi::Value Result(Napi::Env) override { return out_.Value(); }

 private:
  std::shared_ptr<Engine> engine_;
  std::vector<float*> params_, m_, v_;
  Napi::ObjectReference out_;
};

// ---------------------------------------------------------------------------------------------
// NativeEngine (JS surface)

namespace {

// Marks the engine busy, holds the JS buffers the worker reads, and queues it.
Napi::Value Start(bool& busy, EngineWorker* worker, std::initializer_list<Napi::Value> keep) {
  for (const Napi::Value& v : keep) worker->Keep(v);
  busy = true;
  worker->Queue();
  return worker->Promise();
}

struct Batch {
  const uint8_t* images;
  const uint8_t* labels;
  int64_t n;
};

// images = info[0], labels = info[1], n = info[n_index], checked against the model's sizes.
Batch CheckBatch(const Napi::CallbackInfo& info, size_t n_index, const Options& o) {
  int64_t n = info[n_index].As<Napi::Number>().Int64Value();
  if (n < 1) throw Napi::RangeError::New(info.Env(), "Expected n ≥ 1");
  return {CheckedBytes(info[0], static_cast<size_t>(n * o.input_bytes), "images"),
          CheckedBytes(info[1], static_cast<size_t>(n * o.tags), "labels"), n};
}

// params[], m?[], v?[] from info[first..first+2].
StateViews ParseState(const Napi::CallbackInfo& info, size_t first, const std::vector<TensorSpec>& specs) {
  return ParseState(info[first], info[first + 1], info[first + 2], specs);
}

}  // namespace

void NativeEngine::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "NativeEngine",
      {InstanceMethod<&NativeEngine::Load>("load"), InstanceMethod<&NativeEngine::Step>("step"),
       InstanceMethod<&NativeEngine::Evaluate>("evaluate"), InstanceMethod<&NativeEngine::GetState>("getState"),
       InstanceMethod<&NativeEngine::SetState>("setState"), InstanceMethod<&NativeEngine::Dispose>("dispose"),
       InstanceAccessor<&NativeEngine::IsBusy>("busy"), InstanceAccessor<&NativeEngine::IsLoaded>("loaded")});
  exports.Set("NativeEngine", ctor);
}

NativeEngine::NativeEngine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEngine>(info) {}

void NativeEngine::CheckUsable(Napi::Env env, const char* method, bool need_engine) {
  if (disposed_) throw Napi::Error::New(env, std::string("NativeEngine.") + method + ": the engine is disposed");
  if (busy_)
    throw Napi::Error::New(
        env, std::string("NativeEngine.") + method + ": another call on this engine is still running; await it first");
  if (need_engine && !engine_)
    throw Napi::Error::New(env, std::string("NativeEngine.") + method + ": the engine is not loaded");
}

// load(options, params[], m?[], v?[]) → Promise<void>
Napi::Value NativeEngine::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "load", false);
  if (engine_) throw Napi::Error::New(env, "NativeEngine.load: already loaded; use setState");
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "Expected an options object");
  Options opt = ParseLoadOptions(info[0].As<Napi::Object>());
  StateViews st = ParseState(info, 1, opt.specs);
  auto* worker = new LoadWorker(env, this, Value(), "NativeEngine.load", std::move(opt), std::move(st.params),
                                std::move(st.m), std::move(st.v), nullptr);
  return Start(busy_, worker, {info[1], info[2], info[3]});
}

// setState(params[], m?[], v?[]) → Promise<void>
Napi::Value NativeEngine::SetState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "setState", true);
  StateViews st = ParseState(info, 0, engine_->options().specs);
  auto* worker = new LoadWorker(env, this, Value(), "NativeEngine.setState", Options{}, std::move(st.params),
                                std::move(st.m), std::move(st.v), engine_);
  return Start(busy_, worker, {info[0], info[1], info[2]});
}

// step(images, labels, keep|null, n, lrT, epsT, lossScale = 1) → Promise<{loss, applied}>
Napi::Value NativeEngine::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "step", true);
  const Options& o = engine_->options();
  Batch b = CheckBatch(info, 3, o);
  const uint8_t* keep = o.has_keep ? CheckedBytes(info[2], static_cast<size_t>(b.n * o.hidden), "keep") : nullptr;
  float lr_t = info[4].As<Napi::Number>().FloatValue();
  float eps_t = info[5].As<Napi::Number>().FloatValue();
  float loss_scale = info[6].IsNumber() ? info[6].As<Napi::Number>().FloatValue() : 1.0f;
  return Start(busy_,
               new StepWorker(env, this, Value(), engine_, b.images, b.labels, keep, b.n, lr_t, eps_t, loss_scale),
               {info[0], info[1], info[2]});
}

// evaluate(images, labels, n) → Promise<{loss, probs}>
Napi::Value NativeEngine::Evaluate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "evaluate", true);
  Batch b = CheckBatch(info, 2, engine_->options());
  return Start(busy_, new EvaluateWorker(env, this, Value(), engine_, b.images, b.labels, b.n), {info[0], info[1]});
}

// getState(into?: {params[], m[], v[]}) → Promise<{params, m, v}>: into the given arrays (checked
// against the specs' sizes), or into new ones.
Napi::Value NativeEngine::GetState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "getState", true);
  const std::vector<TensorSpec>& specs = engine_->options().specs;
  Napi::Object out;
  if (info.Length() > 0 && info[0].IsObject()) {
    out = info[0].As<Napi::Object>();
  } else {
    auto fresh = [&](bool trainable_only) {
      Napi::Array a = Napi::Array::New(env);
      for (const auto& s : specs)
        if (!trainable_only || s.role == Role::kTrainable) a.Set(a.Length(), Napi::Float32Array::New(env, s.numel));
      return a;
    };
    out = Napi::Object::New(env);
    out.Set("params", fresh(false));
    out.Set("m", fresh(true));
    out.Set("v", fresh(true));
  }
  StateViews views = ParseState(out.Get("params"), out.Get("m"), out.Get("v"), specs);
  if (views.m.empty() && HasTrainable(specs))
    throw Napi::TypeError::New(env, "Expected arrays params, m and v to download the state into");
  auto writable = [](const std::vector<const float*>& xs) {
    std::vector<float*> w;
    for (const float* x : xs) w.push_back(const_cast<float*>(x));  // JS Float32Arrays: writable memory
    return w;
  };
  return Start(busy_,
               new GetStateWorker(env, this, Value(), engine_, out, writable(views.params), writable(views.m),
                                  writable(views.v)),
               {out.Get("params"), out.Get("m"), out.Get("v")});
}

// Frees the device state. Harmless twice; while a call runs, the engine goes when the worker lets go
// of its shared_ptr (a load/setState finishing after dispose does not re-attach it).
Napi::Value NativeEngine::Dispose(const Napi::CallbackInfo& info) {
  disposed_ = true;
  engine_.reset();
  return info.Env().Undefined();
}

Napi::Value NativeEngine::IsBusy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), busy_); }

Napi::Value NativeEngine::IsLoaded(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), engine_ != nullptr);
}

}  // namespace alt_i2v
