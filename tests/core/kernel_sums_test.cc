#include "core/kernels/kernel_sums.h"

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
    KernelSumsOptions o;
    o.sigma = sigma;
    o.max_shift = shift;
    KernelWorkspace<double> ws;
    Points out;
    KernelSums(q, p, &v, o, ws, 2, &out);
    EXPECT_LT((out - expected).cwiseAbs().maxCoeff(), 1e-11 * (1 + expected.cwiseAbs().maxCoeff())) << shift;

    KernelWorkspace<float> wsf;
    Points outf;
    const PointsF vf = v.cast<float>();
    KernelSums<float>(q.cast<float>(), p.cast<float>(), &vf, o, wsf, 2, &outf);
    EXPECT_LT((outf - expected).cwiseAbs().maxCoeff(), 2e-4 * (1 + expected.cwiseAbs().maxCoeff())) << shift;
  }
}

// sum_i v_i / |q - p_i| over p_i != q, in long double.
Points NaiveInverseDistance(const Points& q, const Points& p, const Points& v) {
  Points out = Points::Zero(q.rows(), v.cols());
  for (int64_t j = 0; j < q.rows(); ++j) {
    for (int64_t i = 0; i < p.rows(); ++i) {
      const long double r = std::sqrt((long double)(q.row(j) - p.row(i)).squaredNorm());
      if (r == 0) continue;
      for (int64_t c = 0; c < v.cols(); ++c) out(j, c) += static_cast<double>(v(i, c) / r);
    }
  }
  return out;
}

TEST_P(KernelProductTest, InverseDistanceMatchesDirectSumAndSkipsCoincidentPoints) {
  const int64_t d = GetParam();
  Points q = RandomPoints(200, d, 11), p = RandomPoints(700, d, 12);
  p.row(3) = q.row(5);  // a coincident pair contributes nothing
  Points v(700, d + 1);
  v << p, Points::Ones(700, 1);
  const Points expected = NaiveInverseDistance(q, p, v);
  KernelSumsOptions o;
  o.kernel = PairKernel::kInverseDistance;
  KernelWorkspace<double> ws;
  Points out, implicit;
  KernelSums(q, p, &v, o, ws, 2, &out);
  KernelSums<double>(q, p, nullptr, o, ws, 2, &implicit);  // values [p | 1]
  EXPECT_LT((out - expected).cwiseAbs().maxCoeff(), 1e-10 * (1 + expected.cwiseAbs().maxCoeff()));
  EXPECT_LT((implicit - expected).cwiseAbs().maxCoeff(), 1e-10 * (1 + expected.cwiseAbs().maxCoeff()));
  // float32 against the same sums over the float-rounded inputs (near pairs make 1/r sensitive to the
  // rounding of the inputs themselves).
  const PointsF qf = q.cast<float>(), pf = p.cast<float>();
  Points vr(700, d + 1);
  vr << pf.cast<double>(), Points::Ones(700, 1);
  const Points expected_f = NaiveInverseDistance(qf.cast<double>(), pf.cast<double>(), vr);
  KernelWorkspace<float> wsf;
  Points outf;
  KernelSums<float>(qf, pf, nullptr, o, wsf, 2, &outf);
  EXPECT_LT(((outf - expected_f).array().abs() / (1 + expected_f.array().abs())).maxCoeff(), 1e-4);
}

TEST_P(KernelProductTest, ShiftIsTheNearestLogWeight) {
  const int64_t d = GetParam();
  const Points q = RandomPoints(50, d, 13, 3.0), p = RandomPoints(300, d, 14);
  KernelSumsOptions o;
  o.sigma = 0.3;
  o.max_shift = true;
  KernelWorkspace<double> ws;
  Points out;
  Eigen::VectorXd shift;
  KernelSums<double>(q, p, nullptr, o, ws, 1, &out, &shift);
  for (int64_t j = 0; j < q.rows(); ++j) {
    double min_d2 = INFINITY;
    for (int64_t i = 0; i < p.rows(); ++i) min_d2 = std::min(min_d2, (q.row(j) - p.row(i)).squaredNorm());
    EXPECT_NEAR(shift(j), min_d2 / (2 * 0.09), 1e-9 * (1 + shift(j)));
    EXPECT_GE(out(j, d), 1.0 - 1e-12);  // the nearest point's weight is exactly 1
  }
}

// The shift is a running minimum: points met far-to-near make every block lower it, and the first
// blocks lie so far beyond the nearest point (e^-2000) that their weights relative to the shift of the
// moment would overflow if the shift lagged: the sums must still equal the direct ones.
TEST_P(KernelProductTest, RunningShiftHandlesPointsMetFarToNear) {
  const int64_t d = GetParam();
  const int64_t n = 1500;  // three blocks of the fused path, three tiles of the GEMM path
  const double sigma = 0.5;
  Points q = Points::Zero(3, d);
  q(1, 0) = 0.25;
  q(2, 0) = -40.0;  // far from every point: all weights underflow without the shift
  Points p = RandomPoints(n, d, 21);
  // Radii from 32 down to 0.1 along random directions: far to near.
  for (int64_t i = 0; i < n; ++i) {
    const double radius = 32.0 * std::pow(0.1 / 32.0, static_cast<double>(i) / (n - 1));
    p.row(i) *= radius / p.row(i).norm();
  }
  Points v(n, 2);
  v << p.col(0), Points::Ones(n, 1);
  const Points expected = NaiveProduct(q, p, v, sigma, true);
  KernelSumsOptions o;
  o.sigma = sigma;
  o.max_shift = true;
  for (bool implicit : {false, true}) {
    KernelWorkspace<double> ws;
    KernelWorkspace<float> wsf;
    Points out, outf;
    if (implicit) {
      KernelSums<double>(q, p, nullptr, o, ws, 2, &out);
      KernelSums<float>(q.cast<float>(), p.cast<float>(), nullptr, o, wsf, 2, &outf);
      // [p | 1]: keep column 0 and the normaliser.
      Points two(out.rows(), 2), twof(out.rows(), 2);
      two << out.col(0), out.col(d);
      twof << outf.col(0), outf.col(d);
      out = two;
      outf = twof;
    } else {
      const PointsF vf = v.cast<float>();
      KernelSums<double>(q, p, &v, o, ws, 2, &out);
      KernelSums<float>(q.cast<float>(), p.cast<float>(), &vf, o, wsf, 2, &outf);
    }
    ASSERT_TRUE(out.allFinite() && outf.allFinite()) << implicit;
    EXPECT_LT(((out - expected).array().abs() / (1e-300 + expected.array().abs())).maxCoeff(), 1e-9) << implicit;
    // The normalised means (what the flows use) in float.
    for (int64_t j = 0; j < q.rows(); ++j) {
      EXPECT_NEAR(outf(j, 0) / outf(j, 1), expected(j, 0) / expected(j, 1), 1e-4) << implicit << " query " << j;
    }
  }
}

// Large coordinates with a lagging shift: the float packet sums (weights times coordinates) must not
// overflow while the shift catches up.
TEST_P(KernelProductTest, LaggingShiftWithLargeCoordinatesStaysFinite) {
  const int64_t d = GetParam();
  const int64_t n = 1200;
  Points p = RandomPoints(n, d, 31, 1e4);
  p.array() += 3e7;  // a cluster far from the origin, in coordinates near 3e7
  const double sigma = 2.5e5;
  // The first point met lies 11.5 sigma from the rest: weights relative to it reach 2^95 in float, and
  // 512 of them times coordinates of 3e7 would overflow float's 3.4e38.
  p.row(0).setConstant(3e7 + 11.5 * sigma / std::sqrt(static_cast<double>(d)));
  const Points q = RandomPoints(4, d, 32, 1e4).array() + 3e7;
  KernelWorkspace<double> ws;
  KernelWorkspace<float> wsf;
  Points means, meansf;
  GaussianWeightedMeans<double>(q, p, sigma, ws, 2, &means);
  GaussianWeightedMeans<float>(q.cast<float>(), p.cast<float>(), sigma, wsf, 2, &meansf);
  ASSERT_TRUE(means.allFinite());
  ASSERT_TRUE(meansf.allFinite());
  EXPECT_LT((meansf - means).cwiseAbs().maxCoeff(), 1e-5 * 3e7);
}

INSTANTIATE_TEST_SUITE_P(Dims, KernelProductTest, ::testing::Values(1, 2, 3, 8, 9, 50));

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
