// NativeEngine.load()'s options object → engine Options, copied once. TypeScript validates the values and
// fills every default (src/train/engine.ts `engineOptions`); this side still checks every field it reads, so that
// no options object can make the engine read out of bounds or guess: each field of the wrong type, an
// unknown choice (adam, device, role) or a dimension that is not a positive integer throws a TypeError
// naming it. Check all, never some.
#include "load_options.h"

#include <string>
#include <vector>

namespace alt_i2v {

namespace {

std::vector<uint8_t> BytesOf(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(v.Env(), std::string("Expected Uint8Array for ") + what);
  }
  auto a = v.As<Napi::Uint8Array>();
  return std::vector<uint8_t>(a.Data(), a.Data() + a.ByteLength());
}

// An integer ≥ min (a dimension, a count, an index), or a TypeError naming `what`.
int64_t IntegerOf(const Napi::Value& v, int64_t min, const std::string& what) {
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1.0 / 0.0;
  if (!(d >= static_cast<double>(min) && d <= 9007199254740991.0 && d == static_cast<double>(static_cast<int64_t>(d))))
    throw Napi::TypeError::New(v.Env(), "Expected an integer ≥ " + std::to_string(min) + " for " + what);
  return static_cast<int64_t>(d);
}

int64_t IntOf(const Napi::Object& o, const char* key, int64_t min) {
  return IntegerOf(o.Get(key), min, std::string("options.") + key);
}

bool BoolOf(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return false;
  if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string("Expected a boolean for options.") + key);
  return v.As<Napi::Boolean>().Value();
}

// A string field that names one choice; which choices is the caller's to check.
std::string ChoiceOf(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), std::string("Expected a string for options.") + key);
  return v.As<Napi::String>().Utf8Value();
}

// options.specs[i]: name, role ("trainable", "frozen" or "state") and shape (positive integers).
TensorSpec SpecOf(const Napi::Value& v, uint32_t i) {
  const std::string what = "options.specs[" + std::to_string(i) + "]";
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), "Expected an object for " + what);
  Napi::Object s = v.As<Napi::Object>();
  TensorSpec t;
  Napi::Value name = s.Get("name");
  if (!name.IsString() || name.As<Napi::String>().Utf8Value().empty())
    throw Napi::TypeError::New(v.Env(), "Expected a non-empty string for " + what + ".name");
  t.name = name.As<Napi::String>().Utf8Value();
  std::string role = s.Get("role").IsString() ? s.Get("role").As<Napi::String>().Utf8Value() : "";
  if (role == "trainable")
    t.role = Role::kTrainable;
  else if (role == "frozen")
    t.role = Role::kFrozen;
  else if (role == "state")
    t.role = Role::kState;
  else
    throw Napi::TypeError::New(v.Env(), "Expected \"trainable\", \"frozen\" or \"state\" for " + what + ".role");
  Napi::Value shape = s.Get("shape");
  if (!shape.IsArray()) throw Napi::TypeError::New(v.Env(), "Expected an array for " + what + ".shape");
  Napi::Array dims = shape.As<Napi::Array>();
  t.numel = 1;
  for (uint32_t k = 0; k < dims.Length(); k++) {
    t.shape.push_back(IntegerOf(dims.Get(k), 1, what + ".shape[" + std::to_string(k) + "]"));
    t.numel *= static_cast<size_t>(t.shape.back());
  }
  return t;
}

std::string StringOf(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString() || v.As<Napi::String>().Utf8Value().empty()) {
    throw Napi::TypeError::New(o.Env(), std::string("Expected a non-empty string for options.io.") + key);
  }
  return v.As<Napi::String>().Utf8Value();
}

// options.adam ("fused" or "in-place") and options.adamConstants [β1, 1−β1, β2, 1−β2] as float32.
AdamMode ParseAdam(const Napi::Object& o, AdamConstants* c) {
  std::string mode = ChoiceOf(o, "adam");
  Napi::Value k = o.Get("adamConstants");
  if (!k.IsArray() || k.As<Napi::Array>().Length() != 4)
    throw Napi::TypeError::New(o.Env(), "Expected 4 numbers for options.adamConstants");
  float* slots[4] = {&c->beta1, &c->one_minus_beta1, &c->beta2, &c->one_minus_beta2};
  for (uint32_t i = 0; i < 4; i++) {
    Napi::Value x = k.As<Napi::Array>().Get(i);
    if (!x.IsNumber()) throw Napi::TypeError::New(o.Env(), "Expected 4 numbers for options.adamConstants");
    *slots[i] = x.As<Napi::Number>().FloatValue();
  }
  if (mode == "fused") return AdamMode::kFused;
  if (mode == "in-place") return AdamMode::kInPlace;
  throw Napi::TypeError::New(o.Env(),
                             "Expected \"fused\" or \"in-place\" for options.adam but received \"" + mode + "\"");
}

// options.io: the graph names (training/graphs.ts `io`); the engine checks them against the graphs.
IoNames ParseIoNames(const Napi::Value& v) {
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), "Expected an object for options.io");
  Napi::Object o = v.As<Napi::Object>();
  IoNames io;
  io.input = StringOf(o, "input");
  io.labels = StringOf(o, "labels");
  io.keep = StringOf(o, "keep");
  io.loss = StringOf(o, "loss");
  io.probs = StringOf(o, "probs");
  io.lr = StringOf(o, "lr");
  io.eps = StringOf(o, "eps");
  io.copy_in = StringOf(o, "copyIn");
  io.copy_out = StringOf(o, "copyOut");
  io.grad_prefix = StringOf(o, "gradPrefix");
  io.new_prefix = StringOf(o, "newPrefix");
  io.m_prefix = StringOf(o, "mPrefix");
  io.v_prefix = StringOf(o, "vPrefix");
  io.loss_scale = StringOf(o, "lossScale");
  io.grads_finite = StringOf(o, "gradsFinite");
  return io;
}

// options.inputDims (positive integers: one item's shape) and options.inputType ("uint8" or "float16").
void ParseInput(const Napi::Object& o, Options* opt) {
  Napi::Value dims = o.Get("inputDims");
  if (!dims.IsArray() || dims.As<Napi::Array>().Length() == 0)
    throw Napi::TypeError::New(o.Env(), "Expected a non-empty array for options.inputDims");
  Napi::Array arr = dims.As<Napi::Array>();
  int64_t count = 1;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    opt->input_dims.push_back(IntegerOf(arr.Get(i), 1, "options.inputDims[" + std::to_string(i) + "]"));
    count *= opt->input_dims.back();
  }
  const std::string type = ChoiceOf(o, "inputType");
  if (type != "uint8" && type != "float16")
    throw Napi::TypeError::New(o.Env(),
                               "Expected \"uint8\" or \"float16\" for options.inputType but received \"" + type + "\"");
  opt->input_float16 = type == "float16";
  opt->input_bytes = count * (opt->input_float16 ? 2 : 1);
}

}  // namespace

// Float32Array views of a JS array of typed arrays, checked against the expected element counts.
std::vector<const float*> FloatViews(const Napi::Value& v, const std::vector<size_t>& counts, const char* what,
                                     bool allow_empty) {
  std::vector<const float*> out;
  if (allow_empty && (v.IsUndefined() || v.IsNull())) return out;
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), std::string("Expected an array of Float32Array for ") + what);
  auto arr = v.As<Napi::Array>();
  if (arr.Length() != counts.size()) {
    throw Napi::RangeError::New(v.Env(), std::string("Expected ") + std::to_string(counts.size()) + " tensors for " +
                                             what + " but received " + std::to_string(arr.Length()));
  }
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value e = arr.Get(i);
    if (!e.IsTypedArray() || e.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throw Napi::TypeError::New(v.Env(),
                                 std::string("Expected Float32Array for ") + what + "[" + std::to_string(i) + "]");
    }
    auto f = e.As<Napi::Float32Array>();
    if (f.ElementLength() != counts[i]) {
      throw Napi::RangeError::New(v.Env(), std::string("Expected ") + std::to_string(counts[i]) + " values for " +
                                               what + "[" + std::to_string(i) + "] but received " +
                                               std::to_string(f.ElementLength()));
    }
    out.push_back(f.Data());
  }
  return out;
}

bool HasTrainable(const std::vector<TensorSpec>& specs) {
  for (const auto& s : specs)
    if (s.role == Role::kTrainable) return true;
  return false;
}

// params[], m?[], v?[], checked against the specs' element counts.
StateViews ParseState(const Napi::Value& params, const Napi::Value& m, const Napi::Value& v,
                      const std::vector<TensorSpec>& specs) {
  std::vector<size_t> counts, trainable_counts;
  for (const auto& s : specs) {
    counts.push_back(s.numel);
    if (s.role == Role::kTrainable) trainable_counts.push_back(s.numel);
  }
  StateViews out{FloatViews(params, counts, "params", false), FloatViews(m, trainable_counts, "m", true),
                 FloatViews(v, trainable_counts, "v", true)};
  if (out.m.size() != out.v.size()) throw Napi::RangeError::New(params.Env(), "Expected both m and v, or neither");
  return out;
}

Options ParseLoadOptions(const Napi::Object& o) {
  Options opt;
  opt.train_model = BytesOf(o.Get("trainModel"), "options.trainModel");
  opt.adam = ParseAdam(o, &opt.adam_constants);
  opt.eval_model = BytesOf(o.Get("evalModel"), "options.evalModel");
  opt.copy_model = BytesOf(o.Get("copyModel"), "options.copyModel");
  const std::string device = ChoiceOf(o, "device");
  if (device != "cpu" && device != "cuda")
    throw Napi::TypeError::New(o.Env(),
                               "Expected \"cpu\" or \"cuda\" for options.device but received \"" + device + "\"");
  opt.cuda = device == "cuda";
  opt.device_id = static_cast<int>(IntOf(o, "deviceId", 0));
  opt.tf32 = BoolOf(o, "tf32");
  Napi::Value cuda_options = o.Get("cudaOptions");
  if (!cuda_options.IsUndefined()) {
    if (!cuda_options.IsObject())
      throw Napi::TypeError::New(o.Env(), "Expected an object of strings for options.cudaOptions");
    Napi::Object co = cuda_options.As<Napi::Object>();
    Napi::Array keys = co.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); i++) {
      Napi::Value k = keys.Get(i), v = co.Get(k);
      if (!v.IsString())
        throw Napi::TypeError::New(o.Env(), "Expected a string for options.cudaOptions." + k.ToString().Utf8Value());
      opt.cuda_options.emplace_back(k.ToString().Utf8Value(), v.As<Napi::String>().Utf8Value());
    }
  }
  opt.intra_threads = static_cast<int>(IntOf(o, "intraOpThreads", 0));
  opt.inter_threads = static_cast<int>(IntOf(o, "interOpThreads", 0));
  ParseInput(o, &opt);
  opt.tags = IntOf(o, "tags", 1);
  opt.hidden = IntOf(o, "hidden", 0);
  opt.has_keep = BoolOf(o, "hasKeep");
  opt.baked_frozen = BoolOf(o, "bakedFrozen");
  opt.loss_scale = BoolOf(o, "lossScale");
  opt.io = ParseIoNames(o.Get("io"));
  Napi::Value specs = o.Get("specs");
  if (!specs.IsArray()) throw Napi::TypeError::New(o.Env(), "Expected an array for options.specs");
  Napi::Array arr = specs.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) opt.specs.push_back(SpecOf(arr.Get(i), i));
  return opt;
}

}  // namespace alt_i2v
