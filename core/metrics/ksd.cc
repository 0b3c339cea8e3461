// The "ksd" metric: kernel Stein discrepancy with the IMQ kernel (c = 1, beta = -1/2), reported as 003
// Table 1 does (the sgmcmcjax convention): sqrt(sum_{i,j} k_p(x_i, x_j)) / n = sqrt(V-statistic).
#include <cmath>
#include <vector>

#include "core/common/parallel.h"
#include "core/common/status_macros.h"
#include "core/metrics/distances.h"
#include "core/metrics/metric.h"

namespace sampled {
namespace {

constexpr int64_t kRowBlock = 64;

class Ksd final : public Metric {
 public:
  const std::string& name() const override {
    static const std::string kName = "ksd";
    return kName;
  }
  const std::string& description() const override {
    static const std::string kDoc =
        "kernel Stein discrepancy, IMQ kernel (c = 1, beta = -1/2), sqrt of the V-statistic as in 003 "
        "Table 1; needs a target with a score";
    return kDoc;
  }
  bool Supports(const Target& target) const override { return target.has_density(); }
  absl::StatusOr<double> Compute(const Points& samples, const Target& target,
                                 const MetricOptions& options) const override {
    SAMPLED_RETURN_IF_ERROR(CheckSamples(samples, target, 1));
    if (!target.has_density()) {
      return absl::FailedPreconditionError(
          "ksd needs a target with a score (a density target); use mmd, energy or cfd for sample targets");
    }
    Points scores;
    SAMPLED_RETURN_IF_ERROR(target.Score(samples, &scores));
    if (!scores.allFinite()) {
      return absl::InvalidArgumentError("the target's score is not finite at some samples");
    }
    const KsdValues v = ImqKernelSteinDiscrepancy(samples, scores, 1.0, -0.5, options.threads);
    return std::sqrt(std::max(0.0, v.v_statistic));
  }
};

}  // namespace

KsdValues ImqKernelSteinDiscrepancy(const Points& x, const Points& scores, double c, double beta,
                                    int threads) {
  const int64_t n = x.rows(), d = x.cols();
  const double c2 = c * c;
  const VectorXd xn = x.rowwise().squaredNorm();
  const VectorXd sx = (scores.array() * x.array()).rowwise().sum();  // s_j . x_j
  const int64_t blocks = (n + kRowBlock - 1) / kRowBlock;
  std::vector<double> total(blocks, 0.0), diagonal(blocks, 0.0);

  ParallelFor(n, kRowBlock, threads, [&](int64_t i0, int64_t i1, int) {
    const int64_t b = i1 - i0;
    const MatrixXd ss = scores.middleRows(i0, b) * scores.transpose();  // s_i . s_j
    const MatrixXd sx_ij = scores.middleRows(i0, b) * x.transpose();    // s_i . x_j
    const MatrixXd xs_ij = x.middleRows(i0, b) * scores.transpose();    // x_i . s_j
    const MatrixXd xx_ij = x.middleRows(i0, b) * x.transpose();         // x_i . x_j
    double t = 0, diag = 0;
    for (int64_t r = 0; r < b; ++r) {
      const int64_t i = i0 + r;
      const Eigen::ArrayXd d2 = (xn(i) + xn.array() - 2.0 * xx_ij.row(r).transpose().array()).max(0.0);
      const Eigen::ArrayXd base = c2 + d2;
      const Eigen::ArrayXd p0 = base.pow(beta), p1 = base.pow(beta - 1), p2 = base.pow(beta - 2);
      const Eigen::ArrayXd si_diff = sx(i) - sx_ij.row(r).transpose().array();   // s_i . (x_i - x_j)
      const Eigen::ArrayXd sj_diff = xs_ij.row(r).transpose().array() - sx.array();  // s_j . (x_i - x_j)
      const Eigen::ArrayXd k = ss.row(r).transpose().array() * p0 - 2.0 * beta * si_diff * p1 +
                               2.0 * beta * sj_diff * p1 - 2.0 * d * beta * p1 -
                               4.0 * beta * (beta - 1) * p2 * d2;
      t += k.sum();
      diag += k(i);
    }
    total[i0 / kRowBlock] = t;
    diagonal[i0 / kRowBlock] = diag;
  });
  double sum = 0, diag = 0;
  for (int64_t k = 0; k < blocks; ++k) {
    sum += total[k];
    diag += diagonal[k];
  }
  KsdValues v;
  v.v_statistic = sum / (static_cast<double>(n) * n);
  v.u_statistic = n > 1 ? (sum - diag) / (static_cast<double>(n) * (n - 1)) : 0.0;
  return v;
}

const Metric& KernelSteinDiscrepancyMetric() {
  static const Ksd kMetric;
  return kMetric;
}

}  // namespace sampled
