#include "core/kernels/gaussian_kernel_sums.h"

#include <cmath>

#include <gtest/gtest.h>

#include "core/common/rng.h"

namespace sampled {
namespace {

Points RandomPoints(int64_t n, int64_t d, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  Points p(n, d);
  rng.FillNormal(p.data(), p.size());
  return scale * p;
}

// Direct O(NM) evaluation in long double.
Points NaiveProduct(const Points& q, const Points& p, const Points& v, double sigma, bool shift) {
  Points out = Points::Zero(q.rows(), v.cols());
  for (int64_t j = 0; j < q.rows(); ++j) {
    long double s = shift ? -INFINITY : 0;
    if (shift) {
      for (int64_t i = 0; i < p.rows(); ++i) {
        s = std::max<long double>(s, -(q.row(j) - p.row(i)).squaredNorm() / (2 * sigma * sigma));
      }
    }
    for (int64_t i = 0; i < p.rows(); ++i) {
      const long double w = std::exp(-(long double)(q.row(j) - p.row(i)).squaredNorm() / (2 * sigma * sigma) - s);
      for (int64_t c = 0; c < v.cols(); ++c) out(j, c) += static_cast<double>(w * v(i, c));
    }
  }
  return out;
}

class KernelProductTest : public ::testing::TestWithParam<int64_t> {};

// Sizes straddle the tiles (128 query rows, 512 point columns); d covers both distance paths.
TEST_P(KernelProductTest, MatchesDirectSumInDoubleAndFloat) {
  const int64_t d = GetParam();
  const Points q = RandomPoints(300, d, 1), p = RandomPoints(1100, d, 2), v = RandomPoints(1100, 3, 3);
  for (bool shift : {false, true}) {
    const double sigma = 0.7 * std::sqrt(static_cast<double>(d));
    const Points expected = NaiveProduct(q, p, v, sigma, shift);
    KernelWorkspace<double> ws;
    Points out;
    GaussianKernelProduct(q, p, v, sigma, shift, ws, 2, &out);
    EXPECT_LT((out - expected).cwiseAbs().maxCoeff(), 1e-11 * (1 + expected.cwiseAbs().maxCoeff())) << shift;

    KernelWorkspace<float> wsf;
    Points outf;
    GaussianKernelProduct<float>(q.cast<float>(), p.cast<float>(), v.cast<float>(), sigma, shift, wsf, 2, &outf);
    EXPECT_LT((outf - expected).cwiseAbs().maxCoeff(), 2e-4 * (1 + expected.cwiseAbs().maxCoeff())) << shift;
  }
}

INSTANTIATE_TEST_SUITE_P(Dims, KernelProductTest, ::testing::Values(1, 2, 8, 9, 50));

TEST(GaussianWeightedMeansTest, FarQueriesGetTheNearestPointNotNaN) {
  Points p(3, 2);
  p << 0, 0, 1, 0, 0, 1;
  Points q(2, 2);
  q << 1000, 0, -5000, 3;
  KernelWorkspace<double> ws;
  Points out;
  GaussianWeightedMeans(q, p, 0.1, ws, 1, &out);
  ASSERT_TRUE(out.allFinite());
  EXPECT_NEAR(out(0, 0), 1.0, 1e-12);
  EXPECT_NEAR(out(0, 1), 0.0, 1e-12);
  EXPECT_NEAR(out(1, 0), 0.0, 1e-12);
  EXPECT_NEAR(out(1, 1), 1.0, 1e-12);
}

TEST(GaussianWeightedMeansTest, ResultDoesNotDependOnThreadCount) {
  const Points q = RandomPoints(700, 2, 4), p = RandomPoints(900, 2, 5);
  KernelWorkspace<double> ws;
  Points one, two;
  GaussianWeightedMeans(q, p, 0.5, ws, 1, &one);
  GaussianWeightedMeans(q, p, 0.5, ws, 2, &two);
  EXPECT_EQ(one, two);
}

TEST(GaussianWeightedMeansTest, IsTheNormalisedKernelAverage) {
  const Points q = RandomPoints(40, 3, 6), p = RandomPoints(60, 3, 7);
  Points v(60, 4);
  v << p, Points::Ones(60, 1);
  const Points sums = NaiveProduct(q, p, v, 0.8, true);
  KernelWorkspace<double> ws;
  Points out;
  GaussianWeightedMeans(q, p, 0.8, ws, 2, &out);
  for (int64_t j = 0; j < 40; ++j) {
    for (int64_t k = 0; k < 3; ++k) EXPECT_NEAR(out(j, k), sums(j, k) / sums(j, 3), 1e-12);
  }
}

}  // namespace
}  // namespace sampled
