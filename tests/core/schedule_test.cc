#include "core/flows/schedule.h"

#include <cmath>

#include <gtest/gtest.h>

namespace sampled {
namespace {

TEST(SigmaRuleTest, CosineRunsFromMaxToMinVariance) {
  auto r = SigmaRule::Parse("cosine:10,0.5", "noise");
  ASSERT_TRUE(r.ok());
  EXPECT_NEAR(r->Sigma(0, 1000, 0, 0), std::sqrt(10.0), 1e-12);
  EXPECT_NEAR(r->Sigma(999, 1000, 0, 0), std::sqrt(0.5), 1e-12);
  EXPECT_NEAR(r->Sigma(5000, 1000, 0, 0), std::sqrt(0.5), 1e-12);
  // Midway: sigma^2 = 10 cos(pi t_max / 4), t_max = 2/pi acos(0.05).
  const double t_max = 2 / M_PI * std::acos(0.05);
  EXPECT_NEAR(r->Sigma(500, 1001, 0, 0), std::sqrt(10 * std::cos(M_PI * t_max / 4)), 1e-12);
}

TEST(SigmaRuleTest, MedianRules) {
  auto fn15 = SigmaRule::Parse("median", "bandwidth");
  auto lw = SigmaRule::Parse("svgd-median", "bandwidth");
  ASSERT_TRUE(fn15.ok() && lw.ok());
  EXPECT_NEAR(fn15->Sigma(0, 0, 3.0, 99), std::sqrt(2 * 3.0 / std::log(100.0)), 1e-12);
  EXPECT_NEAR(lw->Sigma(0, 0, 3.0, 99), std::sqrt(3.0 / (2 * std::log(100.0))), 1e-12);
}

TEST(SigmaRuleTest, ParsesNumbersAndRefusesNonsense) {
  EXPECT_DOUBLE_EQ(SigmaRule::Parse("0.25", "bandwidth")->Sigma(0, 0, 0, 0), 0.25);
  EXPECT_DOUBLE_EQ(SigmaRule::Parse("constant:2", "noise")->Sigma(7, 0, 0, 0), 2.0);
  for (const char* bad : {"", "cosine:1", "cosine:a,b", "constant:-1", "0", "nan", "medain"}) {
    EXPECT_FALSE(SigmaRule::Parse(bad, "noise").ok()) << bad;
  }
  EXPECT_FALSE(SigmaRule::Parse("none", "bandwidth").ok());
}

TEST(KernelSigmasTest, DefaultsAndFollowing) {
  double bw, noise;
  // Neither given: bandwidth median, noise follows it.
  auto s = KernelSigmas::Resolve({}, {}, "median", "bandwidth", 0);
  ASSERT_TRUE(s.ok());
  s->At(0, 2.0, 10, &bw, &noise);
  EXPECT_DOUBLE_EQ(bw, noise);
  EXPECT_NEAR(bw, std::sqrt(4.0 / std::log(11.0)), 1e-12);
  // Only noise: the bandwidth follows the noise (Eq. 17).
  s = KernelSigmas::Resolve({}, std::string("cosine:4,1"), "median", "bandwidth", 11);
  ASSERT_TRUE(s.ok());
  s->At(10, 0, 10, &bw, &noise);
  EXPECT_DOUBLE_EQ(bw, 1.0);
  EXPECT_DOUBLE_EQ(noise, 1.0);
  // No noise: the bandwidth keeps its default.
  s = KernelSigmas::Resolve({}, std::string("none"), "median", "bandwidth", 0);
  ASSERT_TRUE(s.ok());
  s->At(0, 2.0, 10, &bw, &noise);
  EXPECT_EQ(noise, 0.0);
  EXPECT_GT(bw, 0.0);
  EXPECT_FALSE(KernelSigmas::Resolve(std::string("noise"), std::string("bandwidth"), "median", "none", 0).ok());
  EXPECT_FALSE(KernelSigmas::Resolve(std::string("noise"), std::string("none"), "median", "none", 0).ok());
}

}  // namespace
}  // namespace sampled
