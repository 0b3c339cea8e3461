// 003 Table 1's MCMC rows in our terms: the six 2-D densities, 500 particles from N(0, I), 500 iterations of
// SVGD, unadjusted Langevin, MALA, HMC and Stein KiNG; KSD (IMQ, c = 1, beta = -1/2, sqrt of the V-statistic
// as sgmcmcjax computes it) of the final particles, mean and standard deviation over 5 seeds.
//
// Step sizes: 003 uses 0.01 for SVGD and LD and 0.1 with 10 leapfrog steps for HMC. We tuned every method
// once over {0.003, 0.01, 0.03, 0.1, 0.3, 1} (Stein KiNG also 3, 10) by the mean KSD over the six targets
// (seed 0; the sweep is in docs/experiments.md). The paper's values come out best or close for SVGD (with
// the AdaGrad of the published SVGD code), LD and HMC, and we keep them; MALA is best at 0.03 and Stein
// KiNG at 1.
#include <cstdio>
#include <map>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/metrics/metric.h"
#include "tests/experiments/experiment_util.h"

namespace sampled::experiments {
namespace {

struct Method {
  const char* name;
  const char* flow;
  double step_size;
  const char* optimizer;  // nullptr: the method takes none
};
const Method kMethods[] = {{"SVGD", "svgd", 0.01, "adagrad"},
                           {"LD", "langevin", 0.01, nullptr},
                           {"MALA", "mala", 0.03, nullptr},
                           {"HMC", "hmc", 0.1, nullptr},
                           {"Stein KiNG", "stein-king", 1.0, nullptr}};
const char* const kTargets[] = {"gaussian", "mixture", "rosenbrock", "donut", "funnel", "squiggle"};

// 003 Table 1 (mean ± sd), for the rows that exist there.
const std::map<std::string, std::vector<std::string>> kPaper = {
    {"SVGD", {"0.013 ± 0.001", "0.044 ± 0.006", "0.053 ± 0.002", "0.057 ± 0.004", "0.052 ± 0.001", "0.024 ± 0.002"}},
    {"LD", {"0.107 ± 0.025", "0.099 ± 0.008", "0.152 ± 0.030", "0.107 ± 0.020", "0.116 ± 0.029", "0.139 ± 0.030"}},
    {"HMC", {"0.094 ± 0.020", "0.106 ± 0.020", "0.134 ± 0.034", "0.113 ± 0.020", "0.135 ± 0.010", "0.135 ± 0.033"}}};

// Runs `steps` steps of `c` on `target` from 500 particles of N(0, I) drawn with `init_seed`: the final
// particles, or nullopt after reporting a failure (`what` names the run).
std::optional<Points> RunFromStandardNormal(const FlowConfig& c, std::shared_ptr<const Target> target,
                                            uint64_t init_seed, int steps, const std::string& what) {
  auto flow = CreateFlow(c, std::move(target));
  InitialParticles init;
  init.count = 500;
  auto state = MakeInitialState(init, 2, init_seed);
  if (!flow.ok() || !state.ok()) {
    ADD_FAILURE() << what << ": " << (flow.ok() ? state.status() : flow.status());
    return std::nullopt;
  }
  EXPECT_TRUE((*flow)->CheckState(*state).ok()) << what;
  StepStats stats;
  for (int i = 0; i < steps; ++i) {
    absl::Status s = (*flow)->Step(*state, &stats);
    if (!s.ok()) {
      ADD_FAILURE() << what << ": " << s;
      return std::nullopt;
    }
  }
  return std::move(state->particles);
}

double FinalKsd(const Method& m, const std::string& target_name, int seed,
                const std::map<std::string, std::string>& options = {}) {
  auto target = Family(target_name, 2, {});
  FlowConfig c;
  c.method = m.flow;
  c.step_size = m.step_size;
  if (m.optimizer != nullptr) c.optimizer = m.optimizer;
  if (c.method == "svgd") c.bandwidth = "svgd-median";  // 003's SVGD (Liu & Wang's rule), as the table was run
  c.options = options;
  if (std::string(m.flow) == "hmc") c.options["leapfrog"] = "10";
  c.seed = seed;
  c.threads = 2;
  const std::optional<Points> y = RunFromStandardNormal(c, target, 500 + seed, 500,
                                                        absl::StrCat(m.name, " on ", target_name));
  if (!y) return std::numeric_limits<double>::infinity();
  auto ksd = KernelSteinDiscrepancyMetric().Compute(*y, *target, MetricOptions());
  EXPECT_TRUE(ksd.ok());
  return *ksd;
}

TEST(Ksd2dExperiment, TheSixDensities) {
  std::printf("\n003 Table 1 in our terms: KSD (IMQ) after 500 iterations, 500 particles, 5 seeds\n");
  std::printf("| sampler | gaussian | mog2 | rosenbrock | donut | funnel | squiggle |\n| --- | --- | --- | --- | --- | --- | --- |\n");
  std::map<std::string, std::vector<double>> means, sds;
  for (const Method& m : kMethods) {
    std::string row = absl::StrFormat("| %s |", m.name);
    for (const char* target : kTargets) {
      std::vector<double> values;
      for (int seed = 0; seed < 5; ++seed) values.push_back(FinalKsd(m, target, seed));
      const MeanError e = Summarise(values);
      const double sd = e.error * std::sqrt(5.0);
      means[m.name].push_back(e.mean);
      sds[m.name].push_back(sd);
      absl::StrAppendFormat(&row, " %.3f ± %.3f |", e.mean, sd);
      EXPECT_TRUE(std::isfinite(e.mean)) << m.name << " " << target;
    }
    std::printf("%s\n", row.c_str());
    if (kPaper.count(m.name)) {
      std::string paper = absl::StrFormat("| %s (003) |", m.name);
      for (const std::string& v : kPaper.at(m.name)) paper += " " + v + " |";
      std::printf("%s\n", paper.c_str());
    }
    std::fflush(stdout);
  }
  // SVGD's deterministic particles beat the independent-chain samplers on every density (as in 003), and the
  // chains sit near the KSD of exact independent samples (about 0.1 at n = 500).
  for (size_t t = 0; t < std::size(kTargets); ++t) {
    EXPECT_LT(means["SVGD"][t], means["LD"][t]) << kTargets[t];
    for (const char* chain : {"LD", "MALA", "HMC"}) EXPECT_LT(means[chain][t], 0.5) << chain << " " << kTargets[t];
  }
  // LD and HMC agree with 003's rows within two standard errors of the difference (5 seeds each side) where
  // the densities agree: every one but the funnel (ours is the foundation issue's x1 ~ N(4, 9), wider).
  for (const char* chain : {"LD", "HMC"}) {
    for (size_t t = 0; t < std::size(kTargets); ++t) {
      if (std::string(kTargets[t]) == "funnel") continue;
      double paper_mean = 0, paper_sd = 0;
      ASSERT_EQ(std::sscanf(kPaper.at(chain)[t].c_str(), "%lf ± %lf", &paper_mean, &paper_sd), 2);
      const double se = std::sqrt((sds[chain][t] * sds[chain][t] + paper_sd * paper_sd) / 5.0);
      EXPECT_LT(std::abs(means[chain][t] - paper_mean), 2 * se) << chain << " on " << kTargets[t];
    }
  }
  // Stein KiNG at its defaults (docs/experiments.md, 2026-12-06): below LD on mog2, the funnel and the squiggle,
  // within 25% of it on the Gaussian and the donut, behind it on the curved rosenbrock.
  for (size_t t : {1u, 4u, 5u}) EXPECT_LT(means["Stein KiNG"][t], means["LD"][t]) << kTargets[t];
  for (size_t t : {0u, 3u}) EXPECT_LT(means["Stein KiNG"][t], 1.25 * means["LD"][t]) << kTargets[t];
  EXPECT_GT(means["Stein KiNG"][2], means["LD"][2]);
  // ridge 0.01 (which splits MoG2's weights more evenly, SteinKingDefaultsOnMog2) approaches the Gaussian and
  // rosenbrock slower: mean KSD at 500 steps above the default's (2026-12-06: 0.195 and 0.316 against 0.113
  // and 0.237).
  const Method ridge{"Stein KiNG, ridge 0.01", "stein-king", 1.0, nullptr};
  for (size_t t : {0u, 2u}) {
    std::vector<double> values;
    for (int seed = 0; seed < 5; ++seed) values.push_back(FinalKsd(ridge, kTargets[t], seed, {{"ridge", "0.01"}}));
    const double mean = Summarise(values).mean;
    std::printf("Stein KiNG with ridge 0.01 on %s: %.3f (default %.3f)\n", kTargets[t], mean, means["Stein KiNG"][t]);
    EXPECT_GT(mean, means["Stein KiNG"][t]) << kTargets[t];
  }
}

// Stein KiNG at its defaults on 003's MoG2 (issue 12 item 5; docs/experiments.md "Stein KiNG's defaults"):
// 500 particles from N(0, I), 1000 steps, nothing set but the seed. Unbiased MMD^2 (Gaussian kernel,
// h^2 = median D^2 / 2 of the exact draws) to 4000 exact draws against the largest of 20 exact 500-draw
// samples; the share of particles in the (2, -2) mode's half-plane x0 > x1 (exact: 0.5, sd 0.022).
struct Mog2Result {
  double mmd2 = 0, share = 0, std = 0;
};

Mog2Result SteinKingOnMog2(int seed, const std::map<std::string, std::string>& options, const Points& exact, double h) {
  FlowConfig c;
  c.method = "stein-king";
  c.options = options;
  c.seed = seed;
  c.threads = 2;
  const std::optional<Points> y =
      RunFromStandardNormal(c, Family("mixture", 2, {}), 900 + seed, 1000, absl::StrCat("stein-king seed ", seed));
  if (!y) return {1e300, 0, 0};
  Mog2Result r;
  r.mmd2 = UnbiasedMmd2(*y, exact, h);
  r.share = ((y->col(0) - y->col(1)).array() > 0).cast<double>().mean();
  r.std = std::sqrt(((y->rowwise() - y->colwise().mean()).array().square().colwise().sum() / (y->rows() - 1)).mean());
  return r;
}

// Runs `seeds` seeds with `options`, prints a row each, and counts the runs that end indistinguishable
// from exact draws: MMD^2 below the null's largest and the share within 3 sd (0.067) of an exact sample's.
struct Mog2Summary {
  int good = 0;
  int stalled = 0;  // std below 1.95: mass left between the modes
  double mean_mmd2 = 0, min_std = 1e300, max_std = 0, max_imbalance = 0;
};

Mog2Summary RunMog2Seeds(const char* label, const std::map<std::string, std::string>& options, int seeds,
                         const Points& exact, double h, double null_max) {
  std::printf("%s\n| seed | MMD^2 | share x0 > x1 | std (target 2.12) |\n| --- | --- | --- | --- |\n", label);
  Mog2Summary sum;
  for (int seed = 0; seed < seeds; ++seed) {
    const Mog2Result r = SteinKingOnMog2(seed, options, exact, h);
    std::printf("| %d | %.4f | %.3f | %.2f |\n", seed, r.mmd2, r.share, r.std);
    sum.good += r.mmd2 < null_max && std::abs(r.share - 0.5) < 0.067;
    sum.mean_mmd2 += r.mmd2 / seeds;
    sum.stalled += r.std < 1.95;
    sum.max_imbalance = std::max(sum.max_imbalance, std::abs(r.share - 0.5));
    sum.min_std = std::min(sum.min_std, r.std);
    sum.max_std = std::max(sum.max_std, r.std);
  }
  std::printf("%d of %d indistinguishable from exact draws; mean MMD^2 %.4f\n\n", sum.good, seeds, sum.mean_mmd2);
  std::fflush(stdout);
  return sum;
}

TEST(Ksd2dExperiment, SteinKingDefaultsOnMog2) {
  auto target = Family("mixture", 2, {});
  Rng rng(77);
  const Points exact = Draw(*target, 4000, rng);
  const double h = std::sqrt(MedianPairwiseSquaredDistance(exact) / 2.0);
  double null_max = 0;
  for (int t = 0; t < 20; ++t) null_max = std::max(null_max, UnbiasedMmd2(Draw(*target, 500, rng), exact, h));
  std::printf("\nStein KiNG on MoG2, 500 particles, 1000 steps; null: the largest MMD^2 of 20 exact samples %.4f\n\n",
              null_max);
  // The defaults: every seed spreads over both modes at the target's scale (no stall between them), and
  // most end indistinguishable from exact draws (9 of 12, 2026-12-06; asserted with a seed's margin); the
  // others split up to 60/40 (asserted: within 62/38). A flow driven by the score sees a mixture's weights
  // only through the particles between its modes.
  const Mog2Summary defaults = RunMog2Seeds("defaults", {}, 12, exact, h, null_max);
  EXPECT_GE(defaults.good, 8);
  EXPECT_GT(defaults.min_std, 2.0);
  EXPECT_LT(defaults.max_std, 2.2);
  EXPECT_LT(defaults.max_imbalance, 0.12);
  // ridge 0.01 weights the step toward the plain gradient and splits the particles more evenly (11 of 12);
  // TheSixDensities asserts its price, a slower approach on the Gaussian and rosenbrock.
  const Mog2Summary ridge = RunMog2Seeds("ridge 0.01", {{"ridge", "0.01"}}, 12, exact, h, null_max);
  EXPECT_GE(ridge.good, 10);
  EXPECT_GE(ridge.good, defaults.good);
  // The old default, test functions as wide as KiNG's features (median-scaled:0.5), satisfies the Stein
  // identity before q = p: seeds stall between the modes (3 of 6) or end off balance (1 of 6 good, mean
  // MMD^2 0.081).
  const Mog2Summary wide = RunMog2Seeds("feature_bandwidth median-scaled:0.5 (the old default)",
                                        {{"feature_bandwidth", "median-scaled:0.5"}}, 6, exact, h, null_max);
  EXPECT_LE(wide.good, 2);
  EXPECT_GE(wide.stalled, 2);
  EXPECT_GT(wide.mean_mmd2, 5 * null_max);
}

}  // namespace
}  // namespace sampled::experiments
