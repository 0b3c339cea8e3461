#include <cmath>
#include <numeric>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/rng.h"
#include "core/metrics/distances.h"
#include "core/metrics/metric.h"
#include "core/targets/empirical_target.h"
#include "core/targets/target_family.h"

namespace sampled {
namespace {

Points Normal(int64_t n, int64_t d, Rng& rng, double shift = 0.0, double scale = 1.0) {
  Points p(n, d);
  rng.FillNormal(p.data(), p.size());
  p = scale * p;
  p.col(0).array() += shift;
  return p;
}

struct MeanAndError {
  double mean, error;  // error: standard error of the mean over replicates
};

template <typename F>
MeanAndError Replicate(int replicates, F&& f) {
  std::vector<double> v(replicates);
  for (int r = 0; r < replicates; ++r) v[r] = f(r);
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / replicates;
  double var = 0;
  for (double x : v) var += (x - mean) * (x - mean);
  return {mean, std::sqrt(var / (replicates - 1) / replicates)};
}

// MMD^2 between N(0, I_d) and N(mu, I_d) with k = exp(-|x-y|^2 / (2 h^2)):
// E k(X, X') = (h^2 / (h^2 + 2))^{d/2}, E k(X, Y) = that times exp(-|mu|^2 / (2 (h^2 + 2))).
double ClosedFormMmd2(double mu_norm2, double h, int d) {
  const double a = std::pow(h * h / (h * h + 2), d / 2.0);
  return 2 * a * (1 - std::exp(-mu_norm2 / (2 * (h * h + 2))));
}

// The mean of 20 unbiased estimates (500 points each) is within 4 standard errors of the closed form.
TEST(MmdTest, UnbiasedEstimateMatchesClosedForm) {
  for (int d : {1, 2, 5}) {
    for (double shift : {0.0, 1.0}) {
      const double h = 1.3;
      Rng rng(d * 10 + static_cast<int>(shift));
      const MeanAndError e = Replicate(20, [&](int) {
        return UnbiasedMmd2(Normal(500, d, rng), Normal(500, d, rng, shift), h, 2);
      });
      EXPECT_NEAR(e.mean, ClosedFormMmd2(shift * shift, h, d), 4 * e.error) << "d=" << d << " shift=" << shift;
      EXPECT_LT(e.error, 0.01);
    }
  }
}

// E|W| for W ~ N(m, v).
double MeanAbsNormal(double m, double v) {
  const double s = std::sqrt(v);
  return s * std::sqrt(2 / M_PI) * std::exp(-m * m / (2 * v)) + m * (1 - 2 * 0.5 * std::erfc(m / (s * std::sqrt(2))));
}

TEST(EnergyDistanceTest, TwoOneDimensionalNormalsMatchClosedForm) {
  const double delta = 0.8, s = 1.5;
  const double expected = 2 * MeanAbsNormal(delta, 1 + s * s) - MeanAbsNormal(0, 2) - MeanAbsNormal(0, 2 * s * s);
  Rng rng(3);
  const MeanAndError e = Replicate(20, [&](int) { return EnergyDistance(Normal(800, 1, rng), Normal(800, 1, rng, delta, s), 2); });
  EXPECT_NEAR(e.mean, expected, 4 * e.error);
  EXPECT_LT(e.error, 0.01);
  // A set against itself: 2 S/n^2 - 2 S/(n(n-1)) = -(2/n) U, U = mean distance over distinct pairs
  // (about sqrt(pi) = 1.77 for N(0, I_2)): -0.012 at n = 300.
  const Points x = Normal(300, 2, rng);
  EXPECT_LE(EnergyDistance(x, x), 0.0);
  EXPECT_GT(EnergyDistance(x, x), -0.02);
}

// For one point each, |e^{i w.a} - e^{i w.b}| = 2 |sin(w.(a-b)/2)| exactly.
TEST(CfdTest, SinglePointsMatchClosedForm) {
  const Points w = CfdFrequencies(256, 2, 5);
  Points a(1, 2), b(1, 2);
  a << 0.3, -1.2;
  b << 1.1, 0.4;
  double expected = 0;
  for (int k = 0; k < 256; ++k) expected += 2 * std::abs(std::sin(w.row(k).dot(a.row(0) - b.row(0)) / 2));
  EXPECT_NEAR(CharacteristicFunctionDistance(a, b, w), expected / 256, 1e-12);
  EXPECT_EQ(CharacteristicFunctionDistance(a, a, w), 0.0);
  // Seeded frequencies are reproducible.
  EXPECT_EQ(CfdFrequencies(256, 2, 5), w);
  EXPECT_NE(CfdFrequencies(256, 2, 6), w);
}

// Against a large exact sample, the CFD of N(0,1) vs N(1,1) approaches the distance between the true
// characteristic functions, (1/K) sum_k e^{-w^2/2} |1 - e^{i w}| = (1/K) sum_k e^{-w^2/2} 2|sin(w/2)|.
TEST(CfdTest, LargeSamplesApproachTheTrueCharacteristicFunctions) {
  const Points w = CfdFrequencies(256, 1, 9);
  double expected = 0;
  for (int k = 0; k < 256; ++k) expected += std::exp(-w(k, 0) * w(k, 0) / 2) * 2 * std::abs(std::sin(w(k, 0) / 2));
  expected /= 256;
  Rng rng(4);
  // Each |phi_hat - phi| is O(1/sqrt(n)) = 0.003 at n = 100000.
  EXPECT_NEAR(CharacteristicFunctionDistance(Normal(100000, 1, rng), Normal(100000, 1, rng, 1.0), w), expected, 0.01);
}

// For exact samples of N(mean, P^-1), E k_p(x, x') = 0 for independent x, x' (the U-statistic is
// unbiased for 0), and E k_p(x, x) = E|s(x)|^2 + d (-2 beta) c^{2 beta - 2} = tr(P) + d with c = 1,
// beta = -1/2: n V = n U + (1/n) sum_i k_p(x_i, x_i) has mean tr(P) + d.
TEST(KsdTest, ExactSamplesHaveZeroUStatisticAndKnownVStatistic) {
  auto t = CreateAnalyticTarget("gaussian", 0, {});  // P = [[3, -0.5], [-0.5, 1]], tr P = 4
  ASSERT_TRUE(t.ok());
  Rng rng(8);
  const int n = 400;
  std::vector<double> us, nvs;
  const MeanAndError u = Replicate(20, [&](int) {
    Points x, s;
    EXPECT_TRUE((*t)->Sample(n, rng, &x).ok());
    EXPECT_TRUE((*t)->Score(x, &s).ok());
    const KsdValues v = ImqKernelSteinDiscrepancy(x, s);
    nvs.push_back(n * v.v_statistic);
    return v.u_statistic;
  });
  EXPECT_NEAR(u.mean, 0.0, 4 * u.error);
  const MeanAndError nv = Replicate(20, [&](int r) { return nvs[r]; });
  EXPECT_NEAR(nv.mean, 4.0 + 2.0, 4 * nv.error);
  // A biased sample (shifted by 1) has a clearly positive U-statistic.
  Points x, s;
  ASSERT_TRUE((*t)->Sample(n, rng, &x).ok());
  x.array() += 1.0;
  ASSERT_TRUE((*t)->Score(x, &s).ok());
  EXPECT_GT(ImqKernelSteinDiscrepancy(x, s).u_statistic, 20 * u.error * std::sqrt(20.0));
}

TEST(MetricRegistryTest, ComputesByNameAndRefusesWhatDoesNotApply) {
  Rng rng(1);
  auto data = EmpiricalTarget::Create(Normal(200, 2, rng));
  ASSERT_TRUE(data.ok());
  const Points x = Normal(150, 2, rng);
  MetricOptions o;
  auto all = ComputeMetrics({"mmd", "energy", "cfd"}, x, **data, o);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 3u);
  auto ksd = ComputeMetrics({"ksd"}, x, **data, o);
  EXPECT_EQ(ksd.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(ksd.status().message()), ::testing::HasSubstr("needs a target with a score"));
  EXPECT_EQ(ComputeMetrics({"kld"}, x, **data, o).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ComputeMetrics({"mmd"}, Normal(10, 3, rng), **data, o).status().code(), absl::StatusCode::kInvalidArgument);
  auto donut = CreateAnalyticTarget("donut", 2, {});
  ASSERT_TRUE(donut.ok());
  EXPECT_EQ(ComputeMetrics({"mmd"}, x, **donut, o).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(ComputeMetrics({"ksd"}, x, **donut, o).ok());
  EXPECT_EQ(DefaultMetrics(**data), (std::vector<std::string>{"cfd", "mmd"}));
  EXPECT_EQ(DefaultMetrics(**donut), (std::vector<std::string>{"ksd"}));
}

}  // namespace
}  // namespace sampled
