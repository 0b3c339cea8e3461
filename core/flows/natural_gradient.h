// The closed-form kernel natural-gradient drifts of 000: KiNG (Thm 4.3, Eq. 9), where the drift is the
// gradient of an RKHS function of an RBF kernel k, and the scalar-kernel form of ntKiNG (Eq. 11 with the
// diagonal kernel of the Remark after it). Both solve
//   Gamma alpha = grad L,   Gamma = lambda F + G + ridge I,   F = Cov_q[T]
// and move particle x by h(x) = (1/n) sum_i [kernel term]_i J_i alpha, where J_i = dT/dx at particle i.
// Neither materialises anything of size n x n x b x b; the O(n^2) contractions behind G are blocked
// matrix products (Eigen GEMMs on our threads, so results do not depend on the thread count) in the
// requested precision, and the b x b solve is float64. How they are arranged and what they cost:
// docs/performance.md ("KiNG").
#ifndef SAMPLED_CORE_FLOWS_NATURAL_GRADIENT_H_
#define SAMPLED_CORE_FLOWS_NATURAL_GRADIENT_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "core/common/points.h"
#include "core/flows/sufficient_statistics.h"

namespace sampled {

// The precision of the KiNG family's contractions when a request gives none.
constexpr DType kDefaultNaturalGradientDType = DType::kFloat32;

struct NaturalGradientProblem {
  const Points* particles = nullptr;  // n x d
  const Points* stats = nullptr;      // T at the particles, n x b
  const Points* jacobian = nullptr;   // dT/dx at the particles, n x (d*b) (sufficient_statistics.h layout)
  const Eigen::VectorXd* grad = nullptr;  // grad L = E_p[T] - E_q[T], b
  double lambda = 1e-3;               // weight of the Fisher matrix
  double ridge = 1e-3;                // added to Gamma's diagonal
  int threads = 0;
  // Precision of the contractions behind G and F (the n^2 work); the solve and the velocity are float64.
  DType precision = DType::kFloat64;
  // When the statistics are RBF features (stats->rbf()), their basis and bandwidth: kPerParticle then forms
  // J_j^T v in O(b) instead of O(d b).
  std::optional<RbfStructure> rbf;
};

// The problem of one step at the particles y: T(y) and its Jacobian, grad L, and the solve's options (the
// arrays are referenced, not copied: they must outlive the problem).
inline NaturalGradientProblem MakeNaturalGradientProblem(const Points& y, const Points& stats, const Points& jacobian,
                                                         const Eigen::VectorXd& grad, double lambda, double ridge,
                                                         int threads, DType precision) {
  NaturalGradientProblem p;
  p.particles = &y;
  p.stats = &stats;
  p.jacobian = &jacobian;
  p.grad = &grad;
  p.lambda = lambda;
  p.ridge = ridge;
  p.threads = threads;
  p.precision = precision;
  return p;
}

// How KingVelocity arranges G's contractions (both give the same G up to rounding):
//   kCoordinatePairs: G = (1/n^2) sum_{a<=c} J_a^T W^{ac} J_c with the n x n matrices
//     W^{ac}_ij = H_ij[a, c]: d(d+1)/2 products of n x n x b (cheapest for small d);
//   kPerParticle: hj_i = sum_j H_ij J_j from K J and the t_ij = J_j^T (x_i - x_j), then G = J^T hj:
//     about 3d products of n x n x b (cheapest for large d);
//   kAuto: the one with fewer multiply-adds.
enum class KingContraction { kAuto, kCoordinatePairs, kPerParticle };

// Scratch the velocity functions keep from step to step, so that a flow's steps reuse their buffers
// (buffers of several MB each; fresh ones would cost page faults every step). Not thread-safe.
template <typename Scalar>
struct NaturalGradientScratch {
  PointsT<Scalar> y, yt, jac, jt, p, h, kernel, centred, products[2];
  std::vector<PointsT<Scalar>> m;         // kCoordinatePairs: W^{ac} J_c, one per pair a <= c
  std::vector<PointsT<Scalar>> partials;  // partial products over chunks of rows
  struct PerThread {
    PointsT<Scalar> k, q, kj, ykt, z;
    std::vector<PointsT<Scalar>> diff;
  };
  std::vector<PerThread> per_thread;
};
struct NaturalGradientWorkspace {
  NaturalGradientScratch<float> f32;
  NaturalGradientScratch<double> f64;
  MatrixXd g, gamma;
  // Where the last call's time went, in seconds (for the benchmark's breakdown).
  struct Timings {
    double gram = 0;    // the n^2 contractions behind G
    double fisher = 0;  // Cov_q[T]
    double solve = 0;   // the b x b factorisation and solve
    double drift = 0;   // the velocity from alpha
  } timings;
};

// KiNG (000 Eq. 9) with k(x, y) = exp(-|x - y|^2 / (2 sigma^2)): H_ij = grad_x grad_y k(x_i, x_j)
// = k (I / sigma^2 - (x_i - x_j)(x_i - x_j)^T / sigma^4), G = (1/n^2) sum_ij J_i^T H_ij J_j, and
// h(x_j) = (1/n) sum_i H_ij J_i alpha. FAILED_PRECONDITION when Gamma cannot be factorised.
absl::Status KingVelocity(const NaturalGradientProblem& problem, double sigma, NaturalGradientWorkspace& ws,
                          Points* velocity, KingContraction contraction = KingContraction::kAuto);

// ntKiNG with the diagonal scalar kernel K (n x n, symmetric PSD): G = (1/n^2) sum_ij K_ij J_i^T J_j and
// h(x_j) = (1/n) sum_i K_ij J_i alpha.
// The kernel comes in the problem's precision (float32 for DType::kFloat32, float64 otherwise); the
// MatrixXd form converts it.
absl::Status ScalarKernelVelocity(const NaturalGradientProblem& problem, const MatrixXd& kernel,
                                  NaturalGradientWorkspace& ws, Points* velocity);
absl::Status ScalarKernelVelocity(const NaturalGradientProblem& problem, const PointsF& kernel,
                                  NaturalGradientWorkspace& ws, Points* velocity);
absl::Status ScalarKernelVelocity(const NaturalGradientProblem& problem, const Points& kernel,
                                  NaturalGradientWorkspace& ws, Points* velocity);

// The unbiased covariance of the rows of t (b x b).
MatrixXd Covariance(const Points& t);

}  // namespace sampled

#endif  // SAMPLED_CORE_FLOWS_NATURAL_GRADIENT_H_
