// Engine: the training artifacts run through the ONNX Runtime C++ API with parameters, Adam state and
// gradients resident on the device (CPU or CUDA EP); only batches go in, losses come out. Plain C++ with
// no Node-API: the N-API glue (native_engine.cc) copies options in and results out.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <memory>
#include <string>
#include <vector>

#include "adam.h"

namespace alt_i2v {

enum class Role { kTrainable, kFrozen, kState };

// Where Adam runs: inside the step graph (kFused), or as one in-place pass over host memory after the
// train graph (kInPlace, CPU only; adam.h).
enum class AdamMode { kFused, kInPlace };

struct TensorSpec {
  std::string name;
  Role role;
  std::vector<int64_t> shape;  // (rank) dims
  size_t numel;
};

// Graph input/output names, given by the TypeScript side that wrote the graphs (training/graphs.ts `io`)
// and checked against each session at load, so the two languages cannot drift apart silently.
struct IoNames {
  std::string input, labels, keep, loss, probs, lr, eps, copy_in, copy_out, loss_scale, grads_finite;
  // Per-tensor names are prefix + tensor name: grad:P, new:P, adam_m:P, adam_v:P (new:adam_m:P …).
  std::string grad_prefix, new_prefix, m_prefix, v_prefix;
};

// Everything the TypeScript side decides, copied once into plain C++ (sharp's pattern).
struct Options {
  std::vector<uint8_t> train_model;  // train.onnx, or step.onnx when fused
  std::vector<uint8_t> eval_model;
  std::vector<uint8_t> copy_model;  // Identity copy_in → copy_out, for host ↔ device copies
  AdamMode adam = AdamMode::kFused;
  AdamConstants adam_constants;  // for kInPlace
  bool cuda = false;
  int device_id = 0;
  bool tf32 = false;
  // Further CUDA provider options (checked on the TypeScript side: engine.ts CUDA_OPTION_VALUES).
  std::vector<std::pair<std::string, std::string>> cuda_options;
  int intra_threads = 0;
  int inter_threads = 0;
  // One batch item of the input: a uint8 image (S, S, 3) or a float16 embedding (D) (training/params.ts inputOf).
  std::vector<int64_t> input_dims;
  bool input_float16 = false;
  int64_t input_bytes = 0;  // bytes of one item
  int64_t tags = 0;
  int64_t hidden = 0;
  bool has_keep = false;
  // The train graph takes loss_scale and outputs grads_finite (float16 training's dynamic loss scaling).
  bool loss_scale = false;
  // Frozen tensors are initializers of the train and eval graphs (bound by no one; still uploaded, so
  // Download returns them).
  bool baked_frozen = false;
  IoNames io;
  std::vector<TensorSpec> specs;
};

// The ORT error code's name ("ORT_INVALID_ARGUMENT"), for error objects.
const char* OrtCodeName(OrtErrorCode code);

// The device-side state: sessions, allocators, and the buffers swapped between steps. Not thread-safe:
// the glue runs one call at a time per engine.
class Engine {
 public:
  explicit Engine(Options options);
  // Upload state (params in spec order; m, v per trainable tensor, may be empty for zeros).
  void Upload(const std::vector<const float*>& params, const std::vector<const float*>& m,
              const std::vector<const float*>& v);
  // Loss before the update; *applied: whether the update was made (false when loss scaling found a
  // non-finite gradient: parameters and moments stay as they were).
  float Step(const uint8_t* images, const uint8_t* labels, const uint8_t* keep, int64_t n, float lr_t, float eps_t,
             float loss_scale, bool* applied);
  float Evaluate(const uint8_t* images, const uint8_t* labels, int64_t n, std::vector<float>* probs);
  // Host copies of params (spec order), m and v (trainable order), into buffers of each tensor's size.
  void Download(const std::vector<float*>& params, const std::vector<float*>& m, const std::vector<float*>& v);
  const Options& options() const { return options_; }

 private:
  void CheckGraphNames() const;
  // Whether spec i is a graph input (every one but the baked frozen tensors).
  bool IsInput(size_t i) const { return !(options_.baked_frozen && options_.specs[i].role == Role::kFrozen); }
  Ort::Value NewDeviceTensor(const std::vector<int64_t>& shape);
  void Copy(Ort::Value& src, Ort::Value& dst);
  void BindBatch(Ort::IoBinding& binding, const uint8_t* images, const uint8_t* labels, const uint8_t* keep, int64_t n,
                 std::vector<Ort::Value>* keep_alive);
  void BindAdam(Ort::IoBinding& b, Ort::Value& lr, Ort::Value& eps);

  Options options_;
  Ort::MemoryInfo cpu_info_;
  Ort::MemoryInfo device_info_{nullptr};
  std::unique_ptr<Ort::Session> train_, eval_, copy_;
  std::unique_ptr<Ort::Allocator> allocator_;
  // Declared after the allocator: destroyed before it.
  std::vector<Ort::Value> cur_, next_;                      // every state tensor, spec order (next_: swapped ones only)
  std::vector<Ort::Value> m_, v_, m_next_, v_next_, grad_;  // per trainable tensor (no m_next_, v_next_ in place)
  std::vector<AdamTensor> in_place_;                        // kInPlace: views of cur_, grad_, m_, v_
  int adam_threads_ = 1;                                    // kInPlace: threads of the Adam pass
  std::vector<size_t> trainable_;                           // spec indices of trainable tensors
  std::vector<size_t> updated_state_;                       // spec indices of role kState (BN running stats)
};

}  // namespace alt_i2v
