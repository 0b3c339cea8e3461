// The families' log-densities as LibTorch functions (torch_density.h), from the resolved parameters each
// family records (target_family.h): the same densities as the families' own files, for autograd.
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <c10/util/Exception.h>

#include "absl/strings/str_cat.h"
#include "core/targets/blr_target.h"
#include "core/targets/torch_density.h"

namespace sampled {
namespace {

using LogDensityFn = std::function<at::Tensor(const at::Tensor&)>;

class FunctionDensity final : public TorchLogDensity {
 public:
  explicit FunctionDensity(LogDensityFn f) : f_(std::move(f)) {}
  at::Tensor operator()(const at::Tensor& x) const override { return f_(x); }

 private:
  LogDensityFn f_;
};

at::Tensor Tensor(const std::vector<double>& v, std::vector<int64_t> shape) {
  return at::tensor(v, at::kDouble).reshape(shape).clone();
}

const std::vector<double>& Param(const ParamMap& p, const std::string& key) {
  static const std::vector<double> kEmpty;
  auto it = p.find(key);
  return it == p.end() ? kEmpty : it->second;
}

// log N(z; mean, cov) without the constant, for z [n, d], with the precision and log det of cov.
struct GaussianForm {
  at::Tensor mean, precision;
  double log_det = 0;
  GaussianForm(const std::vector<double>& mean_v, const std::vector<double>& cov_v, int64_t d) {
    mean = Tensor(mean_v, {d});
    const at::Tensor cov = Tensor(cov_v, {d, d});
    precision = at::linalg_inv(cov);
    log_det = at::logdet(cov).item<double>();
  }
  at::Tensor operator()(const at::Tensor& z) const {
    const at::Tensor c = z - mean;
    return -0.5 * (at::matmul(c, precision) * c).sum(1) - 0.5 * log_det;
  }
};

absl::StatusOr<LogDensityFn> FormOf(const std::string& family, int64_t d, const ParamMap& p) {
  if (family == "gaussian") {
    GaussianForm g(Param(p, "mean"), Param(p, "cov"), d);
    return LogDensityFn([g](const at::Tensor& x) { return g(x); });
  }
  if (family == "mixture") {
    const std::vector<double>& means = Param(p, "means");
    const std::vector<double>& weights = Param(p, "weights");
    const std::vector<double>& covs = Param(p, "cov");
    const int64_t k = static_cast<int64_t>(weights.size());
    std::vector<GaussianForm> parts;
    for (int64_t c = 0; c < k; ++c) {
      parts.emplace_back(std::vector<double>(means.begin() + c * d, means.begin() + (c + 1) * d),
                         std::vector<double>(covs.begin() + c * d * d, covs.begin() + (c + 1) * d * d), d);
    }
    std::vector<double> log_w;
    for (double w : weights) log_w.push_back(std::log(w));
    return LogDensityFn([parts, log_w](const at::Tensor& x) {
      std::vector<at::Tensor> terms;
      for (size_t c = 0; c < parts.size(); ++c) terms.push_back(parts[c](x) + log_w[c]);
      return at::logsumexp(at::stack(terms, 1), 1);
    });
  }
  if (family == "rosenbrock") {  // z = (-x0, -x1 - x0^2 - 1) ~ N(mean, cov)
    GaussianForm g(Param(p, "mean"), Param(p, "cov"), 2);
    return LogDensityFn([g](const at::Tensor& x) {
      const at::Tensor x0 = x.select(1, 0), x1 = x.select(1, 1);
      return g(at::stack({-x0, -x1 - x0 * x0 - 1.0}, 1));
    });
  }
  if (family == "squiggle") {  // z = (x0, x1 + sin(freq x0)) ~ N(mean, cov)
    GaussianForm g(Param(p, "mean"), Param(p, "cov"), 2);
    const double freq = Param(p, "freq").at(0);
    return LogDensityFn([g, freq](const at::Tensor& x) {
      const at::Tensor x0 = x.select(1, 0), x1 = x.select(1, 1);
      return g(at::stack({x0, x1 + at::sin(freq * x0)}, 1));
    });
  }
  if (family == "donut") {  // -(|x| - radius)^2 / width
    const double radius = Param(p, "radius").at(0), width = Param(p, "width").at(0);
    return LogDensityFn([radius, width](const at::Tensor& x) {
      const at::Tensor r = at::sqrt((x * x).sum(1));
      return -(r - radius) * (r - radius) / width;
    });
  }
  if (family == "funnel") {  // x1 ~ N(v_mean, v_std^2), x0 | x1 ~ N(x_mean, exp(x1))
    const double v_mean = Param(p, "v_mean").at(0), v_std = Param(p, "v_std").at(0);
    const double x_mean = Param(p, "x_mean").at(0);
    return LogDensityFn([v_mean, v_std, x_mean](const at::Tensor& x) {
      const at::Tensor u = x.select(1, 0) - x_mean, v = x.select(1, 1);
      return -0.5 * (v - v_mean) * (v - v_mean) / (v_std * v_std) - 0.5 * u * u * at::exp(-v) - 0.5 * v;
    });
  }
  return absl::FailedPreconditionError(
      absl::StrCat("target family '", family, "' has no autograd form of its density"));
}

// The BLR posterior (blr_target.h); the batch rows chosen from the bytes of the points, as the target's own
// evaluation chooses them.
class BlrDensity final : public TorchLogDensity {
 public:
  explicit BlrDensity(std::shared_ptr<const BlrModel> m) : m_(std::move(m)) {
    const int64_t n = m_->n(), p = m_->p();
    features_ = at::from_blob(const_cast<double*>(m_->features.data()), {n, p}, at::kDouble).clone();
    labels_ = at::from_blob(const_cast<double*>(m_->labels.data()), {n}, at::kDouble).clone();
  }

  at::Tensor operator()(const at::Tensor& x) const override {
    const int64_t p = m_->p();
    const at::Tensor xd = x.detach().to(at::kDouble).contiguous();
    at::Tensor xb = features_, yb = labels_;
    double scale = 1.0;
    if (m_->batch > 0) {  // the target's own batch of these points (a copy; the full data stays shared)
      const BlrModel::Batch b = m_->BatchAt(xd.data_ptr<double>(), xd.numel());
      xb = at::from_blob(const_cast<double*>(b.x.data()), {b.x.rows(), b.x.cols()}, at::kDouble).clone();
      yb = at::from_blob(const_cast<double*>(b.y.data()), {b.y.size()}, at::kDouble).clone();
      scale = b.scale;
    }
    const at::Tensor w = x.narrow(1, 0, p), s = x.select(1, p);
    const at::Tensor t = at::matmul(w, xb.t());
    const at::Tensor loglik = scale * (t * yb - at::softplus(t)).sum(1);
    return loglik - at::exp(s) * (0.5 * (w * w).sum(1) + m_->prior_rate) +
           s * (0.5 * static_cast<double>(p) + m_->prior_shape);
  }

 private:
  std::shared_ptr<const BlrModel> m_;
  at::Tensor features_, labels_;
};

}  // namespace

std::shared_ptr<const TorchLogDensity> BlrTorchLogDensity(std::shared_ptr<const BlrModel> model) {
  return std::make_shared<BlrDensity>(std::move(model));
}

absl::Status TorchCall(const std::function<absl::Status()>& fn, bool invalid_argument) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    return invalid_argument ? absl::InvalidArgumentError(message) : absl::InternalError(message);
  } catch (const std::exception& e) {
    return invalid_argument ? absl::InvalidArgumentError(e.what()) : absl::InternalError(e.what());
  }
}

absl::StatusOr<std::shared_ptr<const TorchLogDensity>> FamilyTorchLogDensity(const Target& target) {
  if (!target.has_density()) {
    return absl::FailedPreconditionError("this target is defined by samples: it has no log-density");
  }
  absl::StatusOr<LogDensityFn> fn = absl::InternalError("unset");
  absl::Status s = TorchCall([&] {
    fn = FormOf(target.family(), target.dim(), target.params());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!fn.ok()) return fn.status();
  return std::shared_ptr<const TorchLogDensity>(std::make_shared<FunctionDensity>(*std::move(fn)));
}

absl::StatusOr<std::shared_ptr<const TorchLogDensity>> Target::torch_log_density() const {
  return FamilyTorchLogDensity(*this);
}

}  // namespace sampled
