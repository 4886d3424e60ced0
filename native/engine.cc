// Engine: ONNX Runtime sessions over the training artifacts, with the model state held in device
// buffers that are bound once per call (Ort::IoBinding) and swapped after each step.
#include "engine.h"

#include <algorithm>
#include <set>
#include <stdexcept>
#include <thread>
#include <unordered_map>
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

// Every name in `want` must be one of the session's inputs (or outputs).
void RequireNames(const Ort::Session& session, const char* graph, bool inputs, const std::vector<std::string>& want) {
  std::vector<std::string> have_list = inputs ? session.GetInputNames() : session.GetOutputNames();
  std::set<std::string> have(have_list.begin(), have_list.end());
  for (const std::string& name : want) {
    if (have.count(name) == 0) {
      throw std::runtime_error(std::string(graph) + " graph: expected an " + (inputs ? "input" : "output") +
                               " named \"" + name +
                               "\" (options.io and the graph disagree: was the graph written by another version?)");
    }
  }
}

}  // namespace

const char* OrtCodeName(OrtErrorCode code) {
  switch (code) {
    case ORT_OK:
      return "ORT_OK";
    case ORT_FAIL:
      return "ORT_FAIL";
    case ORT_INVALID_ARGUMENT:
      return "ORT_INVALID_ARGUMENT";
    case ORT_NO_SUCHFILE:
      return "ORT_NO_SUCHFILE";
    case ORT_NO_MODEL:
      return "ORT_NO_MODEL";
    case ORT_ENGINE_ERROR:
      return "ORT_ENGINE_ERROR";
    case ORT_RUNTIME_EXCEPTION:
      return "ORT_RUNTIME_EXCEPTION";
    case ORT_INVALID_PROTOBUF:
      return "ORT_INVALID_PROTOBUF";
    case ORT_MODEL_LOADED:
      return "ORT_MODEL_LOADED";
    case ORT_NOT_IMPLEMENTED:
      return "ORT_NOT_IMPLEMENTED";
    case ORT_INVALID_GRAPH:
      return "ORT_INVALID_GRAPH";
    case ORT_EP_FAIL:
      return "ORT_EP_FAIL";
    default:
      return "ORT_ERROR";
  }
}

Engine::Engine(Options options)
    : options_(std::move(options)), cpu_info_(Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault)) {
  Ort::Env& env = GlobalEnv();  // first: loading the CUDA provider logs through the env's default logger
  Ort::SessionOptions so;
  so.SetIntraOpNumThreads(options_.intra_threads);
  so.SetInterOpNumThreads(options_.inter_threads);
  so.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
  // No memory patterns: with them ONNX Runtime plans one block per input shape after the first run
  // and allocates it on the second, so the second step of every new batch size touched fresh memory.
  // The arena alone reuses the first run's blocks (docs/ARCHITECTURE.md, "Memory patterns off").
  so.DisableMemPattern();
  if (options_.cuda) {
    Ort::CUDAProviderOptions cuda;
    // TF32 off unless asked: the equality tests compare CUDA against the float32 CPU reference.
    std::unordered_map<std::string, std::string> kv{{"device_id", std::to_string(options_.device_id)},
                                                    {"use_tf32", options_.tf32 ? "1" : "0"}};
    for (const auto& [k, v] : options_.cuda_options) kv[k] = v;
    cuda.Update(kv);
    so.AppendExecutionProvider_CUDA_V2(*cuda);
    device_info_ = Ort::MemoryInfo("Cuda", OrtArenaAllocator, options_.device_id, OrtMemTypeDefault);
  } else {
    device_info_ = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  }
  auto make = [&](const std::vector<uint8_t>& bytes) {
    return std::make_unique<Ort::Session>(env, bytes.data(), bytes.size(), so);
  };
  train_ = make(options_.train_model);
  eval_ = make(options_.eval_model);
  copy_ = make(options_.copy_model);
  CheckGraphNames();
  allocator_ = std::make_unique<Ort::Allocator>(*train_, device_info_);

  const bool in_place = options_.adam == AdamMode::kInPlace;
  if (in_place && options_.cuda)
    throw std::runtime_error("the in-place Adam runs on the CPU only; use the fused Adam with CUDA");
  for (size_t i = 0; i < options_.specs.size(); i++) {
    const TensorSpec& s = options_.specs[i];
    cur_.push_back(NewDeviceTensor(s.shape));
    const bool swapped = s.role == Role::kState || (s.role == Role::kTrainable && !in_place);
    next_.push_back(swapped ? NewDeviceTensor(s.shape) : Ort::Value(nullptr));
    if (s.role == Role::kFrozen) continue;
    if (s.role == Role::kState) {
      updated_state_.push_back(i);
      continue;
    }
    trainable_.push_back(i);
    m_.push_back(NewDeviceTensor(s.shape));
    v_.push_back(NewDeviceTensor(s.shape));
    if (options_.adam != AdamMode::kFused) grad_.push_back(NewDeviceTensor(s.shape));
    if (in_place) continue;
    m_next_.push_back(NewDeviceTensor(s.shape));
    v_next_.push_back(NewDeviceTensor(s.shape));
  }
  // In place, the buffers never move (nothing is swapped), so the views are taken once.
  adam_threads_ =
      options_.intra_threads > 0 ? options_.intra_threads : static_cast<int>(std::thread::hardware_concurrency());
  for (size_t j = 0; in_place && j < trainable_.size(); j++) {
    in_place_.push_back({cur_[trainable_[j]].GetTensorMutableData<float>(), grad_[j].GetTensorData<float>(),
                         m_[j].GetTensorMutableData<float>(), v_[j].GetTensorMutableData<float>(),
                         options_.specs[trainable_[j]].numel});
  }
}

// Every name Step/Evaluate/Copy will bind exists in its graph: a mismatch fails at load, by name.
void Engine::CheckGraphNames() const {
  const IoNames& io = options_.io;
  std::vector<std::string> batch{io.input, io.labels}, all_specs, train_out{io.loss}, adam_in{io.lr, io.eps}, adam_out,
      grads;
  if (options_.has_keep) batch.push_back(io.keep);
  for (size_t i = 0; i < options_.specs.size(); i++) {
    const TensorSpec& s = options_.specs[i];
    if (IsInput(i)) all_specs.push_back(s.name);
    if (s.role == Role::kState) train_out.push_back(io.new_prefix + s.name);
    if (s.role != Role::kTrainable) continue;
    adam_in.push_back(io.m_prefix + s.name);
    adam_in.push_back(io.v_prefix + s.name);
    for (const std::string& p : {std::string(), io.m_prefix, io.v_prefix})
      adam_out.push_back(io.new_prefix + p + s.name);
    grads.push_back(io.grad_prefix + s.name);
  }
  RequireNames(*train_, "train", true, batch);
  RequireNames(*train_, "train", true, all_specs);
  RequireNames(*train_, "train", false, train_out);
  if (options_.adam == AdamMode::kFused) {
    RequireNames(*train_, "train", true, adam_in);
    RequireNames(*train_, "train", false, adam_out);
  } else {
    RequireNames(*train_, "train", false, grads);
  }
  if (options_.loss_scale) {
    RequireNames(*train_, "train", true, {io.loss_scale});
    RequireNames(*train_, "train", false, {io.grads_finite});
  }
  RequireNames(*eval_, "eval", true, {io.input, io.labels});
  RequireNames(*eval_, "eval", true, all_specs);
  RequireNames(*eval_, "eval", false, {io.loss, io.probs});
  RequireNames(*copy_, "copy", true, {io.copy_in});
  RequireNames(*copy_, "copy", false, {io.copy_out});
}

Ort::Value Engine::NewDeviceTensor(const std::vector<int64_t>& shape) {
  return Ort::Value::CreateTensor<float>(*allocator_, shape.data(), shape.size());
}

void Engine::Copy(Ort::Value& src, Ort::Value& dst) {
  Ort::IoBinding binding(*copy_);
  binding.BindInput(options_.io.copy_in.c_str(), src);
  binding.BindOutput(options_.io.copy_out.c_str(), dst);
  copy_->Run(Ort::RunOptions{nullptr}, binding);
  binding.SynchronizeOutputs();
}

void Engine::Upload(const std::vector<const float*>& params, const std::vector<const float*>& m,
                    const std::vector<const float*>& v) {
  size_t largest = 0;
  for (const auto& s : options_.specs) largest = std::max(largest, s.numel);
  std::vector<float> zeros;
  auto upload = [&](const float* host, const TensorSpec& s, Ort::Value& dst) {
    if (host == nullptr) {
      if (zeros.empty()) zeros.assign(largest, 0.0f);
      host = zeros.data();
    }
    Ort::Value src =
        Ort::Value::CreateTensor<float>(cpu_info_, const_cast<float*>(host), s.numel, s.shape.data(), s.shape.size());
    Copy(src, dst);
  };
  for (size_t i = 0; i < options_.specs.size(); i++) upload(params[i], options_.specs[i], cur_[i]);
  for (size_t j = 0; j < trainable_.size(); j++) {
    const TensorSpec& s = options_.specs[trainable_[j]];
    upload(m.empty() ? nullptr : m[j], s, m_[j]);
    upload(v.empty() ? nullptr : v[j], s, v_[j]);
  }
}

// Binds the host batch: the input (N, S, S, 3) uint8 images or (N, D) float16 embeddings, labels (N, K) uint8, keep (N,
// D) bool when given.
void Engine::BindBatch(Ort::IoBinding& binding, const uint8_t* images, const uint8_t* labels, const uint8_t* keep,
                       int64_t n, std::vector<Ort::Value>* keep_alive) {
  auto bind = [&](const std::string& name, const uint8_t* data, std::vector<int64_t> shape,
                  ONNXTensorElementDataType type) {
    size_t bytes = type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 ? 2 : 1;
    for (int64_t d : shape) bytes *= static_cast<size_t>(d);
    keep_alive->push_back(
        Ort::Value::CreateTensor(cpu_info_, const_cast<uint8_t*>(data), bytes, shape.data(), shape.size(), type));
    binding.BindInput(name.c_str(), keep_alive->back());
  };
  std::vector<int64_t> shape{n};
  shape.insert(shape.end(), options_.input_dims.begin(), options_.input_dims.end());
  bind(options_.io.input, images, shape,
       options_.input_float16 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 : ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8);
  bind(options_.io.labels, labels, {n, options_.tags}, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8);
  if (keep != nullptr) bind(options_.io.keep, keep, {n, options_.hidden}, ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL);
}

// Adam's inputs and outputs of the fused step graph (parameters and gradients are already inside it).
void Engine::BindAdam(Ort::IoBinding& b, Ort::Value& lr, Ort::Value& eps) {
  const IoNames& io = options_.io;
  b.BindInput(io.lr.c_str(), lr);
  b.BindInput(io.eps.c_str(), eps);
  for (size_t j = 0; j < trainable_.size(); j++) {
    const std::string& name = options_.specs[trainable_[j]].name;
    b.BindInput((io.m_prefix + name).c_str(), m_[j]);
    b.BindInput((io.v_prefix + name).c_str(), v_[j]);
    b.BindOutput((io.new_prefix + name).c_str(), next_[trainable_[j]]);
    b.BindOutput((io.new_prefix + io.m_prefix + name).c_str(), m_next_[j]);
    b.BindOutput((io.new_prefix + io.v_prefix + name).c_str(), v_next_[j]);
  }
}

float Engine::Step(const uint8_t* images, const uint8_t* labels, const uint8_t* keep, int64_t n, float lr_t,
                   float eps_t, float loss_scale, bool* applied) {
  const IoNames& io = options_.io;
  std::vector<Ort::Value> inputs;
  inputs.reserve(8);
  const int64_t scalar_dims[1] = {0};  // rank 0: the dims array is not read
  Ort::Value lr = Ort::Value::CreateTensor<float>(cpu_info_, &lr_t, 1, scalar_dims, 0);
  Ort::Value eps = Ort::Value::CreateTensor<float>(cpu_info_, &eps_t, 1, scalar_dims, 0);
  Ort::Value scale = Ort::Value::CreateTensor<float>(cpu_info_, &loss_scale, 1, scalar_dims, 0);
  const auto& specs = options_.specs;

  Ort::IoBinding tb(*train_);
  BindBatch(tb, images, labels, options_.has_keep ? keep : nullptr, n, &inputs);
  for (size_t i = 0; i < specs.size(); i++) {
    if (IsInput(i)) tb.BindInput(specs[i].name.c_str(), cur_[i]);
  }
  tb.BindOutput(io.loss.c_str(), cpu_info_);
  if (options_.loss_scale) {
    tb.BindInput(io.loss_scale.c_str(), scale);
    tb.BindOutput(io.grads_finite.c_str(), cpu_info_);  // outputs[1]
  }
  for (size_t i : updated_state_) tb.BindOutput((io.new_prefix + specs[i].name).c_str(), next_[i]);
  if (options_.adam == AdamMode::kFused) {
    BindAdam(tb, lr, eps);
  } else {
    for (size_t j = 0; j < trainable_.size(); j++)
      tb.BindOutput((io.grad_prefix + specs[trainable_[j]].name).c_str(), grad_[j]);
  }
  train_->Run(Ort::RunOptions{nullptr}, tb);
  std::vector<Ort::Value> outputs = tb.GetOutputValues();
  float loss = outputs[0].GetTensorData<float>()[0];
  *applied = !options_.loss_scale || outputs[1].GetTensorData<bool>()[0];
  for (size_t i : updated_state_) std::swap(cur_[i], next_[i]);
  if (options_.adam == AdamMode::kInPlace) {
    if (*applied) AdamInPlace(in_place_, options_.adam_constants, lr_t, eps_t, adam_threads_);
    return loss;
  }
  // Fused: a skipped step's graph outputs the old values (training/graphs.ts), so the swap keeps them.
  for (size_t i : trainable_) std::swap(cur_[i], next_[i]);
  std::swap(m_, m_next_);
  std::swap(v_, v_next_);
  return loss;
}

float Engine::Evaluate(const uint8_t* images, const uint8_t* labels, int64_t n, std::vector<float>* probs) {
  std::vector<Ort::Value> inputs;
  Ort::IoBinding b(*eval_);
  BindBatch(b, images, labels, nullptr, n, &inputs);
  for (size_t i = 0; i < options_.specs.size(); i++) {
    if (IsInput(i)) b.BindInput(options_.specs[i].name.c_str(), cur_[i]);
  }
  b.BindOutput(options_.io.loss.c_str(), cpu_info_);
  b.BindOutput(options_.io.probs.c_str(), cpu_info_);
  eval_->Run(Ort::RunOptions{nullptr}, b);
  std::vector<Ort::Value> out = b.GetOutputValues();
  const float* p = out[1].GetTensorData<float>();
  probs->assign(p, p + n * options_.tags);
  return out[0].GetTensorData<float>()[0];
}

void Engine::Download(const std::vector<float*>& params, const std::vector<float*>& m, const std::vector<float*>& v) {
  auto download = [&](Ort::Value& src, const TensorSpec& s, float* host) {
    Ort::Value dst = Ort::Value::CreateTensor<float>(cpu_info_, host, s.numel, s.shape.data(), s.shape.size());
    Copy(src, dst);
  };
  for (size_t i = 0; i < options_.specs.size(); i++) download(cur_[i], options_.specs[i], params[i]);
  for (size_t j = 0; j < trainable_.size(); j++) {
    download(m_[j], options_.specs[trainable_[j]], m[j]);
    download(v_[j], options_.specs[trainable_[j]], v[j]);
  }
}

}  // namespace alt_i2v
