// KiNG, ntKiNG and Stein KiNG: the statistics' Jacobians against finite differences, the closed-form drifts
// against a direct evaluation of 000 Eq. 9 / Eq. 11 (the full d x d kernel matrices), and small runs.
#include <cmath>
#include <map>
#include <memory>

#include <Eigen/Cholesky>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/rng.h"
#include "core/flows/flow.h"
#include "core/flows/flow_state.h"
#include "core/flows/king_common.h"
#include "core/flows/natural_gradient.h"
#include "core/flows/ntk_mlp.h"
#include "core/flows/options.h"
#include "core/flows/sufficient_statistics.h"
#include "core/metrics/distances.h"
#include "core/targets/empirical_target.h"
#include "core/targets/target_family.h"

namespace sampled {
namespace {

using ::testing::HasSubstr;

Points RandomPoints(int64_t n, int64_t d, uint64_t seed, double shift = 0, double scale = 1) {
  Rng rng(seed);
  Points p(n, d);
  rng.FillNormal(p.data(), p.size());
  return (scale * p).array() + shift;
}

void ExpectJacobianMatchesFiniteDifferences(const SufficientStatistics& t, const Points& x, double tol) {
  Points tv, jac;
  ASSERT_TRUE(t.Evaluate(x, &tv, &jac).ok());
  const int64_t d = x.cols(), b = t.size();
  ASSERT_EQ(tv.cols(), b);
  ASSERT_EQ(jac.cols(), d * b);
  const double h = 1e-6;
  for (int64_t a = 0; a < d; ++a) {
    Points xp = x, xm = x, tp, tm;
    xp.col(a).array() += h;
    xm.col(a).array() -= h;
    ASSERT_TRUE(t.Evaluate(xp, &tp, nullptr).ok());
    ASSERT_TRUE(t.Evaluate(xm, &tm, nullptr).ok());
    const Points fd = (tp - tm) / (2 * h);
    EXPECT_LT((jac.middleCols(a * b, b) - fd).cwiseAbs().maxCoeff(), tol) << "coordinate " << a;
  }
}

TEST(SufficientStatisticsTest, JacobiansMatchFiniteDifferences) {
  const Points x = RandomPoints(7, 3, 1);
  ExpectJacobianMatchesFiniteDifferences(*GaussianStatistics(3), x, 1e-7);
  EXPECT_EQ(GaussianStatistics(3)->size(), 3 + 6);
  ExpectJacobianMatchesFiniteDifferences(*RbfStatistics(RandomPoints(5, 3, 2), 0.8), x, 1e-7);
  ExpectJacobianMatchesFiniteDifferences(*PairStatistics(3, {{0, 1}, {2, 0}}), x, 1e-7);
  std::vector<std::unique_ptr<SufficientStatistics>> parts;
  parts.push_back(RbfStatistics(RandomPoints(4, 3, 3), 1.1));
  parts.push_back(PairStatistics(3, {{1, 2}}));
  auto both = ConcatStatistics(std::move(parts));
  EXPECT_EQ(both->size(), 5);
  ExpectJacobianMatchesFiniteDifferences(*both, x, 1e-7);
  std::shared_ptr<const Target> mix(*CreateAnalyticTarget("mixture", 2, {}));
  ExpectJacobianMatchesFiniteDifferences(*SteinStatistics(mix, RandomPoints(6, 2, 4), 0.9), RandomPoints(5, 2, 5), 1e-5);
}

// E_p[S_p f] = 0: the Stein statistics average to ~0 over exact samples (within 5 sigma/sqrt(n)).
TEST(SufficientStatisticsTest, SteinStatisticsHaveMeanZeroUnderTheTarget) {
  std::shared_ptr<const Target> g(*CreateAnalyticTarget("gaussian", 2, {}));
  Rng rng(6);
  Points x;
  ASSERT_TRUE(g->Sample(20000, rng, &x).ok());
  auto t = SteinStatistics(g, RandomPoints(4, 2, 7, 0.0, 0.5), 1.0);
  Points tv;
  ASSERT_TRUE(t->Evaluate(x, &tv, nullptr).ok());
  const Eigen::RowVectorXd mean = tv.colwise().mean();
  const Eigen::RowVectorXd sd = ((tv.rowwise() - mean).array().square().colwise().mean()).sqrt();
  for (int64_t m = 0; m < tv.cols(); ++m) EXPECT_NEAR(mean(m), 0.0, 5 * sd(m) / std::sqrt(20000.0));
}

// The Stein family's default test-function width grows with the dimension (king_common.cc): F = 0.025 d,
// at most KiNG's 0.5; KiNG's own features keep 0.5 in every dimension.
TEST(SufficientStatisticsTest, SteinDefaultFeatureBandwidthGrowsWithTheDimension) {
  const std::map<std::string, std::string> none;
  for (const auto& [d, rule] : std::vector<std::pair<int64_t, std::string>>{
           {1, "median-scaled:0.025"}, {2, "median-scaled:0.05"}, {10, "median-scaled:0.25"},
           {20, "median-scaled:0.5"}, {10000, "median-scaled:0.5"}}) {
    OptionReader stein(none, "stein-king");
    absl::StatusOr<KingStatsConfig> c = ReadKingStats(stein, d, /*stein=*/true, 50);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->feature_bandwidth.ToString(), rule) << "d = " << d;
    OptionReader king(none, "king");
    c = ReadKingStats(king, d, /*stein=*/false, 200);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->feature_bandwidth.ToString(), "median-scaled:0.5") << "d = " << d;
  }
}

TEST(SufficientStatisticsTest, PairsAreParsedAndChecked) {
  auto ok = ParsePairs("0-1, 2-5", 6);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), 2u);
  EXPECT_THAT(ParsePairs("0-6", 6).status().message(), HasSubstr("out of range"));
  EXPECT_THAT(ParsePairs("0-x", 6).status().message(), HasSubstr("is not I-J"));
  EXPECT_THAT(ParsePairs("3-3", 6).status().message(), HasSubstr("repeats"));
}

// Direct 000 Eq. 9: H_ij = k (I/s^2 - D D^T/s^4) as full d x d matrices, hj_i = sum_j H_ij J_j, etc.
Points DirectKing(const Points& y, const Points& t, const Points& jac, const Eigen::VectorXd& grad, double sigma,
                  double lambda, double ridge) {
  const int64_t n = y.rows(), d = y.cols(), b = t.cols();
  auto J = [&](int64_t i) {
    MatrixXd m(d, b);
    for (int64_t a = 0; a < d; ++a) m.row(a) = jac.row(i).segment(a * b, b);
    return m;
  };
  std::vector<MatrixXd> hj(n, MatrixXd::Zero(d, b));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const Eigen::VectorXd delta = (y.row(i) - y.row(j)).transpose();
      const double k = std::exp(-delta.squaredNorm() / (2 * sigma * sigma));
      const MatrixXd h = k * (MatrixXd::Identity(d, d) / (sigma * sigma) - delta * delta.transpose() / std::pow(sigma, 4));
      hj[i] += h * J(j);
    }
  }
  MatrixXd g = MatrixXd::Zero(b, b);
  for (int64_t i = 0; i < n; ++i) g += J(i).transpose() * hj[i];
  g /= double(n) * n;
  const Points centred = t.rowwise() - t.colwise().mean();
  MatrixXd gamma = lambda * centred.transpose() * centred / (n - 1.0) + g + ridge * MatrixXd::Identity(b, b);
  const Eigen::VectorXd alpha = gamma.ldlt().solve(grad);
  Points v(n, d);
  for (int64_t j = 0; j < n; ++j) v.row(j) = (hj[j] * alpha).transpose() / n;
  return v;
}

// RBF statistics of n particles and m targets in d dimensions, b basis points, and grad L.
struct KingCase {
  KingCase(int64_t n, int64_t m, int64_t d, int64_t b, double feature_sigma, uint64_t seed)
      : y(RandomPoints(n, d, seed)), x(RandomPoints(m, d, seed + 1, 1.0)),
        stats(RbfStatistics(RandomPoints(b, d, seed + 2), feature_sigma)) {
    EXPECT_TRUE(stats->Evaluate(y, &ty, &jy).ok());
    EXPECT_TRUE(stats->Evaluate(x, &tx, nullptr).ok());
    grad = (tx.colwise().mean() - ty.colwise().mean()).transpose();
  }
  Points y, x;
  std::unique_ptr<SufficientStatistics> stats;
  Points ty, jy, tx;
  Eigen::VectorXd grad;
};

TEST(NaturalGradientTest, KingVelocityIsEq9) {
  const KingCase k(12, 15, 3, 6, 1.2, 8);
  const Points &y = k.y, &ty = k.ty, &jy = k.jy;
  const Eigen::VectorXd& grad = k.grad;
  const auto& stats = k.stats;
  NaturalGradientProblem p = MakeNaturalGradientProblem(y, ty, jy, grad, 0.01, 1e-3, 2, DType::kFloat64);
  const Points expected = DirectKing(y, ty, jy, grad, 0.9, 0.01, 1e-3);
  const double scale = 1 + expected.cwiseAbs().maxCoeff();
  // Both arrangements of the contractions, in both precisions; one workspace reused across calls.
  NaturalGradientWorkspace ws;
  for (KingContraction c : {KingContraction::kCoordinatePairs, KingContraction::kPerParticle, KingContraction::kAuto}) {
    for (DType precision : {DType::kFloat64, DType::kFloat32}) {
      for (bool rbf : {false, true}) {  // the generic Jacobian, and the RBF structure
        p.precision = precision;
        p.rbf = rbf ? stats->rbf() : std::nullopt;
        Points v;
        ASSERT_TRUE(KingVelocity(p, 0.9, ws, &v, c).ok());
        const double tolerance = precision == DType::kFloat64 ? 1e-10 : 1e-4;
        EXPECT_LT((v - expected).cwiseAbs().maxCoeff(), tolerance * scale)
            << "contraction " << static_cast<int>(c) << ", " << DTypeName(precision) << ", rbf " << rbf;
      }
    }
  }
}

// Blocks of rows (32 per block) and threads must not change the result: more particles than a block, and
// one thread against two give the same velocity bit for bit.
TEST(NaturalGradientTest, KingVelocityDoesNotDependOnTheThreadCount) {
  const KingCase k(70, 40, 2, 9, 1.1, 21);
  const Points &y = k.y, &ty = k.ty, &jy = k.jy;
  const Eigen::VectorXd& grad = k.grad;
  NaturalGradientProblem p = MakeNaturalGradientProblem(y, ty, jy, grad, 1e-3, 1e-3, 1, DType::kFloat64);
  p.rbf = k.stats->rbf();
  for (KingContraction c : {KingContraction::kCoordinatePairs, KingContraction::kPerParticle}) {
    NaturalGradientWorkspace ws1, ws2;
    Points v1, v2;
    p.threads = 1;
    ASSERT_TRUE(KingVelocity(p, 0.8, ws1, &v1, c).ok());
    p.threads = 2;
    ASSERT_TRUE(KingVelocity(p, 0.8, ws2, &v2, c).ok());
    EXPECT_EQ(v1, v2) << "contraction " << static_cast<int>(c);
    const Points expected = DirectKing(y, ty, jy, grad, 0.8, 1e-3, 1e-3);
    EXPECT_LT((v1 - expected).cwiseAbs().maxCoeff(), 1e-10 * (1 + expected.cwiseAbs().maxCoeff()));
  }
}

TEST(NaturalGradientTest, ScalarKernelVelocityIsEq11WithADiagonalKernel) {
  const Points y = RandomPoints(10, 2, 11);
  auto stats = GaussianStatistics(2);
  Points ty, jy;
  ASSERT_TRUE(stats->Evaluate(y, &ty, &jy).ok());
  const Eigen::VectorXd grad = Eigen::VectorXd::LinSpaced(stats->size(), -1, 1);
  MatrixXd k(10, 10);
  for (int i = 0; i < 10; ++i)
    for (int j = 0; j < 10; ++j) k(i, j) = std::exp(-(y.row(i) - y.row(j)).squaredNorm());
  NaturalGradientProblem p;
  p.particles = &y;
  p.stats = &ty;
  p.jacobian = &jy;
  p.grad = &grad;
  Points v;
  NaturalGradientWorkspace ws;
  ASSERT_TRUE(ScalarKernelVelocity(p, k, ws, &v).ok());
  // Direct: G = (1/n^2) sum_ij k_ij J_i^T J_j, h_j = (1/n) sum_i k_ij J_i alpha.
  const int64_t b = stats->size();
  auto J = [&](int64_t i) {
    MatrixXd m(2, b);
    for (int a = 0; a < 2; ++a) m.row(a) = jy.row(i).segment(a * b, b);
    return m;
  };
  MatrixXd g = MatrixXd::Zero(b, b);
  for (int i = 0; i < 10; ++i)
    for (int j = 0; j < 10; ++j) g += k(i, j) * J(i).transpose() * J(j);
  g /= 100;
  const Points centred = ty.rowwise() - ty.colwise().mean();
  MatrixXd gamma = 1e-3 * centred.transpose() * centred / 9.0 + g + 1e-3 * MatrixXd::Identity(b, b);
  const Eigen::VectorXd alpha = gamma.ldlt().solve(grad);
  for (int j = 0; j < 10; ++j) {
    Eigen::VectorXd h = Eigen::VectorXd::Zero(2);
    for (int i = 0; i < 10; ++i) h += k(i, j) * J(i) * alpha;
    EXPECT_LT((v.row(j).transpose() - h / 10).cwiseAbs().maxCoeff(), 1e-9);
  }
}

// The NTK is the Gram matrix of the parameter gradients in the NTK parameterisation: central differences
// of the output over every weight (whose gradient carries the layer's 1/sqrt(fan_in)) and bias.
TEST(NtkMlpTest, KernelIsTheGramOfParameterGradients) {
  const NtkMlp mlp(2, {5, 4}, Activation::kTanh, 3);
  const Points x = RandomPoints(3, 2, 12);
  const MatrixXd k = mlp.Kernel(x);
  std::vector<Eigen::VectorXd> grads(3, Eigen::VectorXd::Zero(mlp.parameter_count()));
  int64_t index = 0;
  const double h = 1e-6;
  auto perturbed = [&](int layer, int row, int col, bool bias, double delta) {
    auto w = mlp.weights();
    auto b = mlp.biases();
    if (bias) {
      b[layer](row) += delta;
    } else {
      w[layer](row, col) += delta;
    }
    return mlp.WithParameters(w, b).Output(x);
  };
  for (size_t l = 0; l < mlp.weights().size(); ++l) {
    for (int r = 0; r < mlp.weights()[l].rows(); ++r) {
      for (int c = 0; c <= mlp.weights()[l].cols(); ++c) {  // the last column stands for the bias
        const bool bias = c == mlp.weights()[l].cols();
        // The stored weight is W / sqrt(fan_in): d f / d W = (d f / d stored) / sqrt(fan_in).
        const double fan_in = static_cast<double>(mlp.weights()[l].cols());
        const Eigen::VectorXd g = (perturbed(l, r, c, bias, h) - perturbed(l, r, c, bias, -h)) / (2 * h) /
                                  (bias ? 1.0 : std::sqrt(fan_in));
        for (int i = 0; i < 3; ++i) grads[i](index) = g(i);
        ++index;
      }
    }
  }
  ASSERT_EQ(index, mlp.parameter_count());
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_NEAR(k(i, j), grads[i].dot(grads[j]), 1e-6 * (1 + std::abs(k(i, j))));
}

std::shared_ptr<const Target> Data(const Points& x) { return std::shared_ptr<const Target>(*EmpiricalTarget::Create(x)); }

// KiNG with Gaussian statistics in 1-D moves N(0, 1) particles onto the data's N(3, 0.5^2) (000 Fig. 3, left).
TEST(KingFlowTest, GaussianStatisticsMatchMeanAndSpread) {
  FlowConfig c;
  c.method = "king";
  c.options = {{"stats", "gaussian"}};
  c.step_size = 0.5;
  auto flow = CreateFlow(c, Data(RandomPoints(800, 1, 13, 3.0, 0.5)));
  ASSERT_TRUE(flow.ok()) << flow.status();
  InitialParticles init;
  init.count = 300;
  auto state = MakeInitialState(init, 1, 14);
  ASSERT_TRUE(state.ok());
  StepStats stats;
  for (int i = 0; i < 200; ++i) ASSERT_TRUE((*flow)->Step(*state, &stats).ok());
  const double mean = state->particles.mean();
  const double sd = std::sqrt((state->particles.array() - mean).square().mean());
  EXPECT_NEAR(mean, 3.0, 0.1);
  EXPECT_NEAR(sd, 0.5, 0.1);
}

double Mmd(const Points& a, const Points& b) { return UnbiasedMmd2(a, b, MedianHeuristicBandwidth(a, b)); }

// On the 000 Sec. 5.1 mixture in 5-D (100 targets, 100 particles), 20 steps of KiNG and ntKiNG lower the MMD
// to fresh target samples well below its starting value.
TEST(KingFlowTest, KingAndNtKingReduceMmdOnTheBimodalMixture) {
  auto mixture = CreateAnalyticTarget("mixture", 5, {{"means", [] {
                                                       std::vector<double> m(10, -2.0);
                                                       for (int i = 5; i < 10; ++i) m[i] = 2.0;
                                                       return m;
                                                     }()},
                                                     {"std", {1.0}}});
  ASSERT_TRUE(mixture.ok());
  Rng rng(15);
  Points data, fresh;
  ASSERT_TRUE((*mixture)->Sample(100, rng, &data).ok());
  ASSERT_TRUE((*mixture)->Sample(1000, rng, &fresh).ok());
  for (const char* method : {"king", "ntking"}) {
    FlowConfig c;
    c.method = method;
    auto flow = CreateFlow(c, Data(data));
    ASSERT_TRUE(flow.ok()) << flow.status();
    InitialParticles init;
    init.count = 100;
    auto state = MakeInitialState(init, 5, 16);
    ASSERT_TRUE(state.ok());
    ASSERT_TRUE((*flow)->CheckState(*state).ok());
    const double start = Mmd(state->particles, fresh);
    StepStats stats;
    for (int i = 0; i < 20; ++i) ASSERT_TRUE((*flow)->Step(*state, &stats).ok()) << method;
    EXPECT_LT(Mmd(state->particles, fresh), 0.5 * start) << method;
  }
}

TEST(SteinKingFlowTest, MovesParticlesOntoADensity) {
  std::shared_ptr<const Target> g(*CreateAnalyticTarget("gaussian", 2, {{"mean", {2, -1}}, {"std", {0.7}}}));
  FlowConfig c;
  c.method = "stein-king";
  c.step_size = 0.5;
  auto flow = CreateFlow(c, g);
  ASSERT_TRUE(flow.ok()) << flow.status();
  InitialParticles init;
  init.count = 200;
  auto state = MakeInitialState(init, 2, 17);
  ASSERT_TRUE(state.ok());
  StepStats stats;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE((*flow)->Step(*state, &stats).ok());
  const Eigen::RowVectorXd mean = state->particles.colwise().mean();
  EXPECT_NEAR(mean(0), 2.0, 0.2);
  EXPECT_NEAR(mean(1), -1.0, 0.2);
}

TEST(KingFlowTest, BadOptionsNameTheParameter) {
  auto data = Data(RandomPoints(50, 4, 18));
  std::shared_ptr<const Target> g(*CreateAnalyticTarget("gaussian", 4, {}));
  FlowConfig c;
  c.method = "king";
  c.options = {{"stats", "gaussian"}, {"basis", "10"}};
  EXPECT_THAT(CreateFlow(c, data).status().message(), HasSubstr("option 'basis': does not apply to stats=gaussian"));
  c.options = {{"stats", "rbf+pairs"}, {"pairs", "0-4"}};
  EXPECT_THAT(CreateFlow(c, data).status().message(), HasSubstr("out of range"));
  c.options = {{"stats", "rbf+pairs"}};
  EXPECT_THAT(CreateFlow(c, data).status().message(), HasSubstr("needs pairs"));
  c.options = {{"pairs", "0-1"}};
  EXPECT_THAT(CreateFlow(c, data).status().message(), HasSubstr("applies only to stats=rbf+pairs"));
  c.options = {{"basis", "200"}};
  auto flow = CreateFlow(c, data);
  ASSERT_TRUE(flow.ok());
  FlowState state;
  state.particles = RandomPoints(100, 4, 19);
  const absl::Status big = (*flow)->CheckState(state);
  EXPECT_EQ(big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(big.message(), HasSubstr("option 'basis' (200) exceeds the 150 points"));
  c.options = {{"basis", "-1"}};
  EXPECT_THAT(CreateFlow(c, data).status().message(), HasSubstr("option 'basis'"));
  c.options = {{"lambda", "-1"}};
  EXPECT_THAT(CreateFlow(c, data).status().message(), HasSubstr("option 'lambda'"));
  c.options = {};
  EXPECT_EQ(CreateFlow(c, g).status().code(), absl::StatusCode::kFailedPrecondition);
  c.method = "stein-king";
  EXPECT_EQ(CreateFlow(c, data).status().code(), absl::StatusCode::kFailedPrecondition);
  c.options = {{"stats", "rbf"}};
  EXPECT_THAT(CreateFlow(c, g).status().message(), HasSubstr("has no option 'stats'"));
  c.method = "ntking";
  c.options = {{"hidden", "64,x"}};
  EXPECT_THAT(CreateFlow(c, data).status().message(), HasSubstr("option 'hidden'"));
  c.options = {{"activation", "sigmoid"}};
  EXPECT_THAT(CreateFlow(c, data).status().message(), HasSubstr("option 'activation'"));
  c.options = {};
  c.batch_size = 10;
  EXPECT_THAT(CreateFlow(c, data).status().message(), HasSubstr("does not use 'batch_size'"));
  c.batch_size.reset();
  c.median_pairs = -1;
  EXPECT_THAT(CreateFlow(c, data).status().message(), HasSubstr("median_pairs must be in [0,"));
}

}  // namespace
}  // namespace sampled
