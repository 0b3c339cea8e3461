// The closed-form kernel natural-gradient drifts of 000: KiNG (Thm 4.3, Eq. 9), where the drift is the
// gradient of an RKHS function of an RBF kernel k, and the scalar-kernel form of ntKiNG (Eq. 11 with the
// diagonal kernel of the Remark after it). Both solve
//   Gamma alpha = grad L,   Gamma = lambda F + G + ridge I,   F = Cov_q[T]
// and move particle x by h(x) = (1/n) sum_i [kernel term]_i J_i alpha, where J_i = dT/dx at particle i.
// Neither materialises anything of size n x n x b x b.
#ifndef SAMPLED_CORE_FLOWS_NATURAL_GRADIENT_H_
#define SAMPLED_CORE_FLOWS_NATURAL_GRADIENT_H_

#include "absl/status/status.h"
#include "core/common/points.h"

namespace sampled {

struct NaturalGradientProblem {
  const Points* particles = nullptr;  // n x d
  const Points* stats = nullptr;      // T at the particles, n x b
  const Points* jacobian = nullptr;   // dT/dx at the particles, n x (d*b) (sufficient_statistics.h layout)
  const Eigen::VectorXd* grad = nullptr;  // grad L = E_p[T] - E_q[T], b
  double lambda = 1e-3;               // weight of the Fisher matrix
  double ridge = 1e-3;                // added to Gamma's diagonal
  int threads = 0;
};

// KiNG (000 Eq. 9) with k(x, y) = exp(-|x - y|^2 / (2 sigma^2)): H_ij = grad_x grad_y k(x_i, x_j)
// = k (I / sigma^2 - (x_i - x_j)(x_i - x_j)^T / sigma^4), G = (1/n^2) sum_ij J_i^T H_ij J_j, and
// h(x_j) = (1/n) sum_i H_ij J_i alpha. FAILED_PRECONDITION when Gamma cannot be factorised.
absl::Status KingVelocity(const NaturalGradientProblem& problem, double sigma, Points* velocity);

// ntKiNG with the diagonal scalar kernel K (n x n, symmetric PSD): G = (1/n^2) sum_ij K_ij J_i^T J_j and
// h(x_j) = (1/n) sum_i K_ij J_i alpha.
absl::Status ScalarKernelVelocity(const NaturalGradientProblem& problem, const MatrixXd& kernel, Points* velocity);

// The unbiased covariance of the rows of t (b x b).
MatrixXd Covariance(const Points& t);

}  // namespace sampled

#endif  // SAMPLED_CORE_FLOWS_NATURAL_GRADIENT_H_
