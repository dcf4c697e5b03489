// lethe's native bridge: a handful of generic exports over libtorch (PyTorch's C++ core).
//
// Every tensor operation goes through one door, `call(op, args, kwargs?)`, which looks the
// operator up in libtorch's dispatcher by its schema name ("aten::add.Tensor") and converts
// JavaScript values to IValues by reading that schema. A new op is a line of TypeScript, not
// a C++ function. Autograd, devices and dtypes come for free because the dispatcher routes
// through the Autograd and backend keys exactly as `torch.add` does in Python. The schema is read
// once per op (a plan), and the hottest ops take an unboxed path listed in `fastOps`.
//
// TS validates, C++ trusts: src/tensor/ checks arguments and owns handle lifetimes. Every
// c10::Error becomes the TorchError class passed in by `init`, carrying libtorch's message.
//
// Reference: PyTorch 2.x public C++ API (ATen/core/dispatch/Dispatcher.h,
// ATen/core/function_schema.h); built against the libtorch of a PyTorch 2.11–2.15 install.

#include <napi.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/autocast_mode.h>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#if defined(USE_C10D_GLOO)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <atomic>
#include <chrono>
#include <thread>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <tuple>
#include <utility>
#include <fstream>
#include <string>
#include <unordered_map>
#include <vector>

#if TORCH_VERSION_MAJOR < 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR < 11)
#error "lethe needs the libtorch of PyTorch 2.11 or newer (see README: Building on an existing PyTorch)"
#endif

#ifndef LETHE_CUDA
#define LETHE_CUDA 0
#endif

namespace {

// ---- handle tables -------------------------------------------------------------------------
// JS holds integer ids; the tensors live here. Freed slots are reused.
std::vector<at::Tensor> tensors;
std::vector<const void*> slotStorage;  // the storage each slot's tensor had when it was put
std::vector<uint32_t> freeSlots;
int64_t liveTensors = 0;

// Native memory is reported to V8 once per storage, not per handle: views, `.grad` handles and
// in-place results share their storage, and counting it again would bring on needless major GCs.
struct Reported {
  int32_t handles;
  int64_t bytes;
};
std::unordered_map<const void*, Reported> storages;

const void* storageOf(const at::Tensor& t) {
  return t.defined() && t.has_storage() ? t.storage().unsafeGetStorageImpl() : nullptr;
}

void holdStorage(Napi::Env env, const void* key, const at::Tensor& t) {
  if (!key) return;
  Reported& r = storages[key];
  if (r.handles++ == 0) {
    r.bytes = static_cast<int64_t>(t.storage().nbytes());
    if (r.bytes > 0) Napi::MemoryManagement::AdjustExternalMemory(env, r.bytes);
  }
}

void releaseStorage(Napi::Env env, const void* key) {
  if (!key) return;
  auto it = storages.find(key);
  if (it == storages.end() || --it->second.handles > 0) return;
  if (it->second.bytes > 0) Napi::MemoryManagement::AdjustExternalMemory(env, -it->second.bytes);
  storages.erase(it);
}

std::vector<c10::OperatorHandle> ops;
std::unordered_map<std::string, int32_t> opIndex;

std::vector<at::Generator> generators;  // freed slots hold an undefined Generator and are reused
std::vector<uint32_t> freeGenerators;

Napi::FunctionReference torchErrorCtor;

[[noreturn]] void throwTorch(Napi::Env env, const std::string& msg) {
  if (!torchErrorCtor.IsEmpty()) {
    Napi::Object err = torchErrorCtor.New({Napi::String::New(env, msg)});
    throw Napi::Error(env, err);
  }
  throw Napi::Error::New(env, msg);
}

uint32_t putTensor(Napi::Env env, at::Tensor t) {
  const void* key = storageOf(t);
  holdStorage(env, key, t);
  uint32_t id;
  if (!freeSlots.empty()) {
    id = freeSlots.back();
    freeSlots.pop_back();
    tensors[id] = std::move(t);
    slotStorage[id] = key;
  } else {
    id = static_cast<uint32_t>(tensors.size());
    tensors.push_back(std::move(t));
    slotStorage.push_back(key);
  }
  liveTensors++;
  return id;
}

const at::Tensor& getTensor(Napi::Env env, const Napi::Value& v) {
  uint32_t id = v.As<Napi::Number>().Uint32Value();
  if (id >= tensors.size() || !tensors[id].defined()) throwTorch(env, "lethe: use of a freed or invalid tensor handle");
  return tensors[id];
}

// ---- JS -> IValue, driven by the schema ----------------------------------------------------
c10::IValue toIValue(Napi::Env env, const Napi::Value& v, const c10::TypePtr& type, const std::string& argName);

std::vector<int64_t> toIntVector(const Napi::Value& v) {
  std::vector<int64_t> out;
  if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    uint32_t n = a.Length();
    out.reserve(n);
    for (uint32_t i = 0; i < n; i++) out.push_back(a.Get(i).As<Napi::Number>().Int64Value());
  } else {
    out.push_back(v.As<Napi::Number>().Int64Value());  // `int[1] dim` accepts a bare int
  }
  return out;
}

c10::IValue toIValue(Napi::Env env, const Napi::Value& v, const c10::TypePtr& type, const std::string& argName) {
  switch (type->kind()) {
    case c10::TypeKind::OptionalType:
      if (v.IsNull() || v.IsUndefined()) return c10::IValue();
      return toIValue(env, v, type->castRaw<c10::OptionalType>()->getElementType(), argName);
    case c10::TypeKind::TensorType:
      return getTensor(env, v);
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
    case c10::TypeKind::ScalarTypeType:
    case c10::TypeKind::LayoutType:
    case c10::TypeKind::MemoryFormatType:
      if (v.IsBoolean()) return c10::IValue(static_cast<int64_t>(v.As<Napi::Boolean>().Value()));
      return c10::IValue(v.As<Napi::Number>().Int64Value());
    case c10::TypeKind::FloatType:
      return c10::IValue(v.As<Napi::Number>().DoubleValue());
    case c10::TypeKind::BoolType:
      return c10::IValue(v.ToBoolean().Value());
    case c10::TypeKind::NumberType: {  // at::Scalar
      if (v.IsBoolean()) return c10::IValue(v.As<Napi::Boolean>().Value());
      double d = v.As<Napi::Number>().DoubleValue();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9007199254740992.0)
        return c10::IValue(static_cast<int64_t>(d));
      return c10::IValue(d);
    }
    case c10::TypeKind::StringType:
      return c10::IValue(v.As<Napi::String>().Utf8Value());
    case c10::TypeKind::DeviceObjType:
      return c10::IValue(c10::Device(v.As<Napi::String>().Utf8Value()));
    case c10::TypeKind::GeneratorType: {
      uint32_t id = v.As<Napi::Number>().Uint32Value();
      if (id >= generators.size() || !generators[id].defined())
        throwTorch(env, "lethe: invalid or freed generator handle for argument " + argName);
      return c10::IValue(generators[id]);
    }
    case c10::TypeKind::ListType: {
      const c10::TypePtr& elem = type->castRaw<c10::ListType>()->getElementType();
      switch (elem->kind()) {
        case c10::TypeKind::IntType:
        case c10::TypeKind::SymIntType:
          return c10::IValue(toIntVector(v));
        case c10::TypeKind::FloatType: {
          Napi::Array a = v.As<Napi::Array>();
          std::vector<double> out(a.Length());
          for (uint32_t i = 0; i < a.Length(); i++) out[i] = a.Get(i).As<Napi::Number>().DoubleValue();
          return c10::IValue(out);
        }
        case c10::TypeKind::BoolType: {
          Napi::Array a = v.As<Napi::Array>();
          c10::List<bool> out;
          for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).ToBoolean().Value());
          return c10::IValue(out);
        }
        case c10::TypeKind::TensorType: {
          Napi::Array a = v.As<Napi::Array>();
          std::vector<at::Tensor> out;
          out.reserve(a.Length());
          for (uint32_t i = 0; i < a.Length(); i++) out.push_back(getTensor(env, a.Get(i)));
          return c10::IValue(out);
        }
        case c10::TypeKind::OptionalType: {  // Tensor?[] (index)
          Napi::Array a = v.As<Napi::Array>();
          c10::List<std::optional<at::Tensor>> out;
          for (uint32_t i = 0; i < a.Length(); i++) {
            Napi::Value e = a.Get(i);
            if (e.IsNull() || e.IsUndefined()) out.push_back(std::nullopt);
            else out.push_back(getTensor(env, e));
          }
          return c10::IValue(out);
        }
        default:
          break;
      }
      break;
    }
    default:
      break;
  }
  throwTorch(env, "lethe: argument " + argName + " has schema type " + type->str() + ", which the bridge does not convert");
}

// ---- IValue -> JS ------------------------------------------------------------------------
Napi::Value fromIValue(Napi::Env env, c10::IValue&& v) {
  if (v.isTensor()) {
    at::Tensor t = std::move(v).toTensor();
    if (!t.defined()) return env.Null();
    return Napi::Number::New(env, putTensor(env, std::move(t)));
  }
  if (v.isNone()) return env.Null();
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isTensorList()) {
    auto list = std::move(v).toTensorList();
    Napi::Array a = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) a.Set(i, Napi::Number::New(env, putTensor(env, list.get(i))));
    return a;
  }
  if (v.isTuple()) {
    auto elems = std::move(v).toTupleRef().elements().vec();
    Napi::Array a = Napi::Array::New(env, elems.size());
    for (size_t i = 0; i < elems.size(); i++) a.Set(i, fromIValue(env, std::move(elems[i])));
    return a;
  }
  if (v.isList()) {
    auto list = std::move(v).toListRef();
    Napi::Array a = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) a.Set(i, fromIValue(env, c10::IValue(list[i])));
    return a;
  }
  throwTorch(env, "lethe: cannot return a value of type " + v.tagKind());
}

#define GUARD_BEGIN try {
#define GUARD_END                                                   \
  }                                                                 \
  catch (const Napi::Error&) {                                      \
    throw;                                                          \
  }                                                                 \
  catch (const c10::Error& e) {                                     \
    throwTorch(info.Env(), e.what_without_backtrace());             \
  }                                                                 \
  catch (const std::exception& e) {                                 \
    throwTorch(info.Env(), e.what());                               \
  }

// ---- per-op plans and unboxed fast paths ---------------------------------------------------
// Each operator gets a plan when `opId` first names it: its arguments' names and default values,
// read from the schema once instead of on every call. An operator listed in `fastOps` also gets
// an unboxed path: its generated `at::_ops::<op>` struct (the entry Python's bindings call)
// names the C++ signature in `schema`, and `Fast<Op>` converts each JS argument straight to that
// parameter's C++ type and calls `Op::call`, skipping the IValue stack and the boxed→unboxed
// wrapper of a boxed call. A fast path is a table entry, not a wrapper: adding an op is one line
// of `fastOps`, and every op still has the boxed path, which the plan also serves (reference:
// ATen/core/boxing/impl/make_boxed_from_unboxed_functor.h, the conversion the boxed path does).
struct Plan;
using FastFn = Napi::Value (*)(Napi::Env, const Plan&, const Napi::CallbackInfo&, bool);

struct Plan {
  std::string opName;
  std::vector<std::string> names;
  std::vector<std::optional<c10::IValue>> defaults;
  FastFn fast = nullptr;
};
std::vector<Plan> plans;  // by op id

// The JS value given for argument i (positional, else keyword), or an empty value.
struct ArgSource {
  const Napi::CallbackInfo& info;
  Napi::Array args;
  uint32_t npos;
  bool hasKw;
  Napi::Object kw;
  explicit ArgSource(const Napi::CallbackInfo& i)
      : info(i), args(i[1].As<Napi::Array>()), npos(args.Length()), hasKw(i.Length() > 2 && i[2].IsObject()),
        kw(hasKw ? i[2].As<Napi::Object>() : Napi::Object()) {}
  Napi::Value at(size_t i, const std::string& name) const {
    if (i < npos) return args.Get(static_cast<uint32_t>(i));
    if (hasKw && kw.Has(name)) return kw.Get(name);
    return Napi::Value();
  }
};

bool absent(const Napi::Value& v) { return v.IsEmpty() || v.IsUndefined(); }
bool noneJs(const Napi::Value& v) { return v.IsEmpty() || v.IsUndefined() || v.IsNull(); }

int64_t jsInt(const Napi::Value& v) {
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
  return v.As<Napi::Number>().Int64Value();
}
at::Scalar jsScalar(const Napi::Value& v) {  // as toIValue's NumberType: integral doubles are ints
  if (v.IsBoolean()) return at::Scalar(v.As<Napi::Boolean>().Value());
  double d = v.As<Napi::Number>().DoubleValue();
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9007199254740992.0) return at::Scalar(static_cast<int64_t>(d));
  return at::Scalar(d);
}

// Conv<T>: holds one argument converted to the C++ parameter type T (decayed), from JS or from
// the schema's default. `ref()` is what is passed to Op::call.
template <class T>
struct Conv;

template <class T>
struct Simple {  // a value type converted by `fromJs` / `fromDefault`
  T v;
  T& ref() { return v; }
};

template <>
struct Conv<at::Tensor> : Simple<at::Tensor> {
  Conv(Napi::Env env, const Napi::Value& v) : Simple{getTensor(env, v)} {}
  explicit Conv(const c10::IValue& d) : Simple{d.toTensor()} {}
};
template <>
struct Conv<std::optional<at::Tensor>> : Simple<std::optional<at::Tensor>> {
  Conv(Napi::Env env, const Napi::Value& v) : Simple{noneJs(v) ? std::nullopt : std::optional<at::Tensor>(getTensor(env, v))} {}
  explicit Conv(const c10::IValue& d) : Simple{d.isNone() ? std::nullopt : std::optional<at::Tensor>(d.toTensor())} {}
};
template <>
struct Conv<at::Scalar> : Simple<at::Scalar> {
  Conv(Napi::Env, const Napi::Value& v) : Simple{jsScalar(v)} {}
  explicit Conv(const c10::IValue& d) : Simple{d.toScalar()} {}
};
template <>
struct Conv<int64_t> : Simple<int64_t> {
  Conv(Napi::Env, const Napi::Value& v) : Simple{jsInt(v)} {}
  explicit Conv(const c10::IValue& d) : Simple{d.toInt()} {}
};
template <>
struct Conv<c10::SymInt> : Simple<c10::SymInt> {
  Conv(Napi::Env, const Napi::Value& v) : Simple{c10::SymInt(jsInt(v))} {}
  explicit Conv(const c10::IValue& d) : Simple{d.toSymInt()} {}
};
template <>
struct Conv<std::optional<c10::SymInt>> : Simple<std::optional<c10::SymInt>> {
  Conv(Napi::Env, const Napi::Value& v) : Simple{noneJs(v) ? std::nullopt : std::optional<c10::SymInt>(c10::SymInt(jsInt(v)))} {}
  explicit Conv(const c10::IValue& d) : Simple{d.isNone() ? std::nullopt : std::optional<c10::SymInt>(d.toSymInt())} {}
};
template <>
struct Conv<std::optional<int64_t>> : Simple<std::optional<int64_t>> {
  Conv(Napi::Env, const Napi::Value& v) : Simple{noneJs(v) ? std::nullopt : std::optional<int64_t>(jsInt(v))} {}
  explicit Conv(const c10::IValue& d) : Simple{d.isNone() ? std::nullopt : std::optional<int64_t>(d.toInt())} {}
};
template <>
struct Conv<double> : Simple<double> {
  Conv(Napi::Env, const Napi::Value& v) : Simple{v.As<Napi::Number>().DoubleValue()} {}
  explicit Conv(const c10::IValue& d) : Simple{d.toDouble()} {}
};
template <>
struct Conv<std::optional<double>> : Simple<std::optional<double>> {
  Conv(Napi::Env, const Napi::Value& v) : Simple{noneJs(v) ? std::nullopt : std::optional<double>(v.As<Napi::Number>().DoubleValue())} {}
  explicit Conv(const c10::IValue& d) : Simple{d.isNone() ? std::nullopt : std::optional<double>(d.toDouble())} {}
};
template <>
struct Conv<bool> : Simple<bool> {
  Conv(Napi::Env, const Napi::Value& v) : Simple{v.ToBoolean().Value()} {}
  explicit Conv(const c10::IValue& d) : Simple{d.toBool()} {}
};
template <>
struct Conv<at::ScalarType> : Simple<at::ScalarType> {
  Conv(Napi::Env, const Napi::Value& v) : Simple{static_cast<at::ScalarType>(jsInt(v))} {}
  explicit Conv(const c10::IValue& d) : Simple{static_cast<at::ScalarType>(d.toInt())} {}
};
template <>
struct Conv<std::optional<at::ScalarType>> : Simple<std::optional<at::ScalarType>> {
  Conv(Napi::Env, const Napi::Value& v)
      : Simple{noneJs(v) ? std::nullopt : std::optional<at::ScalarType>(static_cast<at::ScalarType>(jsInt(v)))} {}
  explicit Conv(const c10::IValue& d)
      : Simple{d.isNone() ? std::nullopt : std::optional<at::ScalarType>(static_cast<at::ScalarType>(d.toInt()))} {}
};
template <>
struct Conv<at::MemoryFormat> : Simple<at::MemoryFormat> {
  Conv(Napi::Env, const Napi::Value& v) : Simple{static_cast<at::MemoryFormat>(jsInt(v))} {}
  explicit Conv(const c10::IValue& d) : Simple{static_cast<at::MemoryFormat>(d.toInt())} {}
};
template <>
struct Conv<std::optional<at::MemoryFormat>> : Simple<std::optional<at::MemoryFormat>> {
  Conv(Napi::Env, const Napi::Value& v)
      : Simple{noneJs(v) ? std::nullopt : std::optional<at::MemoryFormat>(static_cast<at::MemoryFormat>(jsInt(v)))} {}
  explicit Conv(const c10::IValue& d)
      : Simple{d.isNone() ? std::nullopt : std::optional<at::MemoryFormat>(static_cast<at::MemoryFormat>(d.toInt()))} {}
};
template <>
struct Conv<c10::string_view> {
  std::string s;
  Conv(Napi::Env, const Napi::Value& v) : s(v.As<Napi::String>().Utf8Value()) {}
  explicit Conv(const c10::IValue& d) : s(d.toStringRef()) {}
  c10::string_view ref() { return s; }
};
template <>
struct Conv<at::IntArrayRef> {  // int[] (a bare int is a one-element list, as in toIntVector)
  std::vector<int64_t> v;
  Conv(Napi::Env, const Napi::Value& js) : v(toIntVector(js)) {}
  explicit Conv(const c10::IValue& d) : v(d.toIntVector()) {}
  at::IntArrayRef ref() { return v; }
};
template <>
struct Conv<c10::SymIntArrayRef> {
  std::vector<int64_t> v;
  Conv(Napi::Env, const Napi::Value& js) : v(toIntVector(js)) {}
  explicit Conv(const c10::IValue& d) : v(d.toIntVector()) {}
  c10::SymIntArrayRef ref() { return c10::fromIntArrayRefSlow(v); }
};
template <>
struct Conv<at::OptionalIntArrayRef> {
  std::optional<std::vector<int64_t>> v;
  Conv(Napi::Env, const Napi::Value& js) : v(noneJs(js) ? std::nullopt : std::optional(toIntVector(js))) {}
  explicit Conv(const c10::IValue& d) : v(d.isNone() ? std::nullopt : std::optional(d.toIntVector())) {}
  at::OptionalIntArrayRef ref() { return v ? at::OptionalIntArrayRef(*v) : at::OptionalIntArrayRef(); }
};

// Argument i of a fast call: the JS value when given, else the schema's default.
template <class T>
Conv<T> argument(Napi::Env env, const Plan& plan, const ArgSource& src, size_t i) {
  Napi::Value v = src.at(i, plan.names[i]);
  if (!absent(v)) return Conv<T>(env, v);
  if (!plan.defaults[i]) throwTorch(env, "lethe: missing argument '" + plan.names[i] + "' for " + plan.opName);
  return Conv<T>(*plan.defaults[i]);
}

Napi::Value toJs(Napi::Env env, const at::Tensor& t) {
  if (!t.defined()) return env.Null();
  return Napi::Number::New(env, putTensor(env, t));
}
Napi::Value toJs(Napi::Env env, const std::vector<at::Tensor>& ts) {
  Napi::Array a = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) a.Set(static_cast<uint32_t>(i), toJs(env, ts[i]));
  return a;
}

template <class Op, class Sig = typename Op::schema>
struct Fast;
template <class Op, class R, class... P>
struct Fast<Op, R(P...)> {
  static Napi::Value run(Napi::Env env, const Plan& plan, const Napi::CallbackInfo& info, bool discard) {
    return go(env, plan, ArgSource(info), discard, std::index_sequence_for<P...>{});
  }
  template <size_t... I>
  static Napi::Value go(Napi::Env env, const Plan& plan, const ArgSource& src, bool discard, std::index_sequence<I...>) {
    if (src.npos > sizeof...(P)) throwTorch(env, "lethe: too many arguments for " + plan.opName);
    // Braced initialisation converts the arguments left to right, as the boxed path does.
    std::tuple<Conv<std::decay_t<P>>...> held{argument<std::decay_t<P>>(env, plan, src, I)...};
    decltype(auto) r = Op::call(std::get<I>(held).ref()...);
    if (discard) return env.Undefined();
    return toJs(env, r);
  }
};

#define FAST(op) {at::_ops::op::name, at::_ops::op::overload_name, &Fast<at::_ops::op>::run}
struct FastEntry {
  const char* name;
  const char* overload;
  FastFn fn;
};
// The ops that dominate a training step, an evaluation batch and a decoding step
// (bench/RESULTS.md, "Where a step's time goes").
const FastEntry fastOps[] = {
    FAST(add_Tensor), FAST(add_Scalar), FAST(add__Tensor), FAST(add__Scalar), FAST(sub_Tensor),
    FAST(mul_Tensor), FAST(mul_Scalar), FAST(mul__Tensor), FAST(mul__Scalar), FAST(div_Tensor),
    FAST(div_Scalar), FAST(div__Scalar), FAST(matmul), FAST(mm), FAST(bmm), FAST(addmm), FAST(linear),
    FAST(view), FAST(reshape), FAST(transpose_int), FAST(permute), FAST(contiguous), FAST(slice_Tensor),
    FAST(select_int), FAST(narrow), FAST(unsqueeze), FAST(squeeze_dim), FAST(expand), FAST(split_Tensor),
    FAST(softmax_int), FAST(log_softmax_int), FAST(layer_norm), FAST(embedding),
    FAST(scaled_dot_product_attention), FAST(cross_entropy_loss), FAST(gelu), FAST(silu), FAST(tanh),
    FAST(exp), FAST(neg), FAST(rsqrt), FAST(sqrt), FAST(pow_Tensor_Scalar), FAST(mean_dim),
    FAST(sum_dim_IntList), FAST(gather), FAST(masked_fill_Scalar), FAST(where_self), FAST(index_select),
    FAST(argmax), FAST(lerp__Scalar), FAST(addcmul_), FAST(addcdiv_), FAST(zero_), FAST(copy_), FAST(clone),
    FAST(detach), FAST(to_dtype),
};
#undef FAST

Plan makePlan(const c10::OperatorHandle& op) {
  Plan p;
  const auto& schema = op.schema();
  p.opName = schema.name();
  for (const auto& a : schema.arguments()) {
    p.names.push_back(a.name());
    p.defaults.push_back(a.default_value());
  }
  if (!std::getenv("LETHE_BOXED_ONLY"))  // A/B switch for bench/engine's overhead figure
    for (const auto& e : fastOps)
      if (schema.name() == e.name && schema.overload_name() == e.overload) p.fast = e.fn;
  return p;
}

// ---- exports -----------------------------------------------------------------------------

// The version of the libtorch actually loaded, which can differ from the headers built against:
// read from the install beside the loaded libtorch_cpu.so (a wheel's torch/version.py, or a
// libtorch zip's build-version).
std::string loadedTorchVersion() {
  Dl_info dl;
  if (!dladdr(reinterpret_cast<void*>(&at::get_num_threads), &dl) || !dl.dli_fname) return "unknown";
  std::string lib(dl.dli_fname);
  std::string dir = lib.substr(0, lib.rfind('/'));  // .../torch/lib
  std::string up = dir.substr(0, dir.rfind('/'));   // .../torch
  std::ifstream py(up + "/version.py");
  for (std::string line; std::getline(py, line);) {
    auto q = line.find('\'');
    if (line.rfind("__version__", 0) == 0 && q != std::string::npos)
      return line.substr(q + 1, line.rfind('\'') - q - 1);
  }
  std::ifstream zip(up + "/build-version");
  std::string v;
  if (std::getline(zip, v)) return v;
  return "unknown";
}

// Allocator policy. glibc serves blocks above a threshold (128 KiB, rising to at most 32 MiB) with
// fresh mmap pages and hands a free heap top back to the OS, so a step's tensors above 32 MiB come
// back as zeroed pages that fault in on every step. LETHE_MALLOC=retain keeps freed memory in the
// process instead (blocks under 1 GiB from the heap, a free top returned only beyond 1 GiB), as
// jemalloc or tcmalloc through LD_PRELOAD do for PyTorch: bench/engine's steps (33.5 MB logits)
// run 1.16-1.20x PyTorch's with it, but a 134M model's peak RSS grows 14% (heap fragmentation),
// so glibc's defaults stay the default (bench/RESULTS.md).
const char* allocatorPolicy() {
#if defined(__GLIBC__)
  const char* env = std::getenv("LETHE_MALLOC");
  if (env && std::string(env) == "retain" && mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 &&
      mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1)
    return "retain";
#endif
  return "os";
}

// init(TorchError): remember the error class every libtorch failure is thrown as; report the
// build (libtorch built against and loaded, CUDA compiled in and available, threads) and the
// allocator policy.
Napi::Value Init(const Napi::CallbackInfo& info) {
  torchErrorCtor = Napi::Persistent(info[0].As<Napi::Function>());
  static const char* policy = allocatorPolicy();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("malloc", policy);
  o.Set("torch", TORCH_VERSION);
  o.Set("torchLoaded", loadedTorchVersion());
  o.Set("cudaCompiled", static_cast<bool>(LETHE_CUDA));
  o.Set("cuda", torch::cuda::is_available());
  o.Set("cudaDevices", static_cast<double>(torch::cuda::device_count()));
  o.Set("threads", at::get_num_threads());
#if defined(USE_C10D_GLOO)
  o.Set("gloo", true);
#else
  o.Set("gloo", false);
#endif
#if defined(USE_C10D_NCCL)
  o.Set("nccl", true);
#else
  o.Set("nccl", false);
#endif
  return o;
}

// config() -> what libtorch reports of itself: build settings (BLAS, oneDNN, OpenMP), the CPU
// instruction set its kernels dispatch to, and its thread pools. For `lethe doctor`.
Napi::Value Config(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("showConfig", at::show_config());
  o.Set("parallelInfo", at::get_parallel_info());
  o.Set("cpuCapability", at::get_cpu_capability());
  o.Set("mkl", at::hasMKL() ? at::get_mkl_version() : std::string());
  o.Set("mkldnn", at::hasMKLDNN() ? at::get_mkldnn_version() : std::string());
  return o;
}

// opId("aten::add.Tensor") -> id, or -1 if this libtorch has no such operator.
Napi::Value OpId(const Napi::CallbackInfo& info) {
  std::string full = info[0].As<Napi::String>().Utf8Value();
  auto it = opIndex.find(full);
  if (it != opIndex.end()) return Napi::Number::New(info.Env(), it->second);
  size_t sep = full.find('.', full.find("::"));
  std::string name = sep == std::string::npos ? full : full.substr(0, sep);
  std::string overload = sep == std::string::npos ? "" : full.substr(sep + 1);
  auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!handle.has_value()) return Napi::Number::New(info.Env(), -1);
  int32_t id = static_cast<int32_t>(ops.size());
  ops.push_back(*handle);
  plans.push_back(makePlan(*handle));
  opIndex.emplace(full, id);
  return Napi::Number::New(info.Env(), id);
}

// opSchema(id) -> the operator's schema text, for error messages and docs.
Napi::Value OpSchema(const Napi::CallbackInfo& info) {
  int32_t id = info[0].As<Napi::Number>().Int32Value();
  std::ostringstream s;
  s << ops.at(id).schema();
  return Napi::String::New(info.Env(), s.str());
}

// call(opId, args[], kwargs|null, discard) -> result (tensor ids for tensors; arrays for tuples).
// Missing trailing arguments take the schema's defaults; kwargs fill keyword arguments by name.
Napi::Value Call(const Napi::CallbackInfo& info) {
  GUARD_BEGIN
  Napi::Env env = info.Env();
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  const c10::OperatorHandle& op = ops[id];
  const Plan& plan = plans[id];
  bool discard = info.Length() > 3 && info[3].ToBoolean().Value();
  if (plan.fast) return plan.fast(env, plan, info, discard);
  ArgSource src(info);
  const auto& formals = op.schema().arguments();
  if (src.npos > formals.size()) throwTorch(env, "lethe: too many arguments for " + plan.opName);
  torch::jit::Stack stack;
  stack.reserve(formals.size());
  for (size_t i = 0; i < formals.size(); i++) {
    Napi::Value v = src.at(i, plan.names[i]);
    if (!absent(v)) stack.push_back(toIValue(env, v, formals[i].type(), plan.names[i]));
    else if (plan.defaults[i]) stack.push_back(*plan.defaults[i]);
    else throwTorch(env, "lethe: missing argument '" + plan.names[i] + "' for " + plan.opName);
  }
  op.callBoxed(&stack);
  if (discard) return env.Undefined();
  if (stack.size() == 1) return fromIValue(env, std::move(stack[0]));
  Napi::Array out = Napi::Array::New(env, stack.size());
  for (size_t i = 0; i < stack.size(); i++) out.Set(i, fromIValue(env, std::move(stack[i])));
  return out;
  GUARD_END
  return info.Env().Undefined();
}

// free(id): release the handle (the storage goes when its last view goes).
Napi::Value Free(const Napi::CallbackInfo& info) {
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  if (id < tensors.size() && tensors[id].defined()) {
    tensors[id] = at::Tensor();
    releaseStorage(info.Env(), slotStorage[id]);
    slotStorage[id] = nullptr;
    freeSlots.push_back(id);
    liveTensors--;
  }
  return info.Env().Undefined();
}

// meta(id) -> [scalarType, deviceString, requiresGrad, ...sizes]
Napi::Value Meta(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = getTensor(env, info[0]);
  auto sizes = t.sizes();
  Napi::Array a = Napi::Array::New(env, 3 + sizes.size());
  a.Set(0u, static_cast<double>(static_cast<int>(t.scalar_type())));
  a.Set(1u, t.device().str());
  a.Set(2u, t.requires_grad());
  for (size_t i = 0; i < sizes.size(); i++) a.Set(static_cast<uint32_t>(3 + i), static_cast<double>(sizes[i]));
  return a;
}

// fromBuffer(bytes: Uint8Array, scalarType, shape[]) -> id. Copies the bytes into a new CPU tensor.
Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  GUARD_BEGIN
  Napi::Env env = info.Env();
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  auto dtype = static_cast<c10::ScalarType>(info[1].As<Napi::Number>().Int32Value());
  std::vector<int64_t> shape = toIntVector(info[2]);
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
  size_t n = t.numel() * t.element_size();
  if (n != bytes.ByteLength())
    throwTorch(env, "lethe: fromBuffer got " + std::to_string(bytes.ByteLength()) + " bytes for " + std::to_string(n) + " needed");
  if (n) std::memcpy(t.data_ptr(), bytes.Data(), n);
  return Napi::Number::New(env, putTensor(env, std::move(t)));
  GUARD_END
  return info.Env().Undefined();
}

// toBuffer(id) -> ArrayBuffer over a contiguous CPU copy (external; freed by its finalizer).
Napi::Value ToBuffer(const Napi::CallbackInfo& info) {
  GUARD_BEGIN
  Napi::Env env = info.Env();
  at::Tensor t = getTensor(env, info[0]).detach().to(at::kCPU).contiguous();
  size_t n = t.numel() * t.element_size();
  if (n == 0) return Napi::ArrayBuffer::New(env, 0);
  auto* owner = new at::Tensor(std::move(t));
  return Napi::ArrayBuffer::New(env, owner->data_ptr(), n, [](Napi::Env, void*, at::Tensor* o) { delete o; }, owner);
  GUARD_END
  return info.Env().Undefined();
}

// backward(roots[], grads[]|null, retainGraph, createGraph)
Napi::Value Backward(const Napi::CallbackInfo& info) {
  GUARD_BEGIN
  Napi::Env env = info.Env();
  Napi::Array roots = info[0].As<Napi::Array>();
  std::vector<at::Tensor> ts, gs;
  for (uint32_t i = 0; i < roots.Length(); i++) ts.push_back(getTensor(env, roots.Get(i)));
  if (info[1].IsArray()) {
    Napi::Array grads = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < grads.Length(); i++) gs.push_back(getTensor(env, grads.Get(i)));
  }
  std::optional<bool> retain;
  if (info[2].IsBoolean()) retain = info[2].As<Napi::Boolean>().Value();
  torch::autograd::backward(ts, gs, retain, info[3].ToBoolean().Value());
  return env.Undefined();
  GUARD_END
  return info.Env().Undefined();
}

// grad(id) -> id of .grad, or null.  setGrad(id, gradId|null).
Napi::Value Grad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& g = getTensor(env, info[0]).grad();
  if (!g.defined()) return env.Null();
  return Napi::Number::New(env, putTensor(env, g));
}

Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  GUARD_BEGIN
  Napi::Env env = info.Env();
  at::Tensor t = getTensor(env, info[0]);
  if (info[1].IsNull() || info[1].IsUndefined()) t.mutable_grad() = at::Tensor();
  else t.mutable_grad() = getTensor(env, info[1]);
  return env.Undefined();
  GUARD_END
  return info.Env().Undefined();
}

// setGradEnabled(bool) -> previous value (thread-local, like torch.set_grad_enabled).
Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  bool prev = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(info[0].ToBoolean().Value());
  return Napi::Boolean::New(info.Env(), prev);
}

// autocast(device, enabled, scalarType) -> whether it was enabled (torch.autocast's switch:
// thread-local, like the grad mode). Turning it off drops the cache of casted weights.
Napi::Value Autocast(const Napi::CallbackInfo& info) {
  GUARD_BEGIN
  c10::DeviceType dev = c10::Device(info[0].As<Napi::String>().Utf8Value()).type();
  bool prev = at::autocast::is_autocast_enabled(dev);
  bool enable = info[1].ToBoolean().Value();
  if (enable) at::autocast::set_autocast_dtype(dev, static_cast<c10::ScalarType>(info[2].As<Napi::Number>().Int32Value()));
  at::autocast::set_autocast_enabled(dev, enable);
  if (!enable && prev) at::autocast::clear_cache();
  return Napi::Boolean::New(info.Env(), prev);
  GUARD_END
  return info.Env().Undefined();
}

// generator(seed, device) -> id of a new random generator for that device.
Napi::Value Generator(const Napi::CallbackInfo& info) {
  GUARD_BEGIN
  auto seed = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  c10::Device dev(info[1].As<Napi::String>().Utf8Value());
  at::Generator g = at::globalContext().defaultGenerator(dev).clone();
  g.set_current_seed(seed);
  uint32_t id;
  if (!freeGenerators.empty()) {
    id = freeGenerators.back();
    freeGenerators.pop_back();
    generators[id] = std::move(g);
  } else {
    id = static_cast<uint32_t>(generators.size());
    generators.push_back(std::move(g));
  }
  return Napi::Number::New(info.Env(), static_cast<double>(id));
  GUARD_END
  return info.Env().Undefined();
}

// rngState(device) -> id of a uint8 tensor holding the device's default generator state, and
// setRngState(device, id): torch.get_rng_state / set_rng_state (torch.cuda.* for "cuda:N").
Napi::Value RngState(const Napi::CallbackInfo& info) {
  GUARD_BEGIN
  at::Generator g = at::globalContext().defaultGenerator(c10::Device(info[0].As<Napi::String>().Utf8Value()));
  std::lock_guard<std::mutex> lock(g.mutex());
  return Napi::Number::New(info.Env(), putTensor(info.Env(), g.get_state()));
  GUARD_END
  return info.Env().Undefined();
}

Napi::Value SetRngState(const Napi::CallbackInfo& info) {
  GUARD_BEGIN
  at::Generator g = at::globalContext().defaultGenerator(c10::Device(info[0].As<Napi::String>().Utf8Value()));
  const at::Tensor& state = getTensor(info.Env(), info[1]);
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(state);
  return info.Env().Undefined();
  GUARD_END
  return info.Env().Undefined();
}

// freeGenerator(id): releases a generator; its slot is reused.
Napi::Value FreeGenerator(const Napi::CallbackInfo& info) {
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  if (id < generators.size() && generators[id].defined()) {
    generators[id] = at::Generator();
    freeGenerators.push_back(id);
  }
  return info.Env().Undefined();
}

// manualSeed(seed): seeds the default generators (torch.manual_seed).
Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  torch::manual_seed(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
  return info.Env().Undefined();
}

// setNumThreads(n) -> threads now in use.
Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n > 0) at::set_num_threads(n);
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

// stats() -> { liveTensors, slots }: for leak tests.
Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("liveTensors", static_cast<double>(liveTensors));
  o.Set("slots", static_cast<double>(tensors.size()));
  o.Set("storages", static_cast<double>(storages.size()));
  o.Set("generators", static_cast<double>(generators.size() - freeGenerators.size()));
  size_t fast = 0;
  for (const auto& p : plans) fast += p.fast != nullptr;
  o.Set("fastPaths", static_cast<double>(fast));  // ops looked up so far that took an unboxed path
  return o;
}


// ---- distributed: PyTorch's c10d (TCPStore, ProcessGroupGloo / ProcessGroupNCCL) ------------
// One process group per id. A heartbeat thread adds 1 to "hb/<rank>" in the store every second,
// so that after a failed collective the survivors can tell which rank is gone (src/dist/).
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  int rank = 0, world = 1;
  std::string backendName;
  std::shared_ptr<std::atomic<bool>> stop = std::make_shared<std::atomic<bool>>(false);
  std::thread heartbeat;
  ~Group() {
    stop->store(true);
    if (heartbeat.joinable()) heartbeat.join();
  }
};
std::vector<std::unique_ptr<Group>> groups;
std::vector<c10::intrusive_ptr<c10d::Work>> works;  // pending async collectives (freed slots null)

Group& getGroup(Napi::Env env, const Napi::Value& v) {
  uint32_t id = v.As<Napi::Number>().Uint32Value();
  if (id >= groups.size() || !groups[id]) throwTorch(env, "lethe: use of a destroyed or invalid process group");
  return *groups[id];
}

// processGroup({backend, host, port, rank, world, timeoutMs, isServer}) -> id. Rendezvous
// through a TCPStore at host:port (hosted by the rank with isServer, e.g. rank 0, or by the
// launcher as torchrun's agent does), then the backend: "gloo" (CPU) or "nccl" (CUDA builds).
Napi::Value ProcessGroup(const Napi::CallbackInfo& info) {
  GUARD_BEGIN
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  auto g = std::make_unique<Group>();
  g->backendName = o.Get("backend").As<Napi::String>().Utf8Value();
  g->rank = o.Get("rank").As<Napi::Number>().Int32Value();
  g->world = o.Get("world").As<Napi::Number>().Int32Value();
  auto timeout = std::chrono::milliseconds(o.Get("timeoutMs").As<Napi::Number>().Int64Value());
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(o.Get("port").As<Napi::Number>().Uint32Value());
  so.isServer = o.Get("isServer").ToBoolean().Value();
  so.numWorkers = g->world;
  so.waitWorkers = false;
  so.timeout = timeout;
  auto tcp = c10::make_intrusive<c10d::TCPStore>(o.Get("host").As<Napi::String>().Utf8Value(), so);
  g->store = c10::make_intrusive<c10d::PrefixStore>("lethe", tcp);
  if (g->backendName == "gloo") {
#if defined(USE_C10D_GLOO)
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(o.Get("localHost").As<Napi::String>().Utf8Value()));
    g->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, g->rank, g->world, opts);
#else
    throwTorch(env, "lethe: this addon was built without Gloo (gloo headers were not found at build time)");
#endif
  } else if (g->backendName == "nccl") {
#if defined(USE_C10D_NCCL)
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    g->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(g->store, g->rank, g->world, opts);
#else
    throwTorch(env, "lethe: this addon was built without NCCL (a CUDA build with nccl.h is needed)");
#endif
  } else {
    throwTorch(env, "lethe: unknown process group backend \"" + g->backendName + "\" (gloo, nccl)");
  }
  g->heartbeat = std::thread([store = g->store, stop = g->stop, key = "hb/" + std::to_string(g->rank)] {
    while (!stop->load()) {
      try {
        store->add(key, 1);
      } catch (...) {
        return;  // the store is gone (its host died): the next collective reports it
      }
      for (int i = 0; i < 10 && !stop->load(); i++) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  groups.push_back(std::move(g));
  return Napi::Number::New(env, static_cast<double>(groups.size() - 1));
  GUARD_END
  return info.Env().Undefined();
}

// collective(group, op, tensors[], {reduce, root, async}) -> work id (async) or undefined.
// ops: allreduce, broadcast, reduce, allgather ([input, ...outputs]), reduceScatter
// ([output, ...inputs]), barrier. The backend's timeout bounds every op; a dead peer or a
// timeout is thrown as TorchError with the backend's message.
Napi::Value Collective(const Napi::CallbackInfo& info) {
  GUARD_BEGIN
  Napi::Env env = info.Env();
  Group& g = getGroup(env, info[0]);
  std::string op = info[1].As<Napi::String>().Utf8Value();
  Napi::Array ids = info[2].As<Napi::Array>();
  std::vector<at::Tensor> ts;
  for (uint32_t i = 0; i < ids.Length(); i++) ts.push_back(getTensor(env, ids.Get(i)));
  Napi::Object o = info[3].IsObject() ? info[3].As<Napi::Object>() : Napi::Object::New(env);
  auto red = c10d::ReduceOp::SUM;
  if (o.Has("reduce")) {
    std::string r = o.Get("reduce").As<Napi::String>().Utf8Value();
    red = r == "sum" ? c10d::ReduceOp::SUM : r == "max" ? c10d::ReduceOp::MAX : r == "min" ? c10d::ReduceOp::MIN : c10d::ReduceOp::AVG;
  }
  int64_t root = o.Has("root") ? o.Get("root").As<Napi::Number>().Int64Value() : 0;
  c10::intrusive_ptr<c10d::Work> w;
  if (op == "allreduce") {
    c10d::AllreduceOptions a;
    a.reduceOp = red;
    w = g.backend->allreduce(ts, a);
  } else if (op == "broadcast") {
    c10d::BroadcastOptions b;
    b.rootRank = root;
    w = g.backend->broadcast(ts, b);
  } else if (op == "reduce") {
    c10d::ReduceOptions r;
    r.reduceOp = red;
    r.rootRank = root;
    w = g.backend->reduce(ts, r);
  } else if (op == "allgather") {
    std::vector<at::Tensor> in{ts.at(0)};
    std::vector<std::vector<at::Tensor>> out{std::vector<at::Tensor>(ts.begin() + 1, ts.end())};
    w = g.backend->allgather(out, in);
  } else if (op == "reduceScatter") {
    std::vector<at::Tensor> out{ts.at(0)};
    std::vector<std::vector<at::Tensor>> in{std::vector<at::Tensor>(ts.begin() + 1, ts.end())};
    c10d::ReduceScatterOptions r;
    r.reduceOp = red;
    w = g.backend->reduce_scatter(out, in, r);
  } else if (op == "barrier") {
    w = g.backend->barrier();
  } else {
    throwTorch(env, "lethe: unknown collective \"" + op + "\"");
  }
  if (!o.Get("async").ToBoolean().Value()) {
    w->wait();
    return env.Undefined();
  }
  for (size_t i = 0; i < works.size(); i++)
    if (!works[i]) {
      works[i] = w;
      return Napi::Number::New(env, static_cast<double>(i));
    }
  works.push_back(w);
  return Napi::Number::New(env, static_cast<double>(works.size() - 1));
  GUARD_END
  return info.Env().Undefined();
}

// wait(work id): waits for an async collective and frees its id.
Napi::Value Wait(const Napi::CallbackInfo& info) {
  GUARD_BEGIN
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  if (id >= works.size() || !works[id]) throwTorch(info.Env(), "lethe: wait on an unknown or finished collective");
  auto w = std::move(works[id]);
  works[id].reset();
  w->wait();
  GUARD_END
  return info.Env().Undefined();
}

// store(group, op, key, value?) -> "add": the new count; "get": the value as a string ("" when
// the key is absent, checked without waiting); "set": undefined.
Napi::Value Store(const Napi::CallbackInfo& info) {
  GUARD_BEGIN
  Napi::Env env = info.Env();
  Group& g = getGroup(env, info[0]);
  std::string op = info[1].As<Napi::String>().Utf8Value(), key = info[2].As<Napi::String>().Utf8Value();
  if (op == "add") return Napi::Number::New(env, static_cast<double>(g.store->add(key, info[3].As<Napi::Number>().Int64Value())));
  if (op == "get") {
    if (!g.store->check({key})) return Napi::String::New(env, "");
    auto v = g.store->get(key);
    return Napi::String::New(env, std::string(v.begin(), v.end()));
  }
  if (op == "set") {
    std::string v = info[3].As<Napi::String>().Utf8Value();
    g.store->set(key, std::vector<uint8_t>(v.begin(), v.end()));
    return env.Undefined();
  }
  throwTorch(env, "lethe: unknown store op \"" + op + "\"");
  GUARD_END
  return info.Env().Undefined();
}

// destroyGroup(group): stops the heartbeat, drops the backend and the store.
Napi::Value DestroyGroup(const Napi::CallbackInfo& info) {
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  if (id < groups.size()) groups[id].reset();
  return info.Env().Undefined();
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("config", Napi::Function::New(env, Config));
  exports.Set("opId", Napi::Function::New(env, OpId));
  exports.Set("opSchema", Napi::Function::New(env, OpSchema));
  exports.Set("call", Napi::Function::New(env, Call));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("meta", Napi::Function::New(env, Meta));
  exports.Set("fromBuffer", Napi::Function::New(env, FromBuffer));
  exports.Set("toBuffer", Napi::Function::New(env, ToBuffer));
  exports.Set("backward", Napi::Function::New(env, Backward));
  exports.Set("grad", Napi::Function::New(env, Grad));
  exports.Set("setGrad", Napi::Function::New(env, SetGrad));
  exports.Set("setGradEnabled", Napi::Function::New(env, SetGradEnabled));
  exports.Set("autocast", Napi::Function::New(env, Autocast));
  exports.Set("generator", Napi::Function::New(env, Generator));
  exports.Set("freeGenerator", Napi::Function::New(env, FreeGenerator));
  exports.Set("rngState", Napi::Function::New(env, RngState));
  exports.Set("setRngState", Napi::Function::New(env, SetRngState));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("stats", Napi::Function::New(env, Stats));
  exports.Set("processGroup", Napi::Function::New(env, ProcessGroup));
  exports.Set("collective", Napi::Function::New(env, Collective));
  exports.Set("wait", Napi::Function::New(env, Wait));
  exports.Set("store", Napi::Function::New(env, Store));
  exports.Set("destroyGroup", Napi::Function::New(env, DestroyGroup));
  return exports;
}

}  // namespace

NODE_API_MODULE(lethe, Module)
