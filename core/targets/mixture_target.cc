// The "mixture" family: a finite Gaussian mixture sum_k w_k N(means_k, covs_k), any K and d.
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/targets/gaussian_component.h"
#include "core/targets/params.h"
#include "core/targets/target_family.h"

namespace sampled {
namespace {

class MixtureTarget final : public Target {
 public:
  MixtureTarget(VectorXd weights, std::vector<GaussianComponent> components, ParamMap params)
      : log_weights_(weights.array().log()),
        cumulative_(weights.size()),
        components_(std::move(components)),
        params_(std::move(params)) {
    double acc = 0;
    for (int64_t k = 0; k < weights.size(); ++k) cumulative_[k] = (acc += weights(k));
  }

  int64_t dim() const override { return components_[0].dim(); }
  const std::string& family() const override { return MixtureFamily().name; }
  const ParamMap& params() const override { return params_; }
  bool has_density() const override { return true; }

  absl::Status LogDensity(const Points& x, VectorXd* out) const override {
    MatrixXd logs = ComponentLogs(x);
    const VectorXd max = logs.rowwise().maxCoeff();
    *out = max.array() + (logs.colwise() - max).array().exp().rowwise().sum().log();
    return absl::OkStatus();
  }

  // grad log q = sum_k r_k(x) (-P_k (x - mu_k)) with responsibilities r_k from a max-shifted softmax.
  absl::Status Score(const Points& x, Points* out) const override {
    MatrixXd r = ComponentLogs(x);
    const VectorXd max = r.rowwise().maxCoeff();
    r = (r.colwise() - max).array().exp();
    r.array().colwise() /= r.rowwise().sum().array();
    out->setZero(x.rows(), x.cols());
    Points s;
    for (size_t k = 0; k < components_.size(); ++k) {
      components_[k].Score(x, &s);
      out->array() += s.array().colwise() * r.col(k).array();
    }
    return absl::OkStatus();
  }

  bool can_sample() const override { return true; }
  absl::Status Sample(int64_t n, Rng& rng, Points* out) const override {
    out->resize(n, dim());
    Points one;
    for (int64_t i = 0; i < n; ++i) {
      const double u = rng.Uniform() * cumulative_.back();
      size_t k = 0;
      while (k + 1 < cumulative_.size() && u > cumulative_[k]) ++k;
      components_[k].Sample(1, rng, &one);
      out->row(i) = one.row(0);
    }
    return absl::OkStatus();
  }

 private:
  // N x K matrix of log w_k + log N_k(x_i).
  MatrixXd ComponentLogs(const Points& x) const {
    MatrixXd logs(x.rows(), components_.size());
    VectorXd col;
    for (size_t k = 0; k < components_.size(); ++k) {
      components_[k].LogDensity(x, &col);
      logs.col(k) = col.array() + log_weights_(k);
    }
    return logs;
  }

  VectorXd log_weights_;
  std::vector<double> cumulative_;
  std::vector<GaussianComponent> components_;
  ParamMap params_;
};

absl::StatusOr<std::unique_ptr<Target>> CreateMixture(int64_t d, const ParamMap& params) {
  ParamReader r(params, "mixture");
  SAMPLED_ASSIGN_OR_RETURN(auto means_v, r.Get("means"));
  SAMPLED_ASSIGN_OR_RETURN(auto weights_v, r.Get("weights"));
  SAMPLED_ASSIGN_OR_RETURN(auto std_v, r.Get("std"));
  SAMPLED_ASSIGN_OR_RETURN(auto cov_v, r.Get("cov"));
  SAMPLED_RETURN_IF_ERROR(r.Finish());

  // Means: K x d. Default at d = 2: 003's MoG2, equal weights on N((-2, 2), 0.5 I) and N((2, -2), 0.5 I).
  std::vector<double> means;
  if (means_v.has_value()) {
    means = *means_v;
  } else if (d == 2) {
    means = {-2.0, 2.0, 2.0, -2.0};
  } else {
    return r.Error("means", absl::StrCat("required at dim ", d, " (K*d values, one mean per row)"));
  }
  if (means.empty() || means.size() % d != 0) {
    return r.Error("means", absl::StrCat("expected K*", d, " values, got ", means.size()));
  }
  const int64_t k_count = static_cast<int64_t>(means.size()) / d;

  VectorXd weights = VectorXd::Constant(k_count, 1.0 / k_count);
  if (weights_v.has_value()) {
    if (static_cast<int64_t>(weights_v->size()) != k_count) {
      return r.Error("weights", absl::StrCat("expected ", k_count, " values (one per component), got ",
                                             weights_v->size()));
    }
    weights = Eigen::Map<const VectorXd>(weights_v->data(), k_count);
    if ((weights.array() <= 0).any()) return r.Error("weights", "every weight must be > 0");
    weights /= weights.sum();
  }

  if (std_v.has_value() && cov_v.has_value()) return r.Error("std", "give at most one of std and cov");
  std::vector<MatrixXd> covs(k_count, 0.5 * MatrixXd::Identity(d, d));
  if (std_v.has_value()) {
    if (std_v->size() != 1 && static_cast<int64_t>(std_v->size()) != k_count) {
      return r.Error("std", absl::StrCat("expected 1 or ", k_count, " values, got ", std_v->size()));
    }
    for (int64_t k = 0; k < k_count; ++k) {
      const double s = (*std_v)[std_v->size() == 1 ? 0 : k];
      if (!(s > 0)) return r.Error("std", "must be > 0");
      covs[k] = s * s * MatrixXd::Identity(d, d);
    }
  } else if (cov_v.has_value()) {
    const size_t one = static_cast<size_t>(d * d);
    if (cov_v->size() != one && cov_v->size() != one * k_count) {
      return r.Error("cov", absl::StrCat("expected ", one, " (shared) or ", one * k_count,
                                         " (one per component) values, got ", cov_v->size()));
    }
    for (int64_t k = 0; k < k_count; ++k) {
      const double* src = cov_v->data() + (cov_v->size() == one ? 0 : k * one);
      covs[k] = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
          src, d, d);
    }
  }

  std::vector<GaussianComponent> components;
  ParamMap resolved;
  for (int64_t k = 0; k < k_count; ++k) {
    VectorXd mu = Eigen::Map<const VectorXd>(means.data() + k * d, d);
    auto g = GaussianComponent::FromCovariance(mu, covs[k]);
    if (!g.ok()) return r.Error("cov", absl::StrCat("component ", k, ": ", g.status().message()));
    components.push_back(*std::move(g));
    auto flat = FlattenMatrix(covs[k]);
    resolved["cov"].insert(resolved["cov"].end(), flat.begin(), flat.end());
  }
  resolved["means"] = means;
  resolved["weights"] = std::vector<double>(weights.data(), weights.data() + k_count);
  return std::make_unique<MixtureTarget>(weights, std::move(components), std::move(resolved));
}

}  // namespace

const TargetFamily& MixtureFamily() {
  static const TargetFamily kFamily{
      "mixture",
      "Gaussian mixture sum_k w_k N(mean_k, cov_k); at dim 2 the default is 003's MoG2",
      2,
      {{"means", "K*d values, one component mean per row; default (-2, 2), (2, -2) at dim 2"},
       {"weights", "K positive values, normalised to sum 1; default equal"},
       {"std", "1 or K values: isotropic component covariance std^2 I"},
       {"cov", "d*d values (shared) or K*d*d (one per component), row-major; default 0.5 I"}},
      CreateMixture};
  return kFamily;
}

}  // namespace sampled
