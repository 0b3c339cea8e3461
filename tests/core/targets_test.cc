#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/rng.h"
#include "core/targets/empirical_target.h"
#include "core/targets/target_family.h"

namespace sampled {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<Target> Make(const std::string& family, int64_t dim = 0, const ParamMap& params = {}) {
  auto t = CreateAnalyticTarget(family, dim, params);
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

struct FamilyCase {
  std::string family;
  int64_t dim;
  ParamMap params;
};

void PrintTo(const FamilyCase& c, std::ostream* os) { *os << c.family << " dim " << c.dim; }

class ScoreTest : public ::testing::TestWithParam<FamilyCase> {};

// The exact score equals central finite differences of the log-density (step 1e-5; the truncation error
// is O(h^2 f''') and the round-off O(eps |f| / h), both well under 1e-5 relative at these points).
TEST_P(ScoreTest, MatchesFiniteDifferencesOfLogDensity) {
  const FamilyCase& c = GetParam();
  auto t = Make(c.family, c.dim, c.params);
  Rng rng(11);
  Points x(25, t->dim());
  rng.FillNormal(x.data(), x.size());
  x *= 1.5;
  Points score;
  ASSERT_TRUE(t->Score(x, &score).ok());
  const double h = 1e-5;
  for (int64_t k = 0; k < t->dim(); ++k) {
    Points xp = x, xm = x;
    xp.col(k).array() += h;
    xm.col(k).array() -= h;
    VectorXd lp, lm;
    ASSERT_TRUE(t->LogDensity(xp, &lp).ok());
    ASSERT_TRUE(t->LogDensity(xm, &lm).ok());
    for (int64_t i = 0; i < x.rows(); ++i) {
      const double fd = (lp(i) - lm(i)) / (2 * h);
      EXPECT_NEAR(score(i, k), fd, 1e-5 * (1 + std::abs(fd))) << c.family << " point " << i << " coord " << k;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Families, ScoreTest,
    ::testing::Values(FamilyCase{"gaussian", 2, {}}, FamilyCase{"gaussian", 3, {{"mean", {1, 2, 3}}, {"std", {0.5, 1, 2}}}},
                      FamilyCase{"mixture", 2, {}},
                      FamilyCase{"mixture", 3, {{"means", {0, 0, 0, 2, 2, 2, -1, 3, 0}}, {"weights", {1, 2, 3}}, {"std", {0.5, 1, 0.8}}}},
                      FamilyCase{"rosenbrock", 2, {}}, FamilyCase{"donut", 2, {}}, FamilyCase{"donut", 4, {{"radius", {3}}}},
                      FamilyCase{"funnel", 2, {}}, FamilyCase{"squiggle", 2, {}}),
    [](const auto& info) { return info.param.family + std::to_string(info.param.dim) + "_" + std::to_string(info.index); });

TEST(GaussianTargetTest, DefaultIsTheBenchmarkGaussianAndIsNormalised) {
  auto t = Make("gaussian");
  EXPECT_EQ(t->dim(), 2);
  // log N(mean; mean, cov) = -log(2 pi) - 1/2 log det cov, det cov = 1 / det precision = 1 / 2.75.
  Points x(1, 2);
  x << -1, 1;
  VectorXd lp;
  ASSERT_TRUE(t->LogDensity(x, &lp).ok());
  EXPECT_NEAR(lp(0), -std::log(2 * M_PI) + 0.5 * std::log(2.75), 1e-12);
  // Sample moments within 5 sigma/sqrt(n).
  Rng rng(1);
  Points s;
  ASSERT_TRUE(t->Sample(100000, rng, &s).ok());
  const Eigen::RowVector2d mean = s.colwise().mean();
  EXPECT_NEAR(mean(0), -1.0, 5 * std::sqrt(t->params().at("cov")[0] / 1e5));
  EXPECT_NEAR(mean(1), 1.0, 5 * std::sqrt(t->params().at("cov")[3] / 1e5));
}

TEST(MixtureTargetTest, GridOfTwentyFiveSamplesAllComponents) {
  std::vector<double> means;
  for (int i = -2; i <= 2; ++i)
    for (int j = -2; j <= 2; ++j) {
      means.push_back(2.0 * i);
      means.push_back(2.0 * j);
    }
  auto t = Make("mixture", 2, {{"means", means}, {"std", {0.3}}});
  Rng rng(2);
  Points s;
  ASSERT_TRUE(t->Sample(25000, rng, &s).ok());
  // Each component gets 1000 +- 5 sqrt(1000 * 24/25) points.
  std::vector<int> counts(25, 0);
  for (int64_t i = 0; i < s.rows(); ++i) {
    // Nearest grid mean (clamped: a draw 3.3 std beyond an outer mean rounds past the grid).
    const auto nearest = [](double v) { return std::clamp(static_cast<int>(std::lround(v / 2.0)), -2, 2) + 2; };
    ++counts[nearest(s(i, 0)) * 5 + nearest(s(i, 1))];
  }
  for (int c : counts) EXPECT_NEAR(c, 1000, 5 * std::sqrt(1000 * 24.0 / 25));
}

TEST(TargetFamilyTest, BadInputsAreRefusedWithTheirName) {
  EXPECT_THAT(CreateAnalyticTarget("banana", 2, {}).status().message(), HasSubstr("unknown target family 'banana'"));
  EXPECT_THAT(CreateAnalyticTarget("gaussian", 2, {{"meen", {0, 0}}}).status().message(), HasSubstr("'meen'"));
  EXPECT_THAT(CreateAnalyticTarget("gaussian", 2, {{"mean", {0, 0, 0}}}).status().message(),
              HasSubstr("parameter 'mean': expected 2 values, got 3"));
  EXPECT_THAT(CreateAnalyticTarget("gaussian", 2, {{"cov", {1, 2, 2, 1}}}).status().message(),
              HasSubstr("not positive definite"));
  EXPECT_THAT(CreateAnalyticTarget("mixture", 3, {}).status().message(), HasSubstr("'means': required at dim 3"));
  EXPECT_THAT(CreateAnalyticTarget("mixture", 2, {{"means", {0, 0, 1}}}).status().message(), HasSubstr("K*2"));
  EXPECT_THAT(CreateAnalyticTarget("funnel", 3, {}).status().message(), HasSubstr("2 dimensions"));
  EXPECT_THAT(CreateAnalyticTarget("donut", 2, {{"width", {-1}}}).status().message(), HasSubstr("must be > 0"));
  EXPECT_THAT(CreateAnalyticTarget("gaussian", 2, {{"mean", {NAN, 0}}}).status().message(), HasSubstr("not finite"));
  for (const auto& s : {CreateAnalyticTarget("banana", 2, {}).status(),
                        CreateAnalyticTarget("gaussian", 2, {{"meen", {0}}}).status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(EmpiricalTargetTest, RefusesNonFiniteAndEmpty) {
  Points p(3, 2);
  p << 0, 1, 2, NAN, 4, 5;
  auto t = EmpiricalTarget::Create(p);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("row 1, column 1"));
  EXPECT_FALSE(EmpiricalTarget::Create(Points(0, 2)).ok());
  p(1, 1) = 3;
  auto ok = EmpiricalTarget::Create(p);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)->bytes(), 48);
  EXPECT_FALSE((*ok)->has_density());
  Points s;
  EXPECT_EQ((*ok)->Score(p, &s).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace sampled
