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
#include <string>

#include <gtest/gtest.h>

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

double FinalKsd(const Method& m, const std::string& target_name, int seed) {
  auto target = Family(target_name, 2, {});
  FlowConfig c;
  c.method = m.flow;
  c.step_size = m.step_size;
  if (m.optimizer != nullptr) c.optimizer = m.optimizer;
  if (c.method == "svgd") c.bandwidth = "svgd-median";  // 003's SVGD (Liu & Wang's rule), as the table was run
  if (std::string(m.flow) == "hmc") c.options = {{"leapfrog", "10"}};
  c.seed = seed;
  c.threads = 2;
  auto flow = CreateFlow(c, target);
  EXPECT_TRUE(flow.ok()) << flow.status();
  InitialParticles init;
  init.count = 500;
  auto state = MakeInitialState(init, 2, 500 + seed);
  EXPECT_TRUE((*flow)->CheckState(*state).ok());
  StepStats stats;
  for (int i = 0; i < 500; ++i) {
    absl::Status s = (*flow)->Step(*state, &stats);
    if (!s.ok()) {
      ADD_FAILURE() << m.name << " on " << target_name << ": " << s;
      return std::numeric_limits<double>::infinity();
    }
  }
  auto ksd = KernelSteinDiscrepancyMetric().Compute(state->particles, *target, MetricOptions());
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
  // Stein KiNG (docs/experiments.md): competitive on the Gaussian (below LD) and the squiggle (within 25% of
  // LD), behind LD on the multimodal and curved densities (mog2, rosenbrock, donut).
  EXPECT_LT(means["Stein KiNG"][0], means["LD"][0]);
  EXPECT_LT(means["Stein KiNG"][5], 1.25 * means["LD"][5]);
  for (size_t t : {1u, 2u, 3u}) EXPECT_GT(means["Stein KiNG"][t], means["LD"][t]) << kTargets[t];
}

}  // namespace
}  // namespace sampled::experiments
