#include "core/common/rng.h"

#include <cmath>
#include <numeric>
#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace sampled {
namespace {

TEST(RngTest, SameSeedSameNumbers) {
  Rng a(42), b(42);
  std::vector<double> x(1001), y(1001);
  a.FillNormal(x.data(), x.size());
  b.FillNormal(y.data(), y.size());
  EXPECT_EQ(x, y);
  EXPECT_NE(Rng(1).NextU64(), Rng(2).NextU64());
}

// Mean and variance of 200k draws within 5 sigma/sqrt(n) of 0 and 1 (sd of the sample variance of a
// normal is sqrt(2/n)).
TEST(RngTest, NormalMoments) {
  Rng rng(7);
  const int n = 200000;
  std::vector<double> x(n);
  rng.FillNormal(x.data(), n);
  const double mean = std::accumulate(x.begin(), x.end(), 0.0) / n;
  double var = 0;
  for (double v : x) var += (v - mean) * (v - mean);
  var /= n - 1;
  EXPECT_NEAR(mean, 0.0, 5.0 / std::sqrt(n));
  EXPECT_NEAR(var, 1.0, 5.0 * std::sqrt(2.0 / n));
}

TEST(RngTest, FloatAndDoubleStreamsAgree) {
  Rng a(3), b(3);
  std::vector<double> x(17);
  std::vector<float> y(17);
  a.FillNormal(x.data(), x.size());
  b.FillNormal(y.data(), y.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_FLOAT_EQ(static_cast<float>(x[i]), y[i]);
}

TEST(RngTest, SerializeRoundTripContinuesTheStream) {
  Rng a(99);
  a.NextU64();
  Rng b;
  ASSERT_TRUE(b.Deserialize(a.Serialize()).ok());
  EXPECT_TRUE(a == b);
  EXPECT_EQ(a.NextU64(), b.NextU64());
  EXPECT_FALSE(b.Deserialize("not a state").ok());
}

TEST(RngTest, SampleWithoutReplacementIsASubset) {
  Rng rng(5);
  std::vector<int64_t> perm(50), out(20);
  std::iota(perm.begin(), perm.end(), 0);
  for (int rep = 0; rep < 10; ++rep) {
    rng.SampleWithoutReplacement(50, 20, perm.data(), out.data());
    std::set<int64_t> s(out.begin(), out.end());
    EXPECT_EQ(s.size(), 20u);
    EXPECT_GE(*s.begin(), 0);
    EXPECT_LT(*s.rbegin(), 50);
    for (int64_t i = 0; i < 50; ++i) ASSERT_EQ(perm[i], i);  // restored to the identity
  }
  // The subset depends on the generator alone: a copy of it draws the same subset with fresh scratch.
  Rng copy = rng;
  std::vector<int64_t> fresh(50), again(20);
  std::iota(fresh.begin(), fresh.end(), 0);
  rng.SampleWithoutReplacement(50, 20, perm.data(), out.data());
  copy.SampleWithoutReplacement(50, 20, fresh.data(), again.data());
  EXPECT_EQ(out, again);
}

}  // namespace
}  // namespace sampled
