#include "core/kernels/pairwise_median.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "core/common/rng.h"

namespace sampled {
namespace {

template <typename Scalar>
double SortedLowerMedian(const PointsT<Scalar>& p) {
  std::vector<Scalar> d2;
  for (int64_t i = 0; i < p.rows(); ++i)
    for (int64_t j = i + 1; j < p.rows(); ++j) d2.push_back((p.row(i) - p.row(j)).squaredNorm());
  std::sort(d2.begin(), d2.end());
  return d2[(d2.size() - 1) / 2];
}

class PairwiseMedianTest : public ::testing::TestWithParam<std::pair<int64_t, int64_t>> {};

TEST_P(PairwiseMedianTest, EqualsTheSortedLowerMedian) {
  const auto [n, d] = GetParam();
  Rng rng(n * 31 + d);
  Points p(n, d);
  rng.FillNormal(p.data(), p.size());
  PairwiseMedianWorkspace<double> ws;
  // Same distances up to summation order (and, for d > 8, the |a|^2 + |b|^2 - 2ab expansion).
  const double tol = d > 8 ? 1e-12 : 1e-14;
  EXPECT_NEAR(MedianPairwiseSquaredDistance(p, 2, ws), SortedLowerMedian(p), tol * SortedLowerMedian(p));
  const PointsF pf = p.cast<float>();
  PairwiseMedianWorkspace<float> wsf;
  EXPECT_NEAR(MedianPairwiseSquaredDistance(pf, 2, wsf), SortedLowerMedian(pf), 1e-5 * SortedLowerMedian(pf));
}

INSTANTIATE_TEST_SUITE_P(Sizes, PairwiseMedianTest,
                         ::testing::Values(std::make_pair(2, 1), std::make_pair(3, 2), std::make_pair(100, 2),
                                           std::make_pair(513, 2), std::make_pair(1500, 3),
                                           std::make_pair(700, 50), std::make_pair(3000, 2)));

TEST(PairwiseMedianTest, HandlesTiesAndCoincidentPoints) {
  Points p = Points::Zero(200, 2);
  p.bottomRows(50).setOnes();
  // 150*149/2 + 50*49/2 = 12400 zero distances of 19900 pairs: the median is 0.
  EXPECT_EQ(MedianPairwiseSquaredDistance(p), 0.0);
  p.bottomRows(150).setOnes();
  // 1225 + 11175 = 12400 zero distances again.
  EXPECT_EQ(MedianPairwiseSquaredDistance(p), 0.0);
  p.setZero();
  p.bottomRows(100).setConstant(3.0);
  // 2 * 4950 = 9900 zeros, 10000 distances of 18: the lower median (rank 9949) is 18.
  EXPECT_EQ(MedianPairwiseSquaredDistance(p), 18.0);
  EXPECT_EQ(MedianPairwiseSquaredDistance(Points::Zero(1, 2)), 0.0);
}

// Large enough for the bracketing path, with every distance tied: 0 or 9.
TEST(PairwiseMedianTest, TiesOnTheBracketingPath) {
  Points p = Points::Zero(600, 2);
  p.bottomRows(300).col(0).setConstant(3.0);
  // 2 * C(300, 2) = 89700 zeros and 90000 nines among 179700 pairs: the lower median (rank 89849) is 9.
  EXPECT_EQ(MedianPairwiseSquaredDistance(p), 9.0);
  p.bottomRows(299).col(0).setZero();  // 598 of 600 points at 0: the median is 0
  EXPECT_EQ(MedianPairwiseSquaredDistance(p), 0.0);
  PairwiseMedianWorkspace<float> wsf;
  const PointsF pf = p.cast<float>();
  EXPECT_EQ(MedianPairwiseSquaredDistance(pf, 2, wsf), 0.0);
}

TEST(PairwiseMedianTest, ReusedWorkspaceGivesTheSameAnswer) {
  Rng rng(1);
  Points a(300, 2), b(40, 5);
  rng.FillNormal(a.data(), a.size());
  rng.FillNormal(b.data(), b.size());
  PairwiseMedianWorkspace<double> ws;
  const double ma = MedianPairwiseSquaredDistance(a, 2, ws);
  EXPECT_DOUBLE_EQ(MedianPairwiseSquaredDistance(b, 2, ws), SortedLowerMedian(b));
  EXPECT_DOUBLE_EQ(MedianPairwiseSquaredDistance(a, 1, ws), ma);
}

}  // namespace
}  // namespace sampled

namespace sampled {
namespace {

Points Gaussian(int64_t n, int64_t d, uint64_t seed) {
  Rng rng(seed);
  Points p(n, d);
  rng.FillNormal(p.data(), p.size());
  return p;
}

// With no more distinct pairs than the subset holds, the subset estimator is the exact median.
TEST(SubsetPairMedianTest, IsExactWhenTheSubsetCoversEveryPair) {
  const Points p = Gaussian(180, 3, 5);  // 16,110 pairs
  SubsetPairMedian subset(16384, 7);
  EXPECT_FALSE(subset.subsampled(180));
  EXPECT_EQ(subset(p), MedianPairwiseSquaredDistance(p, 1));
}

// The estimate over a fixed subset of P pairs has a relative standard error of about
// 1 / (2 sqrt(P) f(m) m) (f: density of the squared distance at its median m): for a 2-D Gaussian cloud the
// squared distance is exponential, f(m) m = ln(2)/2, so 1.44 / sqrt(P) = 1.1% at P = 16384. Over 20 clouds
// (seeds fixed) every estimate is within 5 standard errors (5.6%) and their RMS within 2 (2.3%).
TEST(SubsetPairMedianTest, RelativeErrorMatchesItsStandardError) {
  double sum_sq = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const Points p = Gaussian(4096, 2, 100 + seed);
    SubsetPairMedian subset(16384, seed);
    ASSERT_TRUE(subset.subsampled(4096));
    const double exact = MedianPairwiseSquaredDistance(p, 2);
    const double rel = subset(p) / exact - 1;
    EXPECT_LT(std::abs(rel), 5 * 1.44 / 128) << "seed " << seed;
    sum_sq += rel * rel;
  }
  EXPECT_LT(std::sqrt(sum_sq / 20), 2 * 1.44 / 128);
}

// The subset is drawn once per point count from the seed: the same points give the same estimate, and a
// moved cloud is measured on the same pairs (a scaled cloud's estimate scales exactly).
TEST(SubsetPairMedianTest, IsAFixedFunctionOfThePoints) {
  const Points p = Gaussian(2000, 2, 9);
  SubsetPairMedian a(1000, 3), b(1000, 3);
  const double first = a(p);
  EXPECT_EQ(a(p), first);
  EXPECT_EQ(b(p), first);
  EXPECT_DOUBLE_EQ(a(Points(2.0 * p)), 4 * first);
}

}  // namespace
}  // namespace sampled
