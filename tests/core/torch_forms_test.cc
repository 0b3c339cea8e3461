#include <cmath>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/rng.h"
#include "core/targets/empirical_target.h"
#include "core/targets/target_family.h"
#include "core/targets/torch_density.h"
#include "core/training/target_terms.h"

namespace sampled {
namespace {

using ::testing::HasSubstr;

Points RandomPoints(int64_t n, int64_t d, uint64_t seed, double scale) {
  Rng rng(seed);
  Points p(n, d);
  rng.FillNormal(p.data(), p.size());
  return p * scale;
}

class TorchFormsTest : public ::testing::TestWithParam<std::string> {};

// The autograd form is the family's density: its score is the family's score, its log-density the family's
// up to a constant; and the Fisher terms match central differences of the score and of 1/2|s|^2 + div s.
TEST_P(TorchFormsTest, MatchesTheFamilyAndFiniteDifferences) {
  const std::string family = GetParam();
  auto target = CreateAnalyticTarget(family, 2, {});
  ASSERT_TRUE(target.ok()) << target.status();
  auto density = (*target)->torch_log_density();
  ASSERT_TRUE(density.ok()) << density.status();
  // Points where every family is smooth (away from the donut's centre).
  Points x = RandomPoints(40, 2, 3, 1.5);
  x.col(0).array() += 0.7;
  training::FisherTargetTerms terms;
  ASSERT_TRUE(training::ComputeFisherTargetTerms(**density, x, &terms).ok());
  Points score;
  ASSERT_TRUE((*target)->Score(x, &score).ok());
  EXPECT_LT((terms.score - score).cwiseAbs().maxCoeff(), 1e-9 * (1 + score.cwiseAbs().maxCoeff())) << family;

  // Central differences: div s from the score, the gradient from F = 1/2|s|^2 + div s.
  const double h = 1e-5;
  auto fisher_at = [&](const Points& p) {
    training::FisherTargetTerms t;
    EXPECT_TRUE(training::ComputeFisherTargetTerms(**density, p, &t).ok());
    return Eigen::VectorXd(0.5 * t.score.rowwise().squaredNorm() + t.laplacian);
  };
  Eigen::VectorXd laplacian = Eigen::VectorXd::Zero(x.rows());
  Points gradient(x.rows(), 2);
  for (int c = 0; c < 2; ++c) {
    Points plus = x, minus = x;
    plus.col(c).array() += h;
    minus.col(c).array() -= h;
    Points sp, sm;
    ASSERT_TRUE((*target)->Score(plus, &sp).ok());
    ASSERT_TRUE((*target)->Score(minus, &sm).ok());
    laplacian += (sp.col(c) - sm.col(c)) / (2 * h);
    gradient.col(c) = (fisher_at(plus) - fisher_at(minus)) / (2 * h);
  }
  EXPECT_LT((terms.laplacian - laplacian).cwiseAbs().maxCoeff(), 1e-5 * (1 + laplacian.cwiseAbs().maxCoeff()))
      << family;
  EXPECT_LT((terms.gradient - gradient).cwiseAbs().maxCoeff(), 1e-5 * (1 + gradient.cwiseAbs().maxCoeff()))
      << family;

  // log q up to a constant.
  Eigen::VectorXd ours;
  ASSERT_TRUE((*target)->LogDensity(x, &ours).ok());
  at::Tensor tx = at::from_blob(x.data(), {x.rows(), 2}, at::kDouble).clone();
  const at::Tensor lq = (**density)(tx);
  for (int64_t i = 1; i < x.rows(); ++i) {
    EXPECT_NEAR(lq[i].item<double>() - lq[0].item<double>(), ours(i) - ours(0), 1e-9 * (1 + std::abs(ours(i))))
        << family;
  }
}

INSTANTIATE_TEST_SUITE_P(EveryFamily, TorchFormsTest,
                         ::testing::Values("gaussian", "mixture", "rosenbrock", "donut", "funnel", "squiggle"));

TEST(TorchFormsTest, SampleTargetsHaveNone) {
  auto data = EmpiricalTarget::Create(RandomPoints(10, 2, 1, 1.0));
  ASSERT_TRUE(data.ok());
  auto density = (*data)->torch_log_density();
  EXPECT_EQ(density.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(density.status().message(), HasSubstr("defined by samples"));
}

TEST(TorchFormsTest, TorchCallTurnsExceptionsIntoStatuses) {
  const absl::Status s = TorchCall([] {
    at::ones({2, 3}).matmul(at::ones({2, 3}));  // shapes do not match
    return absl::OkStatus();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_FALSE(s.message().empty());
  EXPECT_EQ(TorchCall([] { return absl::OkStatus(); }, true).code(), absl::StatusCode::kOk);
}

}  // namespace
}  // namespace sampled
