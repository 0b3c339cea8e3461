// The "torchscript" family: a user's model, uploaded as a TorchScript archive (torchscript_target.h).
#include "core/targets/torchscript_target.h"

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <utility>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/autograd.h>
#include <torch/script.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "core/targets/torch_density.h"

namespace sampled {
namespace {

// Pure tensor and scalar operations: arithmetic, elementwise functions, reductions, shapes and indexing,
// comparisons, constants and branches. Not here, so refused: files, printing and logging, threads, random
// numbers (a density must be a function), in-place updates (a module must not change between evaluations),
// uninitialised memory (empty: it could show what the process held before), loops (LibTorch cannot
// interrupt an evaluation, and a loop's trip count is not known ahead: write the density vectorised), and
// anything a future LibTorch adds.
const std::set<std::string>& AllowedOps() {
  static const std::set<std::string> kOps = [] {
    std::set<std::string> s;
    for (const char* op :
         {"abs", "acos", "acosh", "add", "addmm", "all", "any", "arange", "asin", "asinh", "atan", "atan2", "atanh",
          "bmm", "cat", "ceil", "chunk", "clamp", "clamp_max", "clamp_min", "clone", "contiguous", "cos", "cosh",
          "cumsum", "detach", "diag", "diag_embed", "diagonal", "digamma", "dim", "div", "dot", "einsum", "elu",
          "eq", "erf", "erfc", "exp", "expand", "expand_as", "expm1", "eye", "flatten", "floor",
          "floor_divide", "fmod", "full", "full_like", "ge", "gelu", "gt", "index_select", "isfinite", "isnan",
          "le", "lgamma", "linalg_norm", "linspace", "log", "log10", "log1p", "log2", "log_softmax", "logaddexp",
          "logsumexp", "lt", "masked_fill", "matmul", "max", "maximum", "mean", "min", "minimum", "mm", "mul",
          "mv", "narrow", "ne", "neg", "norm", "numel", "ones", "ones_like", "permute", "pow", "prod",
          "reciprocal", "relu", "remainder", "repeat", "reshape", "round", "rsqrt", "rsub", "select", "sigmoid",
          "sign", "silu", "sin", "sinh", "size", "slice", "softmax", "softplus", "split", "sqrt", "square",
          "squeeze", "stack", "std", "sub", "sum", "t", "tan", "tanh", "tensor", "to", "transpose", "tril",
          "triu", "type_as", "unbind", "unsqueeze", "var", "view", "view_as", "where", "zeros", "zeros_like",
          // scalars, lists and strings (shape arithmetic, assertions' messages)
          "Bool", "Float", "Int", "ScalarImplicit", "__and__", "__getitem__", "__is__", "__isnot__", "__not__",
          "__or__", "append", "floordiv", "format", "item", "len", "list", "str"}) {
      s.insert(absl::StrCat("aten::", op));
    }
    for (const char* op : {"Constant", "GetAttr", "If", "ListConstruct", "ListUnpack", "NumToTensor",
                           "RaiseException", "TupleConstruct", "TupleIndex", "TupleUnpack", "Uninitialized",
                           "abs", "device", "dtype", "max", "min", "unchecked_cast", "requires_grad", "shape",
                           "layout"}) {
      s.insert(absl::StrCat("prim::", op));
    }
    return s;
  }();
  return kOps;
}

// Operations refused with a reason of their own (they are also outside the allowlist).
const std::map<std::string, std::string>& NamedRefusals() {
  static const std::map<std::string, std::string> kOps = {
      {"aten::from_file", "reads a file"},   {"aten::save", "writes a file"},
      {"aten::load", "reads a file"},        {"prim::Print", "prints"},
      {"aten::warn", "logs"},                {"prim::fork", "starts a task on another thread"},
      {"aten::wait", "waits on another thread"}, {"prim::PythonOp", "calls Python"},
      {"aten::rand", "draws random numbers"}, {"aten::randn", "draws random numbers"},
      {"aten::normal", "draws random numbers"}, {"aten::bernoulli", "draws random numbers"},
      {"prim::Loop", "loops (LibTorch cannot interrupt an evaluation; write the density vectorised)"},
      {"aten::empty", "returns uninitialised memory"}, {"aten::empty_like", "returns uninitialised memory"},
  };
  return kOps;
}

void CollectOps(const torch::jit::Block* block, std::set<std::string>* ops) {
  for (const torch::jit::Node* node : block->nodes()) {
    ops->insert(node->kind().toQualString());
    for (const torch::jit::Block* sub : node->blocks()) CollectOps(sub, ops);
  }
}

// The module and the lock its evaluations take; shared by the target and its autograd form.
struct Model {
  torch::jit::Module module;
  bool energy = false;
  std::mutex mu;

  // log q at x (any float dtype), differentiable when x requires grad.
  at::Tensor Forward(const at::Tensor& x) {
    std::lock_guard<std::mutex> lock(mu);
    const at::Tensor y = module.forward({x}).toTensor();
    return energy ? -y : y;
  }
};

class ModelDensity final : public TorchLogDensity {
 public:
  explicit ModelDensity(std::shared_ptr<Model> m) : m_(std::move(m)) {}
  at::Tensor operator()(const at::Tensor& x) const override {
    const at::Tensor y = m_->Forward(x);
    TORCH_CHECK(y.dim() == 1 && y.size(0) == x.size(0), "the model returned ", y.sizes(), " for ", x.size(0),
                " points; forward must map [n, d] to [n]");
    return y.to(at::kDouble);
  }

 private:
  std::shared_ptr<Model> m_;
};

at::Tensor View(const Points& x) {
  return at::from_blob(const_cast<double*>(x.data()), {x.rows(), x.cols()}, at::kDouble);
}

void CopyOut(const at::Tensor& t, double* dst) {
  const at::Tensor c = t.detach().to(at::kDouble).contiguous();
  std::copy(c.data_ptr<double>(), c.data_ptr<double>() + c.numel(), dst);
}

class TorchScriptTarget final : public Target {
 public:
  TorchScriptTarget(std::shared_ptr<Model> m, int64_t dim, int64_t bytes)
      : m_(std::move(m)), dim_(dim), bytes_(bytes),
        params_{{"energy", {m_->energy ? 1.0 : 0.0}}, {"model_bytes", {static_cast<double>(bytes)}}} {}

  int64_t dim() const override { return dim_; }
  const std::string& family() const override { return TorchScriptFamily().name; }
  const ParamMap& params() const override { return params_; }
  bool has_density() const override { return true; }
  int64_t bytes() const override { return bytes_; }

  absl::Status LogDensity(const Points& x, VectorXd* out) const override {
    return ModelCall([&] {
      torch::NoGradGuard no_grad;
      const at::Tensor y = m_->Forward(View(x));
      SAMPLED_RETURN_IF_ERROR(CheckOutput(y, x.rows()));
      out->resize(x.rows());
      CopyOut(y, out->data());
      return absl::OkStatus();
    });
  }

  absl::Status Score(const Points& x, Points* out) const override {
    return ModelCall([&] {
      torch::AutoGradMode grad(true);
      const at::Tensor t = View(x).clone().requires_grad_(true);
      const at::Tensor y = m_->Forward(t);
      SAMPLED_RETURN_IF_ERROR(CheckOutput(y, x.rows()));
      const at::Tensor s = torch::autograd::grad({y.sum()}, {t})[0];
      out->resize(x.rows(), x.cols());
      CopyOut(s, out->data());
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::shared_ptr<const TorchLogDensity>> torch_log_density() const override {
    return std::shared_ptr<const TorchLogDensity>(std::make_shared<ModelDensity>(m_));
  }

  // An error of the user's module is the module's, not the server's: INVALID_ARGUMENT saying so.
  static absl::Status ModelCall(const std::function<absl::Status()>& fn) {
    const absl::Status s = TorchCall(fn, /*invalid_argument=*/true);
    if (s.ok() || s.code() != absl::StatusCode::kInvalidArgument || absl::StartsWith(s.message(), "the model")) {
      return s;
    }
    return absl::InvalidArgumentError(absl::StrCat("the model failed: ", s.message()));
  }

  // The shape a module must return: [n].
  static absl::Status CheckOutput(const at::Tensor& y, int64_t n) {
    if (y.dim() != 1 || y.size(0) != n) {
      return absl::InvalidArgumentError(absl::StrCat("the model returned shape ", ShapeString(y),
                                                     " for ", n, " points; forward must map [n, d] to [n]"));
    }
    return absl::OkStatus();
  }

  static std::string ShapeString(const at::Tensor& t) {
    std::vector<std::string> dims;
    for (int64_t s : t.sizes()) dims.push_back(absl::StrCat(s));
    return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
  }

 private:
  std::shared_ptr<Model> m_;
  int64_t dim_, bytes_;
  ParamMap params_;
};

absl::Status PastDeadline(const TorchScriptSpec& spec, const char* stage) {
  if (absl::Now() <= spec.deadline) return absl::OkStatus();
  return absl::DeadlineExceededError(absl::StrCat("loading the model passed its deadline (", stage,
                                                  "); give a smaller model or raise --model-load-time"));
}

// The probes: float64 and float32 inputs of 5 seeded standard-normal points give a finite [5] and a
// finite score.
absl::Status Probe(Model& m, int64_t dim) {
  Rng rng(0x5eed);
  Points x(5, dim);
  rng.FillNormal(x.data(), x.size());
  for (const at::ScalarType type : {at::kDouble, at::kFloat}) {
    const char* name = type == at::kDouble ? "float64" : "float32";
    torch::AutoGradMode grad(true);
    const at::Tensor t = View(x).to(type).clone().requires_grad_(true);
    const c10::IValue out = [&] {
      std::lock_guard<std::mutex> lock(m.mu);
      return m.module.forward({t});
    }();
    if (!out.isTensor()) {
      return absl::InvalidArgumentError(absl::StrCat("the model's forward returned a ", out.tagKind(),
                                                     ", not a tensor; it must map [n, d] to [n]"));
    }
    const at::Tensor y = out.toTensor();
    SAMPLED_RETURN_IF_ERROR(TorchScriptTarget::CheckOutput(y, x.rows()));
    if (!at::isfinite(y).all().item<bool>()) {
      const at::Tensor v = y.detach().to(at::kDouble).contiguous();
      std::vector<std::string> values;
      for (int64_t i = 0; i < v.numel(); ++i) values.push_back(absl::StrCat(v.data_ptr<double>()[i]));
      return absl::InvalidArgumentError(absl::StrCat("the model's log density is not finite at the ", name,
                                                     " probe points (5 seeded draws of N(0, I_", dim,
                                                     ")): [", absl::StrJoin(values, ", "), "]"));
    }
    if (!y.requires_grad()) {
      return absl::InvalidArgumentError("the model's output does not depend on its input differentiably; "
                                        "scores come from autograd");
    }
    const at::Tensor s = torch::autograd::grad({y.sum()}, {t})[0];
    if (!at::isfinite(s).all().item<bool>()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the model's score (by autograd) is not finite at the ", name, " probe points"));
    }
  }
  return absl::OkStatus();
}

// LibTorch's loader runs a module's (or a scripted class's) __setstate__ while it unpickles the archive,
// before any graph can be checked: an archive whose code defines one is refused unread. The code travels
// as TorchScript source in the archive's code/ records, read here without executing anything.
absl::Status RefuseLoadTimeCode(const std::string& bytes) {
  return TorchCall(
      [&] {
        std::istringstream in{bytes};
        caffe2::serialize::PyTorchStreamReader reader(&in);
        for (const std::string& name : reader.getAllRecords()) {
          if (name.rfind("code/", 0) != 0 || !absl::EndsWith(name, ".py")) continue;
          auto [data, size] = reader.getRecord(name);
          const std::string_view code(static_cast<const char*>(data.get()), size);
          if (code.find("__setstate__") != std::string_view::npos) {
            return absl::InvalidArgumentError(absl::StrCat(
                "the archive's code (", name, ") defines __setstate__, which the loader would run before the "
                "module can be checked; a model target may not define one"));
          }
        }
        return absl::OkStatus();
      },
      /*invalid_argument=*/true);
}

absl::StatusOr<std::unique_ptr<Target>> Load(std::string_view bytes, const TorchScriptSpec& spec) {
  if (spec.dim < 1) return absl::InvalidArgumentError(absl::StrCat("dim must be >= 1, got ", spec.dim));
  const std::string archive(bytes);
  if (absl::Status s = RefuseLoadTimeCode(archive); !s.ok()) {
    if (absl::StartsWith(s.message(), "the archive's code")) return s;
    return absl::InvalidArgumentError(absl::StrCat(
        "the bytes are not a TorchScript archive (save one with torch.jit.save): ", s.message().substr(0, 300)));
  }
  auto model = std::make_shared<Model>();
  model->energy = spec.energy;
  {
    std::istringstream in{archive};
    absl::Status loaded = TorchCall(
        [&] {
          model->module = torch::jit::load(in, at::Device(at::kCPU));
          return absl::OkStatus();
        },
        /*invalid_argument=*/true);
    if (!loaded.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the bytes are not a TorchScript archive (save one with torch.jit.save): ",
                       loaded.message().substr(0, 300)));
    }
  }
  model->module.eval();
  SAMPLED_RETURN_IF_ERROR(PastDeadline(spec, "after parsing"));
  if (!model->module.find_method("forward")) {
    return absl::InvalidArgumentError("the module has no forward method");
  }
  std::set<std::string> ops;
  for (const torch::jit::Module& sub : model->module.modules()) {
    for (const torch::jit::Method& method : sub.get_methods()) {
      std::shared_ptr<torch::jit::Graph> g = method.graph()->copy();
      torch::jit::Inline(*g);  // called functions and submodules' methods become part of the graph
      CollectOps(g->block(), &ops);
    }
  }
  for (const std::string& op : ops) {
    if (auto it = NamedRefusals().find(op); it != NamedRefusals().end()) {
      return absl::InvalidArgumentError(absl::StrCat("the module calls ", op, ", which ", it->second,
                                                     "; a model target may use only pure tensor operations "
                                                     "(docs/torchscript.md)"));
    }
  }
  std::vector<std::string> refused;
  for (const std::string& op : ops) {
    if (AllowedOps().count(op) == 0) refused.push_back(op);
  }
  if (!refused.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the module uses operations outside the allowlist of pure "
                                                   "tensor operations: ", absl::StrJoin(refused, ", "),
                                                   " (docs/torchscript.md lists the allowed ones)"));
  }
  SAMPLED_RETURN_IF_ERROR(PastDeadline(spec, "after the op scan"));
  SAMPLED_RETURN_IF_ERROR(TorchCall([&] { return Probe(*model, spec.dim); }, /*invalid_argument=*/true));
  SAMPLED_RETURN_IF_ERROR(PastDeadline(spec, "after the probes"));
  return std::unique_ptr<Target>(
      std::make_unique<TorchScriptTarget>(std::move(model), spec.dim, static_cast<int64_t>(bytes.size())));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Target>> LoadTorchScriptTarget(std::string_view bytes, const TorchScriptSpec& spec) {
  try {
    return Load(bytes, spec);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory while loading the model");
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("the model could not be loaded: ", e.what()));
  }
}

const std::vector<std::string>& TorchScriptAllowedOps() {
  static const std::vector<std::string> kOps(AllowedOps().begin(), AllowedOps().end());
  return kOps;
}

const TargetFamily& TorchScriptFamily() {
  static const TargetFamily kFamily{
      "torchscript",
      "a user's model: a TorchScript module mapping x [n, d] to log q [n] (or an energy, log q = -E), uploaded "
      "with UploadModel (samplectl target upload-model); the server must run with --allow-torchscript",
      0,
      {},
      nullptr,
      nullptr,
      /*uploaded=*/true};
  return kFamily;
}

}  // namespace sampled
