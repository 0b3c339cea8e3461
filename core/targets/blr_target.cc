// The "blr" family: a Bayesian logistic-regression posterior over a data target (blr_target.h).
#include "core/targets/blr_target.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/targets/params.h"

namespace sampled {
namespace {

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
    const BlrModel::Batch b = BatchAt(x);
    out->resize(x.rows());
    for (int64_t i = 0; i < x.rows(); ++i) {
      const Eigen::VectorXd w = x.row(i).head(p).transpose();
      const double a = std::exp(x(i, p));
      const Eigen::ArrayXd t = b.x * w;
      const Eigen::ArrayXd sigma = (1.0 + (-t).exp()).inverse();
      const Eigen::ArrayXd c = sigma * (1.0 - sigma);
      MatrixXd& h = (*out)[i];
      h.setZero(p + 1, p + 1);
      h.topLeftCorner(p, p) = -b.scale * (b.x.transpose() * (b.x.array().colwise() * c).matrix());
      h.topLeftCorner(p, p).diagonal().array() -= a;
      h.col(p).head(p) = -a * w;
      h.row(p).head(p) = -a * w.transpose();
      h(p, p) = -a * (0.5 * w.squaredNorm() + m_->prior_rate);
    }
    return absl::OkStatus();
  }

  // With sigma_i = sigmoid(t_i), c_i = sigma_i (1 - sigma_i), c'_i = c_i (1 - 2 sigma_i), a = e^s, H the
  // Hessian (ScoreJacobian):
  //   div s = tr H = -scale sum_i c_i |x_i|^2 - a p - a (|w|^2 / 2 + b0)
  //   grad [1/2 |s|^2 + div s] = H s + grad tr H,
  //   grad_w tr H = -scale sum_i c'_i |x_i|^2 x_i - a w,  d/ds tr H = -a p - a (|w|^2 / 2 + b0).
  absl::Status FisherTerms(const Points& x, Points* score, VectorXd* laplacian, Points* gradient) const override {
    const int64_t p = m_->p();
    const BlrModel::Batch b = BatchAt(x);
    const Eigen::RowVectorXd norms = b.x.rowwise().squaredNorm().transpose();  // |x_i|^2
    score->resize(x.rows(), p + 1);
    laplacian->resize(x.rows());
    gradient->resize(x.rows(), p + 1);
    ForBlocks(x.rows(), b.x.rows(), [&](int64_t r0, int64_t rows) {
      const auto w = x.block(r0, 0, rows, p);
      const Eigen::ArrayXd a = x.col(p).segment(r0, rows).array().exp();
      const Eigen::ArrayXd prior = 0.5 * w.rowwise().squaredNorm().array() + m_->prior_rate;  // |w|^2/2 + b0
      const Eigen::ArrayXXd t = (w * b.x.transpose()).array();
      const Eigen::ArrayXXd sigma = (1.0 + (-t).exp()).inverse();
      const Eigen::ArrayXXd c = sigma * (1.0 - sigma);
      auto s = score->middleRows(r0, rows);
      s.leftCols(p) = b.scale * ((-sigma).rowwise() + b.y.array()).matrix() * b.x - (w.array().colwise() * a).matrix();
      s.col(p) = -a * prior + Prior();
      const Eigen::ArrayXd data_trace = b.scale * (c.rowwise() * norms.array()).rowwise().sum();
      laplacian->segment(r0, rows) = (-data_trace - a * static_cast<double>(p) - a * prior).matrix();
      // H s, with u = s_w and X_B u per point; then + grad tr H.
      const Points u = s.leftCols(p);
      const Eigen::ArrayXd us = s.col(p).array();
      const Eigen::ArrayXXd xu = (u * b.x.transpose()).array();
      const Eigen::ArrayXXd c1 = c * (1.0 - 2.0 * sigma);
      auto g = gradient->middleRows(r0, rows);
      g.leftCols(p) = -b.scale * (c * xu + (c1.rowwise() * norms.array())).matrix() * b.x -
                      (u.array().colwise() * a).matrix() - (w.array().colwise() * (a * us + a)).matrix();
      g.col(p) = -a * w.cwiseProduct(u).rowwise().sum().array() - a * prior * us - a * static_cast<double>(p) -
                 a * prior;
    });
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
  BlrModel::Batch BatchAt(const Points& theta) const { return m_->BatchAt(theta.data(), theta.size()); }

  // Calls fn(r0, rows) over blocks of the points, so that a [points x data rows] temporary stays below
  // kBlockValues values whatever the number of points.
  template <typename Fn>
  static void ForBlocks(int64_t points, int64_t data_rows, Fn&& fn) {
    constexpr int64_t kBlockValues = int64_t{1} << 21;
    const int64_t block = std::max<int64_t>(1, kBlockValues / std::max<int64_t>(1, data_rows));
    for (int64_t r0 = 0; r0 < points; r0 += block) fn(r0, std::min(block, points - r0));
  }

  // The likelihood's value (gradient false) or its w-gradient (true) at each point, vectorised over
  // T = W X_B^T, one product for a block of points and every data row.
  Terms Evaluate(const Points& x, bool gradient) const {
    const int64_t p = m_->p();
    const BlrModel::Batch b = BatchAt(x);
    Terms out;
    if (gradient) {
      out.grad_w.resize(x.rows(), p);
    } else {
      out.loglik.resize(x.rows());
    }
    ForBlocks(x.rows(), b.x.rows(), [&](int64_t r0, int64_t rows) {
      const Eigen::ArrayXXd t = (x.block(r0, 0, rows, p) * b.x.transpose()).array();
      if (gradient) {
        // y - sigmoid(t); 1 / (1 + e^{-t}) is 0, not NaN, where e^{-t} overflows.
        const Eigen::MatrixXd residual = (-(1.0 + (-t).exp()).inverse()).rowwise() + b.y.array();
        out.grad_w.middleRows(r0, rows) = b.scale * (residual * b.x);
      } else {
        // y t - log(1 + e^t), with log(1 + e^t) = max(t, 0) + log1p(e^{-|t|}).
        const Eigen::ArrayXXd softplus = t.max(0.0) + (-t.abs()).exp().log1p();
        out.loglik.segment(r0, rows) = b.scale * ((t.rowwise() * b.y.array()) - softplus).rowwise().sum().matrix();
      }
    });
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

BlrModel::Batch BlrModel::BatchAt(const double* x, int64_t values) const {
  const std::vector<int64_t> rows = BatchRows(x, values);
  if (rows.empty()) return {features, labels.transpose(), 1.0};
  Batch b{Points(rows.size(), p()), Eigen::RowVectorXd(rows.size()),
          static_cast<double>(n()) / static_cast<double>(rows.size())};
  for (size_t k = 0; k < rows.size(); ++k) {
    b.x.row(k) = features.row(rows[k]);
    b.y(k) = labels(rows[k]);
  }
  return b;
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
