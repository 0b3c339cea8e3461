// The baseline flows against their formulas on small inputs, and the MCMC methods against exactness.
#include <cmath>
#include <memory>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/rng.h"
#include "core/flows/flow.h"
#include "core/flows/flow_state.h"
#include "core/targets/empirical_target.h"
#include "core/targets/target_family.h"

namespace sampled {
namespace {

Points RandomPoints(int64_t n, int64_t d, uint64_t seed, double shift = 0) {
  Rng rng(seed);
  Points p(n, d);
  rng.FillNormal(p.data(), p.size());
  return p.array() + shift;
}

std::shared_ptr<const Target> Data(const Points& x) { return std::shared_ptr<const Target>(*EmpiricalTarget::Create(x)); }

std::shared_ptr<const Target> StandardNormal(int d) {
  return std::shared_ptr<const Target>(
      *CreateAnalyticTarget("gaussian", d, {{"mean", std::vector<double>(d, 0.0)}, {"std", {1.0}}}));
}

// One step of `c` from particles y0; returns the new particles.
Points OneStep(const FlowConfig& c, std::shared_ptr<const Target> target, const Points& y0, StepStats* stats = nullptr) {
  auto flow = CreateFlow(c, std::move(target));
  EXPECT_TRUE(flow.ok()) << flow.status();
  FlowState state;
  state.particles = y0;
  StepStats s;
  EXPECT_TRUE((*flow)->Step(state, stats ? stats : &s).ok());
  return state.particles;
}

Eigen::RowVectorXd Unit(const Eigen::RowVectorXd& v) {
  const double n = v.norm();
  return n > 0 ? Eigen::RowVectorXd(v / n) : Eigen::RowVectorXd::Zero(v.size());
}

// factor (mean_k u(y_i - y_k) - mean_l u(y_i - x_l)) for every particle y_i, term by term.
Points MmdDirection(const Points& x, const Points& y, double factor) {
  Points dir = Points::Zero(y.rows(), y.cols());
  for (int64_t i = 0; i < y.rows(); ++i) {
    for (int64_t k = 0; k < y.rows(); ++k) dir.row(i) += factor / y.rows() * Unit(y.row(i) - y.row(k));
    for (int64_t l = 0; l < x.rows(); ++l) dir.row(i) -= factor / x.rows() * Unit(y.row(i) - x.row(l));
  }
  return dir;
}

// The default velocity: 000 App. E's N times the particle gradient of MMD^2,
// 2 (1/N sum_k u(y - y_k) - 1/M sum_l u(y - x_l)).
TEST(MmdFlowTest, DefaultStepIs000AppEVelocity) {
  const Points x = RandomPoints(9, 3, 1, 2.0), y0 = RandomPoints(7, 3, 2);
  FlowConfig c;
  c.method = "mmd";
  c.dtype = DType::kFloat64;
  c.step_size = 0.3;
  const Points y1 = OneStep(c, Data(x), y0);
  EXPECT_LT((y1 - (y0 + 0.3 * MmdDirection(x, y0, 2.0))).cwiseAbs().maxCoeff(), 1e-13);
  // The gradient form at N times the step size takes the same step.
  c.options = {{"velocity", "mmd2-gradient"}};
  c.step_size = 0.3 * 7;
  EXPECT_LT((OneStep(c, Data(x), y0) - y1).cwiseAbs().maxCoeff(), 1e-13);
  c.options = {{"velocity", "fast"}};
  EXPECT_EQ(CreateFlow(c, Data(x)).status().code(), absl::StatusCode::kInvalidArgument);
}

// velocity mmd2-gradient: minus the gradient of MMD^2 with the distance kernel, 2/N (mean_k u - mean_l u).
TEST(MmdFlowTest, StepIsMinusTheGradientOfMmdSquaredWithTheDistanceKernel) {
  const Points x = RandomPoints(9, 3, 1, 2.0), y0 = RandomPoints(7, 3, 2);
  FlowConfig c;
  c.method = "mmd";
  c.options = {{"velocity", "mmd2-gradient"}};
  c.dtype = DType::kFloat64;  // the formula to 1e-13; the float32 default is checked in FlowsTest
  c.step_size = 0.7;
  const Points y1 = OneStep(c, Data(x), y0);
  EXPECT_LT((y1 - (y0 + 0.7 * MmdDirection(x, y0, 2.0 / 7))).cwiseAbs().maxCoeff(), 1e-13);
  c.dtype = DType::kFloat32;
  EXPECT_LT((OneStep(c, Data(x), y0) - y1).cwiseAbs().maxCoeff(), 1e-5);
}

TEST(MmdGaussianFlowTest, StepIsEq51) {
  const Points x = RandomPoints(8, 2, 3, 1.0), y0 = RandomPoints(6, 2, 4);
  FlowConfig c;
  c.method = "mmd-gaussian";
  c.dtype = DType::kFloat64;  // the formula to 1e-13; the float32 default is checked in FlowsTest
  c.bandwidth = "0.9";
  c.step_size = 0.5;
  const Points y1 = OneStep(c, Data(x), y0);
  const double s2 = 0.81;
  for (int64_t j = 0; j < 6; ++j) {
    const Eigen::RowVectorXd z = y0.row(j);
    Eigen::RowVectorXd dz = Eigen::RowVectorXd::Zero(2);
    double wp = 0, wq = 0;
    for (int64_t i = 0; i < 8; ++i) {
      const double w = std::exp(-(z - x.row(i)).squaredNorm() / (2 * s2)) / (8 * s2);
      dz += w * x.row(i);
      wp += w;
    }
    for (int64_t k = 0; k < 6; ++k) {
      const double w = std::exp(-(z - y0.row(k)).squaredNorm() / (2 * s2)) / (6 * s2);
      dz -= w * y0.row(k);
      wq += w;
    }
    dz += (wq - wp) * z;
    EXPECT_LT((y1.row(j) - (y0.row(j) + 0.5 * dz)).cwiseAbs().maxCoeff(), 1e-13);
  }
}

// KDE score of a point set at z: (m(z) - z) / h^2, m the Gaussian-weighted mean.
Eigen::RowVectorXd KdeScore(const Eigen::RowVectorXd& z, const Points& p, double h) {
  Eigen::RowVectorXd num = Eigen::RowVectorXd::Zero(z.size());
  double den = 0;
  for (int64_t i = 0; i < p.rows(); ++i) {
    const double w = std::exp(-(z - p.row(i)).squaredNorm() / (2 * h * h));
    num += w * p.row(i);
    den += w;
  }
  return (num / den - z) / (h * h);
}

TEST(WgfFlowTest, DataAndDensityTargetsFollowTheKdeScoreDifference) {
  const Points x = RandomPoints(10, 2, 5, 1.0), y0 = RandomPoints(6, 2, 6);
  FlowConfig c;
  c.method = "wgf";
  c.dtype = DType::kFloat64;  // the formula to 1e-13; the float32 default is checked in FlowsTest
  c.bandwidth = "1.1";
  c.step_size = 0.3;
  const Points y1 = OneStep(c, Data(x), y0);
  auto normal = StandardNormal(2);
  const Points y2 = OneStep(c, normal, y0);
  for (int64_t j = 0; j < 6; ++j) {
    const Eigen::RowVectorXd q_score = KdeScore(y0.row(j), y0, 1.1);
    EXPECT_LT((y1.row(j) - (y0.row(j) + 0.3 * (KdeScore(y0.row(j), x, 1.1) - q_score))).cwiseAbs().maxCoeff(), 1e-12);
    EXPECT_LT((y2.row(j) - (y0.row(j) + 0.3 * (-y0.row(j) - q_score))).cwiseAbs().maxCoeff(), 1e-12);
  }
}

// MALA and HMC leave the target invariant: 4000 chains started from exact N(0, I_2) draws, with step sizes
// large enough that the unadjusted chain would be far off (ULA at eta = 0.5 has variance 1/(1 - 0.25) = 1.33),
// keep mean 0 and variance 1 within 5 sigma/sqrt(n), and accept a fraction of proposals in (0, 1).
void ExpectStillStandardNormal(const FlowConfig& c, int steps) {
  auto target = StandardNormal(2);
  auto flow = CreateFlow(c, target);
  ASSERT_TRUE(flow.ok()) << flow.status();
  FlowState state;
  state.rng = Rng(3);
  ASSERT_TRUE(target->Sample(4000, state.rng, &state.particles).ok());
  StepStats stats;
  double acceptance = 0;
  for (int i = 0; i < steps; ++i) {
    ASSERT_TRUE((*flow)->Step(state, &stats).ok());
    acceptance += stats.acceptance_rate / steps;
  }
  const double n = 4000;
  const Eigen::RowVectorXd mean = state.particles.colwise().mean();
  const Eigen::RowVectorXd var = (state.particles.rowwise() - mean).array().square().colwise().sum() / (n - 1);
  for (int k = 0; k < 2; ++k) {
    EXPECT_NEAR(mean(k), 0.0, 5 / std::sqrt(n)) << c.method;
    EXPECT_NEAR(var(k), 1.0, 5 * std::sqrt(2 / n)) << c.method;
  }
  EXPECT_GT(acceptance, 0.3) << c.method;
  EXPECT_LT(acceptance, 1.0) << c.method;
}

TEST(MalaFlowTest, LeavesTheTargetInvariant) {
  FlowConfig c;
  c.method = "mala";
  c.step_size = 0.5;
  ExpectStillStandardNormal(c, 30);
}

TEST(HmcFlowTest, LeavesTheTargetInvariantAndTakesItsOptions) {
  FlowConfig c;
  c.method = "hmc";
  c.step_size = 0.4;
  c.options = {{"leapfrog", "5"}, {"mass", "1.5"}};
  ExpectStillStandardNormal(c, 20);
  c.options = {{"leapfrog", "0"}};
  auto zero = CreateFlow(c, StandardNormal(2));
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(zero.status().message(), ::testing::HasSubstr("option 'leapfrog'"));
  c.options = {{"mass", "-1"}};
  EXPECT_THAT(CreateFlow(c, StandardNormal(2)).status().message(), ::testing::HasSubstr("option 'mass'"));
}

TEST(MalaFlowTest, MovesTowardTheTargetFromFarAway) {
  FlowConfig c;
  c.method = "mala";
  c.step_size = 0.05;
  auto target = StandardNormal(2);
  auto flow = CreateFlow(c, target);
  ASSERT_TRUE(flow.ok());
  InitialParticles init;
  init.count = 500;
  init.mean = {4.0};
  auto state = MakeInitialState(init, 2, 1);
  ASSERT_TRUE(state.ok());
  StepStats stats;
  for (int i = 0; i < 400; ++i) ASSERT_TRUE((*flow)->Step(*state, &stats).ok());
  EXPECT_LT(state->particles.colwise().mean().norm(), 0.3);
}

}  // namespace
}  // namespace sampled
