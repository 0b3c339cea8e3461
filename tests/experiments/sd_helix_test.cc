// 002 Sec. 7.2.2 in our terms: a 3-D mixture of 30 Gaussians along a helix (our stand-in for the paper's
// "question mark"), 1024 target points; 1024 particles from N(m + offset, I) with the target mean m, offset
// (5, 5, 5) or 0 (centred). 1000 steps, step size 0.1, cosine schedule sigma^2 4 -> 0.5, noise injected at
// the bandwidth, full batch, SGD; 3 seeds. SD flow must converge (minimum CFD below the equal-distribution
// threshold) in both; MMD flow (Gaussian kernel) and SVGD (exact score) are reported beside it.
#include <cmath>
#include <map>

#include <gtest/gtest.h>

#include "absl/strings/str_format.h"
#include "tests/experiments/experiment_util.h"

namespace sampled::experiments {
namespace {

std::shared_ptr<const Target> Helix() {
  std::vector<double> means;
  for (int k = 0; k < 30; ++k) {
    const double theta = 3.0 * M_PI * k / 29.0;  // one and a half turns
    means.push_back(2.0 * std::cos(theta));
    means.push_back(2.0 * std::sin(theta));
    means.push_back(-3.0 + 6.0 * k / 29.0);
  }
  return Family("mixture", 3, {{"means", means}, {"std", {0.25}}});
}

TEST(SdHelixExperiment, ConvergesOffsetAndCentred) {
  auto density = Helix();
  Rng rng(77);
  const Points data_points = Draw(*density, 1024, rng);
  auto data = DataTarget(data_points);
  const Points frequencies = CfdFrequencies(256, 3, 9);
  double threshold = 0;
  for (int trial = 0; trial < 200; ++trial) {
    threshold = std::max(threshold,
                         CharacteristicFunctionDistance(Draw(*density, 1024, rng), Draw(*density, 1024, rng), frequencies));
  }
  const Eigen::RowVectorXd mean = data_points.colwise().mean();
  std::printf("\n002 Sec. 7.2.2 in our terms: helix of 30 Gaussians in R^3 (threshold %.4f; paper 0.0612)\n", threshold);
  std::printf("| base | SD | MMD | SVGD | SD min CFD | MMD min CFD | SVGD min CFD |\n| --- | --- | --- | --- | --- | --- | --- |\n");
  for (bool offset : {true, false}) {
    std::map<std::string, int> converged;
    std::map<std::string, std::vector<double>> mins;
    for (const char* method : {"sd", "mmd-gaussian", "svgd"}) {
      for (int seed = 0; seed < 3; ++seed) {
        FlowConfig f;
        f.method = method;
        f.step_size = 0.1;
        f.noise = "cosine:4,0.5";
        f.schedule_steps = 1000;
        if (std::string(method) != "sd") f.bandwidth = "noise";
        f.dtype = DType::kFloat32;
        f.seed = seed;
        f.threads = 2;
        auto flow = CreateFlow(f, std::string(method) == "svgd" ? density : data);
        ASSERT_TRUE(flow.ok()) << flow.status();
        InitialParticles init;
        init.count = 1024;
        for (int k = 0; k < 3; ++k) init.mean.push_back(mean(k) + (offset ? 5.0 : 0.0));
        auto state = MakeInitialState(init, 3, 300 + seed);
        StepStats stats;
        double best = 1e9;
        for (int step = 1; step <= 1000; ++step) {
          if (!(*flow)->Step(*state, &stats).ok()) break;
          if (step % 10 == 0) {
            best = std::min(best, CharacteristicFunctionDistance(state->particles, data_points, frequencies));
          }
        }
        mins[method].push_back(best);
        converged[method] += best < threshold;
      }
    }
    std::printf("| %s | %d/3 | %d/3 | %d/3 | %.4f | %.4f | %.4f |\n", offset ? "offset" : "centred", converged["sd"],
                converged["mmd-gaussian"], converged["svgd"], Summarise(mins["sd"]).mean,
                Summarise(mins["mmd-gaussian"]).mean, Summarise(mins["svgd"]).mean);
    std::fflush(stdout);
    EXPECT_EQ(converged["sd"], 3) << (offset ? "offset" : "centred");
  }
}

}  // namespace
}  // namespace sampled::experiments
