// TrainSession.load()'s options object → engine Options, copied once. A number, byte array, string or mode
// of the wrong type throws a TypeError naming it (the TypeScript side fills every default).
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

int64_t IntOf(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("Expected number for options.") + key);
  return v.As<Napi::Number>().Int64Value();
}

std::string StringOf(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString() || v.As<Napi::String>().Utf8Value().empty()) {
    throw Napi::TypeError::New(o.Env(), std::string("Expected a non-empty string for options.io.") + key);
  }
  return v.As<Napi::String>().Utf8Value();
}

// options.adam ("fused", "graph" or "in-place") and options.adamConstants [β1, 1−β1, β2, 1−β2] as float32.
AdamMode ParseAdam(const Napi::Object& o, AdamConstants* c) {
  std::string mode = o.Get("adam").ToString().Utf8Value();
  Napi::Value k = o.Get("adamConstants");
  if (!k.IsArray() || k.As<Napi::Array>().Length() != 4)
    throw Napi::TypeError::New(o.Env(), "Expected 4 numbers for options.adamConstants");
  float* slots[4] = {&c->beta1, &c->one_minus_beta1, &c->beta2, &c->one_minus_beta2};
  for (uint32_t i = 0; i < 4; i++) *slots[i] = k.As<Napi::Array>().Get(i).ToNumber().FloatValue();
  if (mode == "fused") return AdamMode::kFused;
  if (mode == "graph") return AdamMode::kGraph;
  if (mode == "in-place") return AdamMode::kInPlace;
  throw Napi::TypeError::New(
      o.Env(), "Expected \"fused\", \"graph\" or \"in-place\" for options.adam but received \"" + mode + "\"");
}

// options.io: the graph names (training/model.ts `io`); the engine checks them against the graphs.
IoNames ParseIoNames(const Napi::Value& v) {
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), "Expected an object for options.io");
  Napi::Object o = v.As<Napi::Object>();
  return IoNames{StringOf(o, "image"),   StringOf(o, "labels"),     StringOf(o, "keep"),      StringOf(o, "loss"),
                 StringOf(o, "probs"),   StringOf(o, "lr"),         StringOf(o, "eps"),       StringOf(o, "copyIn"),
                 StringOf(o, "copyOut"), StringOf(o, "gradPrefix"), StringOf(o, "newPrefix"), StringOf(o, "mPrefix"),
                 StringOf(o, "vPrefix")};
}

}  // namespace

Options ParseLoadOptions(const Napi::Object& o) {
  Options opt;
  opt.train_model = BytesOf(o.Get("trainModel"), "options.trainModel");
  opt.adam = ParseAdam(o, &opt.adam_constants);
  if (opt.adam == AdamMode::kGraph) opt.optimizer_model = BytesOf(o.Get("optimizerModel"), "options.optimizerModel");
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
  opt.baked_frozen = o.Get("bakedFrozen").ToBoolean();
  opt.io = ParseIoNames(o.Get("io"));
  Napi::Value specs = o.Get("specs");
  if (!specs.IsArray()) throw Napi::TypeError::New(o.Env(), "Expected an array for options.specs");
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
  return opt;
}

}  // namespace alt_i2v
