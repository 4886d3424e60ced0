// TrainSession: N-API surface (argument checks, promises, workers) and the Engine that owns the ONNX
// Runtime sessions and device buffers. Workers convert inputs on the JS thread, run only ONNX Runtime
// in Execute(), and build results in OnOK; errors carry the ORT error code and the caller's stack.
#include "train_session.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace alt_i2v {

namespace {

Ort::Env& GlobalEnv() {
  // One OrtEnv per process, shared with onnxruntime-node through the same libonnxruntime. Never
  // destroyed: releasing it from a static destructor at exit, after the CUDA provider library has
  // been torn down, corrupted the heap ("corrupted double-linked list" on an H200).
  static Ort::Env* env = new Ort::Env(ORT_LOGGING_LEVEL_WARNING, "alt-i2v-ort");
  return *env;
}

const char* OrtCodeName(OrtErrorCode code) {
  switch (code) {
    case ORT_OK: return "ORT_OK";
    case ORT_FAIL: return "ORT_FAIL";
    case ORT_INVALID_ARGUMENT: return "ORT_INVALID_ARGUMENT";
    case ORT_NO_SUCHFILE: return "ORT_NO_SUCHFILE";
    case ORT_NO_MODEL: return "ORT_NO_MODEL";
    case ORT_ENGINE_ERROR: return "ORT_ENGINE_ERROR";
    case ORT_RUNTIME_EXCEPTION: return "ORT_RUNTIME_EXCEPTION";
    case ORT_INVALID_PROTOBUF: return "ORT_INVALID_PROTOBUF";
    case ORT_MODEL_LOADED: return "ORT_MODEL_LOADED";
    case ORT_NOT_IMPLEMENTED: return "ORT_NOT_IMPLEMENTED";
    case ORT_INVALID_GRAPH: return "ORT_INVALID_GRAPH";
    case ORT_EP_FAIL: return "ORT_EP_FAIL";
    default: return "ORT_ERROR";
  }
}

std::vector<uint8_t> BytesOf(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(v.Env(), std::string("Expected Uint8Array for ") + what);
  }
  auto a = v.As<Napi::Uint8Array>();
  return std::vector<uint8_t>(a.Data(), a.Data() + a.ByteLength());
}

int64_t IntOf(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("Expected number for options.") + key);
  return v.As<Napi::Number>().Int64Value();
}

// Float32Array views of a JS array of typed arrays, checked against the expected element counts.
std::vector<const float*> FloatViews(const Napi::Value& v, const std::vector<size_t>& counts, const char* what, bool allow_empty) {
  std::vector<const float*> out;
  if (allow_empty && (v.IsUndefined() || v.IsNull())) return out;
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), std::string("Expected an array of Float32Array for ") + what);
  auto arr = v.As<Napi::Array>();
  if (arr.Length() != counts.size()) {
    throw Napi::RangeError::New(v.Env(), std::string("Expected ") + std::to_string(counts.size()) + " tensors for " + what +
                                             " but received " + std::to_string(arr.Length()));
  }
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value e = arr.Get(i);
    if (!e.IsTypedArray() || e.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throw Napi::TypeError::New(v.Env(), std::string("Expected Float32Array for ") + what + "[" + std::to_string(i) + "]");
    }
    auto f = e.As<Napi::Float32Array>();
    if (f.ElementLength() != counts[i]) {
      throw Napi::RangeError::New(v.Env(), std::string("Expected ") + std::to_string(counts[i]) + " values for " + what + "[" +
                                               std::to_string(i) + "] but received " + std::to_string(f.ElementLength()));
    }
    out.push_back(f.Data());
  }
  return out;
}

const uint8_t* CheckedBytes(const Napi::Value& v, size_t want, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(v.Env(), std::string("Expected Uint8Array for ") + what);
  }
  auto a = v.As<Napi::Uint8Array>();
  if (a.ByteLength() != want) {
    throw Napi::RangeError::New(v.Env(), std::string("Expected ") + std::to_string(want) + " bytes for " + what + " but received " +
                                             std::to_string(a.ByteLength()));
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
// Engine

Engine::Engine(Options options) : options_(std::move(options)), cpu_info_(Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault)) {
  Ort::Env& env = GlobalEnv();  // first: loading the CUDA provider logs through the env's default logger
  Ort::SessionOptions so;
  so.SetIntraOpNumThreads(options_.intra_threads);
  so.SetInterOpNumThreads(options_.inter_threads);
  so.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
  if (options_.cuda) {
    Ort::CUDAProviderOptions cuda;
    // TF32 off unless asked: the equality tests compare CUDA against the float32 CPU reference.
    cuda.Update({{"device_id", std::to_string(options_.device_id)}, {"use_tf32", options_.tf32 ? "1" : "0"}});
    so.AppendExecutionProvider_CUDA_V2(*cuda);
    device_info_ = Ort::MemoryInfo("Cuda", OrtArenaAllocator, options_.device_id, OrtMemTypeDefault);
  } else {
    device_info_ = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  }
  auto make = [&](const std::vector<uint8_t>& bytes) { return std::make_unique<Ort::Session>(env, bytes.data(), bytes.size(), so); };
  train_ = make(options_.train_model);
  if (!options_.fused) optimizer_ = make(options_.optimizer_model);
  eval_ = make(options_.eval_model);
  copy_ = make(options_.copy_model);
  allocator_ = std::make_unique<Ort::Allocator>(*train_, device_info_);

  for (size_t i = 0; i < options_.specs.size(); i++) {
    const TensorSpec& s = options_.specs[i];
    cur_.push_back(NewDeviceTensor(s.shape));
    if (s.role == Role::kFrozen) {
      next_.emplace_back(nullptr);
      continue;
    }
    next_.push_back(NewDeviceTensor(s.shape));
    if (s.role == Role::kState) {
      updated_state_.push_back(i);
      continue;
    }
    trainable_.push_back(i);
    m_.push_back(NewDeviceTensor(s.shape));
    v_.push_back(NewDeviceTensor(s.shape));
    m_next_.push_back(NewDeviceTensor(s.shape));
    v_next_.push_back(NewDeviceTensor(s.shape));
    if (!options_.fused) grad_.push_back(NewDeviceTensor(s.shape));
  }
}

Ort::Value Engine::NewDeviceTensor(const std::vector<int64_t>& shape) {
  return Ort::Value::CreateTensor<float>(*allocator_, shape.data(), shape.size());
}

void Engine::Copy(Ort::Value& src, Ort::Value& dst) {
  Ort::IoBinding binding(*copy_);
  binding.BindInput("x", src);
  binding.BindOutput("y", dst);
  copy_->Run(Ort::RunOptions{nullptr}, binding);
  binding.SynchronizeOutputs();
}

void Engine::Upload(const std::vector<const float*>& params, const std::vector<const float*>& m, const std::vector<const float*>& v) {
  size_t largest = 0;
  for (const auto& s : options_.specs) largest = std::max(largest, s.numel);
  std::vector<float> zeros;
  auto upload = [&](const float* host, const TensorSpec& s, Ort::Value& dst) {
    if (host == nullptr) {
      if (zeros.empty()) zeros.assign(largest, 0.0f);
      host = zeros.data();
    }
    Ort::Value src = Ort::Value::CreateTensor<float>(cpu_info_, const_cast<float*>(host), s.numel, s.shape.data(), s.shape.size());
    Copy(src, dst);
  };
  for (size_t i = 0; i < options_.specs.size(); i++) upload(params[i], options_.specs[i], cur_[i]);
  for (size_t j = 0; j < trainable_.size(); j++) {
    const TensorSpec& s = options_.specs[trainable_[j]];
    upload(m.empty() ? nullptr : m[j], s, m_[j]);
    upload(v.empty() ? nullptr : v[j], s, v_[j]);
  }
}

void Engine::BindBatch(Ort::IoBinding& binding, const uint8_t* images, const uint8_t* labels, const uint8_t* keep, int64_t n,
                       std::vector<Ort::Value>* keep_alive) {
  const int64_t s = options_.image_size;
  const int64_t image_shape[] = {n, s, s, 3};
  const int64_t label_shape[] = {n, options_.tags};
  const int64_t keep_shape[] = {n, options_.hidden};
  auto u8 = [&](const uint8_t* data, const int64_t* shape, size_t bytes, ONNXTensorElementDataType type) {
    return Ort::Value::CreateTensor(cpu_info_, const_cast<uint8_t*>(data), bytes, shape, 2 + (shape == image_shape ? 2 : 0), type);
  };
  keep_alive->push_back(u8(images, image_shape, static_cast<size_t>(n * s * s * 3), ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8));
  binding.BindInput("image", keep_alive->back());
  keep_alive->push_back(u8(labels, label_shape, static_cast<size_t>(n * options_.tags), ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8));
  binding.BindInput("labels", keep_alive->back());
  if (keep != nullptr) {
    keep_alive->push_back(u8(keep, keep_shape, static_cast<size_t>(n * options_.hidden), ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL));
    binding.BindInput("dropout_keep", keep_alive->back());
  }
}

float Engine::Step(const uint8_t* images, const uint8_t* labels, const uint8_t* keep, int64_t n, float lr_t, float eps_t) {
  std::vector<Ort::Value> inputs;
  inputs.reserve(8);
  const int64_t scalar_shape[] = {0};
  Ort::Value lr = Ort::Value::CreateTensor<float>(cpu_info_, &lr_t, 1, scalar_shape, 0);
  Ort::Value eps = Ort::Value::CreateTensor<float>(cpu_info_, &eps_t, 1, scalar_shape, 0);
  const auto& specs = options_.specs;

  Ort::IoBinding tb(*train_);
  BindBatch(tb, images, labels, options_.has_keep ? keep : nullptr, n, &inputs);
  for (size_t i = 0; i < specs.size(); i++) tb.BindInput(specs[i].name.c_str(), cur_[i]);
  tb.BindOutput("loss", cpu_info_);
  for (size_t i : updated_state_) tb.BindOutput(("new:" + specs[i].name).c_str(), next_[i]);

  // Adam inputs/outputs go to the step graph when fused, else to the optimizer graph after it.
  auto bind_adam = [&](Ort::IoBinding& b, bool with_param_and_grad) {
    b.BindInput("adam_lr_t", lr);
    b.BindInput("adam_eps_t", eps);
    for (size_t j = 0; j < trainable_.size(); j++) {
      const std::string& name = specs[trainable_[j]].name;
      if (with_param_and_grad) {
        b.BindInput(name.c_str(), cur_[trainable_[j]]);
        b.BindInput(("grad:" + name).c_str(), grad_[j]);
      }
      b.BindInput(("adam_m:" + name).c_str(), m_[j]);
      b.BindInput(("adam_v:" + name).c_str(), v_[j]);
      b.BindOutput(("new:" + name).c_str(), next_[trainable_[j]]);
      b.BindOutput(("new:adam_m:" + name).c_str(), m_next_[j]);
      b.BindOutput(("new:adam_v:" + name).c_str(), v_next_[j]);
    }
  };
  if (options_.fused) {
    bind_adam(tb, false);
  } else {
    for (size_t j = 0; j < trainable_.size(); j++) tb.BindOutput(("grad:" + specs[trainable_[j]].name).c_str(), grad_[j]);
  }
  train_->Run(Ort::RunOptions{nullptr}, tb);
  std::vector<Ort::Value> outputs = tb.GetOutputValues();
  float loss = outputs[0].GetTensorData<float>()[0];
  if (!options_.fused) {
    Ort::IoBinding ob(*optimizer_);
    bind_adam(ob, true);
    optimizer_->Run(Ort::RunOptions{nullptr}, ob);
  }
  for (size_t i : trainable_) std::swap(cur_[i], next_[i]);
  for (size_t i : updated_state_) std::swap(cur_[i], next_[i]);
  std::swap(m_, m_next_);
  std::swap(v_, v_next_);
  return loss;
}

float Engine::Evaluate(const uint8_t* images, const uint8_t* labels, int64_t n, std::vector<float>* probs) {
  std::vector<Ort::Value> inputs;
  Ort::IoBinding b(*eval_);
  BindBatch(b, images, labels, nullptr, n, &inputs);
  for (size_t i = 0; i < options_.specs.size(); i++) b.BindInput(options_.specs[i].name.c_str(), cur_[i]);
  b.BindOutput("loss", cpu_info_);
  b.BindOutput("probs", cpu_info_);
  eval_->Run(Ort::RunOptions{nullptr}, b);
  std::vector<Ort::Value> out = b.GetOutputValues();
  const float* p = out[1].GetTensorData<float>();
  probs->assign(p, p + n * options_.tags);
  return out[0].GetTensorData<float>()[0];
}

void Engine::Download(std::vector<std::vector<float>>* params, std::vector<std::vector<float>>* m, std::vector<std::vector<float>>* v) {
  auto download = [&](Ort::Value& src, const TensorSpec& s, std::vector<float>* host) {
    host->assign(s.numel, 0.0f);
    Ort::Value dst = Ort::Value::CreateTensor<float>(cpu_info_, host->data(), s.numel, s.shape.data(), s.shape.size());
    Copy(src, dst);
  };
  params->resize(options_.specs.size());
  for (size_t i = 0; i < options_.specs.size(); i++) download(cur_[i], options_.specs[i], &(*params)[i]);
  m->resize(trainable_.size());
  v->resize(trainable_.size());
  for (size_t j = 0; j < trainable_.size(); j++) {
    download(m_[j], options_.specs[trainable_[j]], &(*m)[j]);
    download(v_[j], options_.specs[trainable_[j]], &(*v)[j]);
  }
}

// ---------------------------------------------------------------------------------------------
// Workers

class SessionWorker : public Napi::AsyncWorker {
 public:
  SessionWorker(Napi::Env env, TrainSession* session, Napi::Object self, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), session_(session) {
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
    session_->Release();
    Napi::Value result = Result(env);
    deferred_.Resolve(result);
  }
  void OnError(const Napi::Error& e) override {
    session_->Release();
    Napi::Object err = caller_.Value().As<Napi::Object>();
    std::string message = e.Message();
    err.Set("message", message);
    if (!code_.empty()) err.Set("code", code_);
    std::string stack = err.Get("stack").ToString().Utf8Value();
    size_t eol = stack.find('\n');
    err.Set("stack", "Error: " + message + (eol == std::string::npos ? "" : stack.substr(eol)));
    deferred_.Reject(err);
  }

  Napi::Promise::Deferred deferred_;
  TrainSession* session_;
  Napi::ObjectReference self_;
  Napi::ObjectReference caller_;
  std::vector<Napi::Reference<Napi::Value>> kept_;
  std::string code_;
};

class LoadWorker : public SessionWorker {
 public:
  LoadWorker(Napi::Env env, TrainSession* s, Napi::Object self, Options options, std::vector<const float*> params,
             std::vector<const float*> m, std::vector<const float*> v, std::shared_ptr<Engine> existing)
      : SessionWorker(env, s, self, "TrainSession.load"),
        options_(std::move(options)), params_(std::move(params)), m_(std::move(m)), v_(std::move(v)), engine_(std::move(existing)) {}

 protected:
  void Run() override {
    if (!engine_) engine_ = std::make_shared<Engine>(std::move(options_));
    engine_->Upload(params_, m_, v_);
  }
  Napi::Value Result(Napi::Env env) override {
    session_->SetEngine(engine_);
    return env.Undefined();
  }

 private:
  Options options_;
  std::vector<const float*> params_, m_, v_;
  std::shared_ptr<Engine> engine_;
};

class StepWorker : public SessionWorker {
 public:
  StepWorker(Napi::Env env, TrainSession* s, Napi::Object self, std::shared_ptr<Engine> e, const uint8_t* images, const uint8_t* labels,
             const uint8_t* keep, int64_t n, float lr_t, float eps_t)
      : SessionWorker(env, s, self, "TrainSession.step"), engine_(std::move(e)), images_(images), labels_(labels), keep_(keep), n_(n), lr_t_(lr_t), eps_t_(eps_t) {}

 protected:
  void Run() override { loss_ = engine_->Step(images_, labels_, keep_, n_, lr_t_, eps_t_); }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, loss_); }

 private:
  std::shared_ptr<Engine> engine_;
  const uint8_t *images_, *labels_, *keep_;
  int64_t n_;
  float lr_t_, eps_t_;
  float loss_ = 0;
};

class EvaluateWorker : public SessionWorker {
 public:
  EvaluateWorker(Napi::Env env, TrainSession* s, Napi::Object self, std::shared_ptr<Engine> e, const uint8_t* images, const uint8_t* labels, int64_t n)
      : SessionWorker(env, s, self, "TrainSession.evaluate"), engine_(std::move(e)), images_(images), labels_(labels), n_(n) {}

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

class GetStateWorker : public SessionWorker {
 public:
  GetStateWorker(Napi::Env env, TrainSession* s, Napi::Object self, std::shared_ptr<Engine> e)
      : SessionWorker(env, s, self, "TrainSession.getState"), engine_(std::move(e)) {}

 protected:
  void Run() override { engine_->Download(&params_, &m_, &v_); }
  Napi::Value Result(Napi::Env env) override {
    auto list = [&](const std::vector<std::vector<float>>& xs) {
      Napi::Array a = Napi::Array::New(env, xs.size());
      for (uint32_t i = 0; i < xs.size(); i++) a.Set(i, ToFloat32Array(env, xs[i]));
      return a;
    };
    Napi::Object out = Napi::Object::New(env);
    out.Set("params", list(params_));
    out.Set("m", list(m_));
    out.Set("v", list(v_));
    return out;
  }

 private:
  std::shared_ptr<Engine> engine_;
  std::vector<std::vector<float>> params_, m_, v_;
};

// ---------------------------------------------------------------------------------------------
// TrainSession (JS surface)

namespace {

// Marks the session busy, holds the JS buffers the worker reads, and queues it.
Napi::Value Start(bool& busy, SessionWorker* worker, std::initializer_list<Napi::Value> keep) {
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
  return {CheckedBytes(info[0], static_cast<size_t>(n * o.image_size * o.image_size * 3), "images"),
          CheckedBytes(info[1], static_cast<size_t>(n * o.tags), "labels"), n};
}

struct StateViews {
  std::vector<const float*> params, m, v;
};

// params[], m?[], v?[] from info[first..first+2], checked against the specs' element counts.
StateViews ParseState(const Napi::CallbackInfo& info, size_t first, const std::vector<TensorSpec>& specs) {
  std::vector<size_t> counts, trainable_counts;
  for (const auto& s : specs) {
    counts.push_back(s.numel);
    if (s.role == Role::kTrainable) trainable_counts.push_back(s.numel);
  }
  StateViews out{FloatViews(info[first], counts, "params", false), FloatViews(info[first + 1], trainable_counts, "m", true),
                 FloatViews(info[first + 2], trainable_counts, "v", true)};
  if (out.m.size() != out.v.size()) throw Napi::RangeError::New(info.Env(), "Expected both m and v, or neither");
  return out;
}

}  // namespace

void TrainSession::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "TrainSession",
                                    {InstanceMethod<&TrainSession::Load>("load"), InstanceMethod<&TrainSession::Step>("step"),
                                     InstanceMethod<&TrainSession::Evaluate>("evaluate"), InstanceMethod<&TrainSession::GetState>("getState"),
                                     InstanceMethod<&TrainSession::SetState>("setState"), InstanceMethod<&TrainSession::Dispose>("dispose"),
                                     InstanceAccessor<&TrainSession::IsBusy>("busy")});
  exports.Set("TrainSession", ctor);
}

TrainSession::TrainSession(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainSession>(info) {}

void TrainSession::CheckUsable(Napi::Env env, const char* method, bool need_engine) {
  if (disposed_) throw Napi::Error::New(env, std::string("TrainSession.") + method + ": the session is disposed");
  if (busy_) throw Napi::Error::New(env, std::string("TrainSession.") + method + ": another call on this session is still running; await it first");
  if (need_engine && !engine_) throw Napi::Error::New(env, std::string("TrainSession.") + method + ": the session is not loaded");
}

// load(options, params[], m?[], v?[]) → Promise<void>
Napi::Value TrainSession::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "load", false);
  if (engine_) throw Napi::Error::New(env, "TrainSession.load: already loaded; use setState");
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "Expected an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  Options opt;
  opt.train_model = BytesOf(o.Get("trainModel"), "options.trainModel");
  opt.fused = o.Get("fused").ToBoolean();
  if (!opt.fused) opt.optimizer_model = BytesOf(o.Get("optimizerModel"), "options.optimizerModel");
  opt.eval_model = BytesOf(o.Get("evalModel"), "options.evalModel");
  opt.copy_model = BytesOf(o.Get("copyModel"), "options.copyModel");
  opt.cuda = o.Get("device").ToString().Utf8Value() == "cuda";
  opt.device_id = static_cast<int>(IntOf(o, "deviceId"));
  opt.tf32 = o.Get("tf32").ToBoolean();
  opt.intra_threads = static_cast<int>(IntOf(o, "intraOpThreads"));
  opt.inter_threads = static_cast<int>(IntOf(o, "interOpThreads"));
  opt.image_size = IntOf(o, "imageSize");
  opt.tags = IntOf(o, "tags");
  opt.hidden = IntOf(o, "hidden");
  opt.has_keep = o.Get("hasKeep").ToBoolean();
  Napi::Value specs = o.Get("specs");
  if (!specs.IsArray()) throw Napi::TypeError::New(env, "Expected an array for options.specs");
  Napi::Array arr = specs.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Object s = arr.Get(i).As<Napi::Object>();
    TensorSpec t;
    t.name = s.Get("name").ToString().Utf8Value();
    std::string role = s.Get("role").ToString().Utf8Value();
    t.role = role == "trainable" ? Role::kTrainable : role == "frozen" ? Role::kFrozen : Role::kState;
    Napi::Array shape = s.Get("shape").As<Napi::Array>();
    t.numel = 1;
    for (uint32_t k = 0; k < shape.Length(); k++) {
      t.shape.push_back(shape.Get(k).As<Napi::Number>().Int64Value());
      t.numel *= static_cast<size_t>(t.shape.back());
    }
    opt.specs.push_back(std::move(t));
  }
  StateViews st = ParseState(info, 1, opt.specs);
  auto* worker = new LoadWorker(env, this, Value(), std::move(opt), std::move(st.params), std::move(st.m), std::move(st.v), nullptr);
  return Start(busy_, worker, {info[1], info[2], info[3]});
}

// setState(params[], m?[], v?[]) → Promise<void>
Napi::Value TrainSession::SetState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "setState", true);
  StateViews st = ParseState(info, 0, engine_->options().specs);
  auto* worker = new LoadWorker(env, this, Value(), Options{}, std::move(st.params), std::move(st.m), std::move(st.v), engine_);
  return Start(busy_, worker, {info[0], info[1], info[2]});
}

// step(images, labels, keep|null, n, lrT, epsT) → Promise<number>
Napi::Value TrainSession::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "step", true);
  const Options& o = engine_->options();
  Batch b = CheckBatch(info, 3, o);
  const uint8_t* keep = o.has_keep ? CheckedBytes(info[2], static_cast<size_t>(b.n * o.hidden), "keep") : nullptr;
  float lr_t = info[4].As<Napi::Number>().FloatValue();
  float eps_t = info[5].As<Napi::Number>().FloatValue();
  return Start(busy_, new StepWorker(env, this, Value(), engine_, b.images, b.labels, keep, b.n, lr_t, eps_t), {info[0], info[1], info[2]});
}

// evaluate(images, labels, n) → Promise<{loss, probs}>
Napi::Value TrainSession::Evaluate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "evaluate", true);
  Batch b = CheckBatch(info, 2, engine_->options());
  return Start(busy_, new EvaluateWorker(env, this, Value(), engine_, b.images, b.labels, b.n), {info[0], info[1]});
}

Napi::Value TrainSession::GetState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "getState", true);
  return Start(busy_, new GetStateWorker(env, this, Value(), engine_), {});
}

// Frees the device state. Harmless twice; while a call runs, the engine goes when the worker lets go
// of its shared_ptr.
Napi::Value TrainSession::Dispose(const Napi::CallbackInfo& info) {
  disposed_ = true;
  engine_.reset();
  return info.Env().Undefined();
}

Napi::Value TrainSession::IsBusy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), busy_); }

}  // namespace alt_i2v
