// module.cpp: loading a TorchScript module onto a device and running its forward method.
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/cuda.h>

#include <cstdlib>
#include <cstring>
#include <optional>

#include "internal.h"

namespace ofa {
namespace {

constexpr size_t kMaxErrorLen = 1000;

bool contains(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

std::string trim_space(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// A TorchScript error carries the interpreter's traceback ("Traceback of TorchScript ... File ..., line N")
// before the real message, which is the last paragraph that is not source code. Keep that paragraph.
std::string strip_traceback(const std::string& msg) {
  if (!contains(msg, "Traceback of TorchScript") && !contains(msg, "The following operation failed")) return msg;
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= msg.size()) {
    size_t nl = msg.find('\n', start);
    if (nl == std::string::npos) nl = msg.size();
    lines.push_back(msg.substr(start, nl - start));
    start = nl + 1;
  }
  // The message starts at the last line that is not indented (traceback frames and code are indented or
  // begin with "Traceback"/"The following"), ignoring trailing blank lines.
  int last = static_cast<int>(lines.size()) - 1;
  while (last >= 0 && trim_space(lines[last]).empty()) last--;
  int first = last;
  while (first > 0) {
    const std::string& prev = lines[first - 1];
    if (prev.empty() || prev[0] == ' ' || prev[0] == '~' || contains(prev, "Traceback of TorchScript") ||
        contains(prev, "The following operation failed")) {
      break;
    }
    first--;
  }
  std::string out;
  for (int i = first; i <= last && i >= 0; i++) out += (out.empty() ? "" : "\n") + lines[i];
  out = trim_space(out);
  return out.empty() ? msg : out;
}

// Reads forward's schema: how many tensors it takes and their names.
void read_schema(ofa_module* m) {
  const c10::FunctionSchema& schema = m->module.get_method("forward").function().getSchema();
  std::ostringstream s;
  s << schema;
  m->schema = s.str();
  const auto& args = schema.arguments();
  int32_t min = 0, max = 0;
  for (size_t i = 1; i < args.size(); i++) {  // args[0] is self
    const c10::Argument& a = args[i];
    bool takes_tensor = c10::TensorType::get()->isSubtypeOf(*a.type());
    if (!takes_tensor) {
      if (a.default_value().has_value()) break;  // later arguments keep their defaults
      throw std::invalid_argument("forward argument '" + a.name() + "' has type " + a.type()->str() +
                                  "; ofaserve passes only tensors");
    }
    m->arg_names.push_back(a.name());
    max++;
    if (!a.default_value().has_value()) min = max;
  }
  m->min_inputs = min;
  m->max_inputs = max;
}

// Converts the module's floating-point parameters and buffers to dtype, in place, and leaves every other
// tensor as saved: integer and bool buffers are indices, counts and masks (an exported model's answer ids
// for index_select, BatchNorm's num_batches_tracked), and rounding them to a float type breaks the module.
// This is what nn.Module.to(dtype) does in Python; torch::jit::Module::to(dtype) instead converts every
// parameter and buffer, whatever its type. A tensor reached twice (tied weights) is converted once.
void to_precision(torch::jit::Module& module, at::ScalarType dtype) {
  auto convert = [dtype](const at::Tensor& t) {
    if (t.is_floating_point() && t.scalar_type() != dtype) t.set_data(t.to(dtype));
  };
  for (const at::Tensor& p : module.parameters(/*recurse=*/true)) convert(p);
  for (const at::Tensor& b : module.buffers(/*recurse=*/true)) convert(b);
}

c10::Device parse_device(const char* device) {
  std::string d = device == nullptr || device[0] == 0 ? "cpu" : device;
  c10::Device dev(c10::kCPU);
  try {
    dev = c10::Device(d);
  } catch (const std::exception&) {
    throw std::invalid_argument("unknown device \"" + d + "\" (want cpu or cuda:N)");
  }
  if (dev.is_cpu()) return dev;
  if (!dev.is_cuda()) throw std::invalid_argument("unsupported device \"" + d + "\" (want cpu or cuda:N)");
  if (!torch::cuda::is_available()) {
    throw std::invalid_argument("device " + d + ": CUDA is not available (CPU-only libtorch or no GPU)");
  }
  if (!dev.has_index()) dev.set_index(0);
  int64_t n = static_cast<int64_t>(torch::cuda::device_count());
  if (dev.index() >= n) {
    throw std::invalid_argument("device " + d + ": only " + std::to_string(n) + " CUDA device(s)");
  }
  return dev;
}

}  // namespace

char* make_error(const std::string& msg) {
  std::string m = msg.size() > kMaxErrorLen ? msg.substr(0, kMaxErrorLen) + "..." : msg;
  char* p = static_cast<char*>(std::malloc(m.size() + 1));
  if (p == nullptr) return nullptr;  // out of memory: nothing better to say
  std::memcpy(p, m.c_str(), m.size() + 1);
  return p;
}

std::string describe(const std::exception& e) {
  std::string msg;
  if (const auto* ce = dynamic_cast<const c10::Error*>(&e)) {
    msg = ce->what_without_backtrace();
  } else {
    msg = e.what();
  }
  return strip_traceback(trim_space(msg));
}

void check_arity(const ofa_module* m, int32_t n) {
  if (n >= m->min_inputs && n <= m->max_inputs) return;
  std::string names;
  for (const auto& a : m->arg_names) names += (names.empty() ? "" : ", ") + a;
  std::string want = m->min_inputs == m->max_inputs
                         ? std::to_string(m->max_inputs)
                         : std::to_string(m->min_inputs) + " to " + std::to_string(m->max_inputs);
  throw Failure("wrong number of inputs: forward takes " + want + " (" + names + "), got " + std::to_string(n));
}

std::vector<at::Tensor> call_forward(ofa_module* m, std::vector<at::Tensor> inputs) {
  std::vector<c10::IValue> args;
  args.reserve(inputs.size());
  for (at::Tensor& t : inputs) {
    // Floating inputs follow the parameters into the reduced precision; integer and bool inputs (token
    // ids, masks) are never converted.
    if (m->precision != at::ScalarType::Undefined && t.is_floating_point() && t.scalar_type() != m->precision) {
      t = t.to(m->precision);
    }
    args.emplace_back(std::move(t));
  }
  c10::IValue result;
  try {
    result = m->module.forward(std::move(args));
  } catch (const std::exception& e) {
    throw Failure("forward raised: " + describe(e));
  }
  std::vector<at::Tensor> outs;
  flatten(result, &outs);
  return outs;
}

// Runs m's forward on n inputs, input(i, name) building the i-th on m's device, and returns its outputs
// flattened, as contiguous host tensors (to_host). Sets InferenceMode and the module's stream for the
// call. Throws Failure for a wrong input count or an exception raised by forward, and other exceptions
// for bad inputs or outputs.
template <typename MakeInput>
std::vector<at::Tensor> run_forward(ofa_module* m, int32_t n, MakeInput input) {
  check_arity(m, n);
  c10::InferenceMode im;
  // Goroutines move between OS threads: set the thread count, device and stream for this call, on this
  // thread.
  apply_thread_settings();
  std::optional<c10::StreamGuard> stream_guard;
  if (m->stream) stream_guard.emplace(*m->stream);
  std::vector<at::Tensor> inputs;
  inputs.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; i++) inputs.push_back(input(i, m->arg_names[static_cast<size_t>(i)]));
  std::vector<at::Tensor> outs = call_forward(m, std::move(inputs));
  to_host(&outs, m->precision);
  return outs;
}

void copy_into(std::vector<at::Tensor> res, int32_t n_out, ofa_tensor_desc* outs, void* const* out_data,
               ofa_forward_into_ret* ret) {
  ret->n = static_cast<int32_t>(res.size());
  bool fits = res.size() <= static_cast<size_t>(n_out);
  for (size_t i = 0; fits && i < res.size(); i++) {
    const at::Tensor& t = res[i];
    int64_t nbytes = static_cast<int64_t>(t.nbytes());
    fits = t.dim() <= OFA_INTO_MAX_DIMS && nbytes <= outs[i].nbytes && (nbytes == 0 || out_data[i] != nullptr);
  }
  if (!fits) {
    ret->result = make_result(std::move(res));
    return;
  }
  for (size_t i = 0; i < res.size(); i++) {
    const at::Tensor& t = res[i];
    ofa_tensor_desc& d = outs[i];
    d.dtype = from_scalar_type(t.scalar_type());
    c10::IntArrayRef sizes = t.sizes();
    d.ndim = static_cast<int32_t>(sizes.size());
    d.nbytes = static_cast<int64_t>(t.nbytes());
    for (int32_t k = 0; k < d.ndim; k++) d.shape[k] = sizes[static_cast<size_t>(k)];
    if (d.nbytes > 0) std::memcpy(out_data[i], t.data_ptr(), static_cast<size_t>(d.nbytes));
  }
}

}  // namespace ofa

extern "C" {

char* ofa_load(const char* path, const char* device, int32_t precision, ofa_module** out) {
  if (out == nullptr || path == nullptr) return ofa::make_error("ofa_load: NULL argument");
  *out = nullptr;
  std::string p(path);
  try {
    c10::InferenceMode im;
    ofa::apply_thread_settings();  // converting parameters runs parallel loops
    auto m = std::make_unique<ofa_module>();
    m->device = ofa::parse_device(device);
    if (precision != OFA_FLOAT32) {
      at::ScalarType st;
      if (precision != OFA_FLOAT16 && precision != OFA_BFLOAT16) {
        return ofa::make_error("precision must be float32, float16 or bfloat16, got dtype code " +
                               std::to_string(precision));
      }
      ofa::to_scalar_type(precision, &st);
      m->precision = st;
    }
    try {
      m->module = torch::jit::load(p, m->device);
    } catch (const std::exception& e) {
      std::string why = ofa::describe(e);
      if (ofa::contains(why, "PytorchStreamReader") || ofa::contains(why, "constants.pkl") ||
          ofa::contains(why, "archive")) {
        return ofa::make_error("load " + p + ": not a TorchScript file (" + why + ")");
      }
      return ofa::make_error("load " + p + ": " + why);
    }
    m->module.eval();
    if (m->precision != at::ScalarType::Undefined) ofa::to_precision(m->module, m->precision);
    ofa::read_schema(m.get());
    if (m->device.is_cuda()) {
      c10::impl::VirtualGuardImpl impl(c10::kCUDA);
      m->stream = impl.getStreamFromGlobalPool(m->device, /*isHighPriority=*/false);
    }
    *out = m.release();
    return nullptr;
  } catch (const std::exception& e) {
    return ofa::make_error("load " + p + ": " + ofa::describe(e));
  } catch (...) {
    return ofa::make_error("load " + p + ": unknown C++ exception");
  }
}

void ofa_unload(ofa_module* m) {
  try {
    delete m;
  } catch (...) {
  }
}

const char* ofa_module_schema(const ofa_module* m) { return m->schema.c_str(); }

void ofa_module_arity(const ofa_module* m, int32_t* min_inputs, int32_t* max_inputs) {
  *min_inputs = m->min_inputs;
  *max_inputs = m->max_inputs;
}

ofa_forward_ret ofa_forward(ofa_module* m, const ofa_tensor_in* inputs, int32_t n) {
  ofa_forward_ret ret{nullptr, nullptr};
  if (m == nullptr || (n > 0 && inputs == nullptr)) {
    ret.error = ofa::make_error("ofa_forward: NULL argument");
    return ret;
  }
  try {
    std::vector<at::Tensor> outs = ofa::run_forward(m, n, [&](int32_t i, const std::string& name) {
      const ofa_tensor_in& in = inputs[i];
      return ofa::input_tensor(in.dtype, in.ndim, in.shape, in.data, in.nbytes, i, name, m->device);
    });
    ret.result = ofa::make_result(std::move(outs));
  } catch (const ofa::Failure& e) {
    ret.error = ofa::make_error(e.what());
  } catch (const std::exception& e) {
    ret.error = ofa::make_error(ofa::describe(e));
  } catch (...) {
    ret.error = ofa::make_error("forward: unknown C++ exception");
  }
  return ret;
}

ofa_forward_into_ret ofa_forward_into(ofa_module* m, int32_t n_in, const ofa_tensor_desc* in, const void* in0,
                                      const void* in1, const void* in2, const void* in3, int32_t n_out,
                                      ofa_tensor_desc* outs, void* out0, void* out1, void* out2, void* out3) {
  ofa_forward_into_ret ret{0, nullptr, nullptr};
  if (m == nullptr || (n_in > 0 && in == nullptr) || (n_out > 0 && outs == nullptr)) {
    ret.error = ofa::make_error("ofa_forward_into: NULL argument");
    return ret;
  }
  if (n_in < 0 || n_in > OFA_INTO_MAX_TENSORS || n_out < 0 || n_out > OFA_INTO_MAX_TENSORS) {
    ret.error = ofa::make_error("ofa_forward_into: at most " + std::to_string(OFA_INTO_MAX_TENSORS) +
                                " inputs and output buffers (use ofa_forward), got " + std::to_string(n_in) +
                                " and " + std::to_string(n_out));
    return ret;
  }
  const void* const in_data[OFA_INTO_MAX_TENSORS] = {in0, in1, in2, in3};
  void* const out_data[OFA_INTO_MAX_TENSORS] = {out0, out1, out2, out3};
  try {
    std::vector<at::Tensor> res = ofa::run_forward(m, n_in, [&](int32_t i, const std::string& name) {
      const ofa_tensor_desc& d = in[i];
      if (d.ndim > OFA_INTO_MAX_DIMS) {  // the shape array holds no more
        throw std::invalid_argument("input " + std::to_string(i) + ": rank " + std::to_string(d.ndim) +
                                    " above " + std::to_string(OFA_INTO_MAX_DIMS) + " (use ofa_forward)");
      }
      return ofa::input_tensor(d.dtype, d.ndim, d.shape, in_data[i], d.nbytes, i, name, m->device);
    });
    ofa::copy_into(std::move(res), n_out, outs, out_data, &ret);
  } catch (const ofa::Failure& e) {
    ret.error = ofa::make_error(e.what());
  } catch (const std::exception& e) {
    ret.error = ofa::make_error(ofa::describe(e));
  } catch (...) {
    ret.error = ofa::make_error("forward: unknown C++ exception");
  }
  if (ret.error != nullptr) ret.n = 0;
  return ret;
}

}  // extern "C"
