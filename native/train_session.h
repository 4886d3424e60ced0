// TrainSession: the training artifacts run through the ONNX Runtime C++ API with parameters, Adam
// state and gradients resident on the device (CPU or CUDA EP); only batches go in, losses come out.
#pragma once

#include <napi.h>
#include <onnxruntime_cxx_api.h>

#include <memory>
#include <string>
#include <vector>

namespace alt_i2v {

enum class Role { kTrainable, kFrozen, kState };

struct TensorSpec {
  std::string name;
  Role role;
  std::vector<int64_t> shape;
  size_t numel;
};

// Everything the TypeScript side decides, copied once into plain C++ (sharp's pattern).
struct Options {
  std::vector<uint8_t> train_model;      // train.onnx, or step.onnx when fused
  std::vector<uint8_t> optimizer_model;  // empty when fused
  std::vector<uint8_t> eval_model;
  std::vector<uint8_t> copy_model;       // Identity x → y, for host ↔ device copies
  bool fused = false;
  bool cuda = false;
  int device_id = 0;
  bool tf32 = false;
  int intra_threads = 0;
  int inter_threads = 0;
  int64_t image_size = 0;
  int64_t tags = 0;
  int64_t hidden = 0;
  bool has_keep = false;
  std::vector<TensorSpec> specs;
};

// The device-side state: sessions, allocators, and the buffers swapped between steps.
class Engine {
 public:
  explicit Engine(Options options);
  // Upload initial state (params in spec order; m, v per trainable tensor, may be empty for zeros).
  void Upload(const std::vector<const float*>& params, const std::vector<const float*>& m, const std::vector<const float*>& v);
  float Step(const uint8_t* images, const uint8_t* labels, const uint8_t* keep, int64_t n, float lr_t, float eps_t);
  float Evaluate(const uint8_t* images, const uint8_t* labels, int64_t n, std::vector<float>* probs);
  // Host copies of params (spec order), m and v (trainable order).
  void Download(std::vector<std::vector<float>>* params, std::vector<std::vector<float>>* m, std::vector<std::vector<float>>* v);
  const Options& options() const { return options_; }

 private:
  Ort::Value NewDeviceTensor(const std::vector<int64_t>& shape);
  void Copy(Ort::Value& src, Ort::Value& dst);
  void BindBatch(Ort::IoBinding& binding, const uint8_t* images, const uint8_t* labels, const uint8_t* keep, int64_t n,
                 std::vector<Ort::Value>* keep_alive);

  Options options_;
  Ort::MemoryInfo cpu_info_;
  Ort::MemoryInfo device_info_{nullptr};
  std::unique_ptr<Ort::Session> train_, optimizer_, eval_, copy_;
  std::unique_ptr<Ort::Allocator> allocator_;
  // Declared after the allocator: destroyed before it.
  std::vector<Ort::Value> cur_, next_;          // every state tensor, spec order (next_: updated ones only)
  std::vector<Ort::Value> m_, v_, m_next_, v_next_, grad_;  // per trainable tensor
  std::vector<size_t> trainable_;               // spec indices of trainable tensors
  std::vector<size_t> updated_state_;           // spec indices of role kState (BN running stats)
};

class TrainSession : public Napi::ObjectWrap<TrainSession> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit TrainSession(const Napi::CallbackInfo& info);

  // Called by the workers on the JS thread when they finish.
  void Release() { busy_ = false; }
  std::shared_ptr<Engine> engine() { return engine_; }
  void SetEngine(std::shared_ptr<Engine> engine) { engine_ = std::move(engine); }

 private:
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value Evaluate(const Napi::CallbackInfo& info);
  Napi::Value GetState(const Napi::CallbackInfo& info);
  Napi::Value SetState(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsBusy(const Napi::CallbackInfo& info);
  void CheckUsable(Napi::Env env, const char* method, bool need_engine);

  Options pending_;
  std::shared_ptr<Engine> engine_;
  bool busy_ = false;
  bool disposed_ = false;
  bool dispose_after_ = false;
};

}  // namespace alt_i2v
