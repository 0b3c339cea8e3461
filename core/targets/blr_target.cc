// The "blr" family: a Bayesian logistic-regression posterior over a data target (blr_target.h).
#include "core/targets/blr_target.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/targets/params.h"

namespace sampled {
namespace {

double Sigmoid(double t) {
  if (t >= 0) return 1.0 / (1.0 + std::exp(-t));
  const double e = std::exp(t);
  return e / (1.0 + e);
}

uint64_t HashBytes(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

class BlrTarget final : public Target {
 public:
  explicit BlrTarget(std::shared_ptr<const BlrModel> m) : m_(std::move(m)) {
    params_ = {{"prior_shape", {m_->prior_shape}},
               {"prior_rate", {m_->prior_rate}},
               {"batch", {static_cast<double>(m_->batch)}},
               {"data_rows", {static_cast<double>(m_->n())}},
               {"features", {static_cast<double>(m_->p())}}};
  }

  int64_t dim() const override { return m_->p() + 1; }
  const std::string& family() const override { return BlrFamily().name; }
  const ParamMap& params() const override { return params_; }
  bool has_density() const override { return true; }
  int64_t bytes() const override { return PointsBytes(m_->features) + m_->n() * 8; }

  absl::Status LogDensity(const Points& x, VectorXd* out) const override {
    const Terms t = Evaluate(x, /*gradient=*/false);
    const auto s = x.col(m_->p()).array();
    const auto w2 = x.leftCols(m_->p()).rowwise().squaredNorm().array();
    *out = t.loglik.array() - s.exp() * (0.5 * w2 + m_->prior_rate) + s * Prior();
    return absl::OkStatus();
  }

  // d/dw = scale X_B^T (y - sigmoid(X_B w)) - e^s w;  d/ds = -e^s (|w|^2 / 2 + b0) + p / 2 + a0.
  absl::Status Score(const Points& x, Points* out) const override {
    const Terms t = Evaluate(x, /*gradient=*/true);
    const int64_t p = m_->p();
    const auto s = x.col(p).array();
    out->resize(x.rows(), p + 1);
    out->leftCols(p) = t.grad_w - (x.leftCols(p).array().colwise() * s.exp()).matrix();
    out->col(p) = -s.exp() * (0.5 * x.leftCols(p).rowwise().squaredNorm().array() + m_->prior_rate) + Prior();
    return absl::OkStatus();
  }

  // d2/dw2 = -scale X_B^T diag(sigma (1 - sigma)) X_B - e^s I;  d2/dw ds = -e^s w;  d2/ds2 = -e^s (|w|^2/2 + b0).
  absl::Status ScoreJacobian(const Points& x, std::vector<MatrixXd>* out) const override {
    const int64_t p = m_->p();
    const std::vector<int64_t> rows = m_->BatchRows(x.data(), x.size());
    const Points xb = Rows(rows);
    const double scale = Scale(rows);
    out->resize(x.rows());
    for (int64_t i = 0; i < x.rows(); ++i) {
      const Eigen::VectorXd w = x.row(i).head(p).transpose();
      const double a = std::exp(x(i, p));
      const Eigen::ArrayXd t = xb * w;
      Eigen::ArrayXd c(t.size());
      for (int64_t k = 0; k < t.size(); ++k) c(k) = Sigmoid(t(k)) * (1.0 - Sigmoid(t(k)));
      MatrixXd& h = (*out)[i];
      h.setZero(p + 1, p + 1);
      h.topLeftCorner(p, p) = -scale * (xb.transpose() * (xb.array().colwise() * c).matrix());
      h.topLeftCorner(p, p).diagonal().array() -= a;
      h.col(p).head(p) = -a * w;
      h.row(p).head(p) = -a * w.transpose();
      h(p, p) = -a * (0.5 * w.squaredNorm() + m_->prior_rate);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::shared_ptr<const TorchLogDensity>> torch_log_density() const override {
    return BlrTorchLogDensity(m_);
  }

 private:
  struct Terms {
    VectorXd loglik;  // per point, scaled
    Points grad_w;    // per point, scaled (when asked for)
  };

  double Prior() const { return 0.5 * static_cast<double>(m_->p()) + m_->prior_shape; }
  double Scale(const std::vector<int64_t>& rows) const {
    return rows.empty() ? 1.0 : static_cast<double>(m_->n()) / static_cast<double>(rows.size());
  }
  Points Rows(const std::vector<int64_t>& rows) const {
    if (rows.empty()) return m_->features;
    Points out(rows.size(), m_->p());
    for (size_t k = 0; k < rows.size(); ++k) out.row(k) = m_->features.row(rows[k]);
    return out;
  }

  // The likelihood's value (gradient false) or its w-gradient (true) at each point, vectorised over
  // T = W X_B^T, one product for every point and data row.
  Terms Evaluate(const Points& x, bool gradient) const {
    const int64_t p = m_->p();
    const std::vector<int64_t> rows = m_->BatchRows(x.data(), x.size());
    const Points xb = Rows(rows);
    Eigen::RowVectorXd yb(xb.rows());
    for (int64_t k = 0; k < xb.rows(); ++k) yb(k) = m_->labels(rows.empty() ? k : rows[k]);
    const double scale = Scale(rows);
    const Eigen::ArrayXXd t = (x.leftCols(p) * xb.transpose()).array();
    Terms out;
    if (gradient) {
      // y - sigmoid(t); 1 / (1 + e^{-t}) is 0, not NaN, where e^{-t} overflows.
      const Eigen::MatrixXd residual = (-(1.0 + (-t).exp()).inverse()).rowwise() + yb.array();
      out.grad_w = scale * (residual * xb);
    } else {
      // y t - log(1 + e^t), with log(1 + e^t) = max(t, 0) + log1p(e^{-|t|}).
      const Eigen::ArrayXXd softplus = t.max(0.0) + (-t.abs()).exp().log1p();
      out.loglik = scale * ((t.rowwise() * yb.array()) - softplus).rowwise().sum().matrix();
    }
    return out;
  }

  std::shared_ptr<const BlrModel> m_;
  ParamMap params_;
};

absl::StatusOr<std::unique_ptr<Target>> CreateBlr(const Target& data, int64_t dim, const ParamMap& params) {
  ParamReader r(params, "blr");
  const Points* samples = data.samples();
  if (samples == nullptr) {
    return r.Error("data_target_id", "the data target must hold samples (an uploaded N x (p + 1) array: the "
                                     "features, then the 0/1 labels in the last column), not a density");
  }
  const int64_t n = samples->rows(), p = samples->cols() - 1;
  if (p < 1) {
    return r.Error("data_target_id", absl::StrCat("the data target has ", samples->cols(),
                                                  " column(s); it needs the features and then the labels (>= 2)"));
  }
  if (dim != 0 && dim != p + 1) {
    return r.Error("dim", absl::StrCat("the posterior over ", p, " features (plus log alpha) has dimension ", p + 1,
                                       ", not ", dim, "; give dim 0 or ", p + 1));
  }
  for (int64_t i = 0; i < n; ++i) {
    const double y = (*samples)(i, p);
    if (y != 0.0 && y != 1.0) {
      return r.Error("data_target_id", absl::StrCat("labels (the data target's last column, ", p + 1,
                                                    ") must be 0 or 1; row ", i, " holds ", y));
    }
  }
  auto model = std::make_shared<BlrModel>();
  SAMPLED_ASSIGN_OR_RETURN(model->prior_shape, r.Scalar("prior_shape", 1.0, /*positive=*/true));
  SAMPLED_ASSIGN_OR_RETURN(model->prior_rate, r.Scalar("prior_rate", 0.01, /*positive=*/true));
  SAMPLED_ASSIGN_OR_RETURN(double batch, r.Scalar("batch", 0.0));
  if (batch < 0 || batch != std::floor(batch)) {
    return r.Error("batch", absl::StrCat("must be a whole number >= 0 (0: every row), got ", batch));
  }
  SAMPLED_RETURN_IF_ERROR(r.Finish());
  model->features = samples->leftCols(p);
  model->labels = samples->col(p);
  model->batch = batch >= static_cast<double>(n) ? 0 : static_cast<int64_t>(batch);
  return std::unique_ptr<Target>(std::make_unique<BlrTarget>(std::move(model)));
}

}  // namespace

std::vector<int64_t> BlrModel::BatchRows(const double* x, int64_t values) const {
  if (batch <= 0 || batch >= n()) return {};
  Rng rng(HashBytes(x, static_cast<size_t>(values) * sizeof(double)));
  std::vector<int64_t> idx(n());
  std::iota(idx.begin(), idx.end(), 0);
  for (int64_t k = 0; k < batch; ++k) {  // partial Fisher-Yates
    const int64_t j = k + static_cast<int64_t>(rng.Uniform() * static_cast<double>(n() - k));
    std::swap(idx[k], idx[std::min(j, n() - 1)]);
  }
  idx.resize(batch);
  return idx;
}

const TargetFamily& BlrFamily() {
  static const TargetFamily kFamily{
      "blr",
      "Bayesian logistic-regression posterior (003 Sec. 4.2) over a data target (features, then 0/1 labels in the "
      "last column) in theta = (w, log alpha): w | alpha ~ N(0, I / alpha), alpha ~ Gamma(prior_shape, prior_rate); "
      "dim = features + 1; no intercept unless the features hold a ones column",
      0,
      {{"prior_shape", "Gamma shape a0 of the precision alpha; default 1"},
       {"prior_rate", "Gamma rate b0 of the precision alpha; default 0.01"},
       {"batch", "data rows per evaluation, likelihood scaled by N / batch; default 0 (every row)"}},
      nullptr,
      CreateBlr};
  return kFamily;
}

}  // namespace sampled
