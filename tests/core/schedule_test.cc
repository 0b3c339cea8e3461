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

TEST(SigmaRuleTest, InitialRulesReadTheInitialMedian) {
  auto held = SigmaRule::Parse("initial-median", "noise");
  ASSERT_TRUE(held.ok());
  EXPECT_TRUE(held->needs_initial_median());
  EXPECT_FALSE(held->needs_median());
  EXPECT_EQ(held->ToString(), "initial-median");
  EXPECT_NEAR(held->Sigma(0, 0, SigmaMedians{/*now=*/1.0, /*initial=*/3.0}, 99), std::sqrt(6.0 / std::log(100.0)),
              1e-12);
  auto scaled = SigmaRule::Parse("initial-median-scaled:0.5", "bandwidth");
  ASSERT_TRUE(scaled.ok());
  EXPECT_EQ(scaled->ToString(), "initial-median-scaled:0.5");
  EXPECT_NEAR(scaled->Sigma(0, 0, SigmaMedians{1.0, 8.0}, 10), 2.0, 1e-12);
  for (const char* bad : {"initial-0.5", "initial-cosine:4,1", "initial-none", "initial-initial-median", "initial-"}) {
    auto r = SigmaRule::Parse(bad, "noise");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("initial- takes a median rule"), std::string::npos) << r.status();
  }
  auto sigmas = KernelSigmas::Resolve(std::string("initial-median"), std::string("median"), "median", "none", 0);
  ASSERT_TRUE(sigmas.ok());
  EXPECT_TRUE(sigmas->needs_median() && sigmas->needs_initial_median());
  double bw, noise;
  sigmas->At(0, SigmaMedians{1.0, 4.0}, 10, &bw, &noise);
  EXPECT_NEAR(bw, std::sqrt(8.0 / std::log(11.0)), 1e-12);
  EXPECT_NEAR(noise, std::sqrt(2.0 / std::log(11.0)), 1e-12);
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
