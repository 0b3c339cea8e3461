// Every flow method at its defaults, untuned, as a user first meets it: 256 particles from the default
// initialisation N(0, I) toward a 10-D Gaussian N(1, diag(s^2)) with s^2 from 0.5 to 2 (|mean| = 3.2, so
// the particles have to travel), 500 steps; the data methods get 256 draws of it, the density methods its
// exact score. A run is judged by the MMD to 4096 fresh target draws (Gaussian kernel, h^2 = median D^2 / 2
// of the fresh draws) against the equal-distribution null: the largest MMD of 256 independent target draws
// over 50 trials. Each method must end within kFactor of that null, but for one known failure, printed and
// not asserted: wgf on a density target (its kernel estimate of q's score is that of q smoothed at the
// bandwidth, so q * N(0, h^2) = p is its fixed point, which has no solution when p is narrower than the kernel:
// the particles contract; with a smaller median-scaled factor the estimate turns too noisy to step; open in
// issue 12). SAMPLED_DEFAULTS_METHOD, _STEP, _OPTIMIZER, _BANDWIDTH, _MMD (mmd's velocity) and _OPTIONS
// (method options, "k=v,k=v") run one method with other settings, to try them.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "tests/experiments/experiment_util.h"

namespace sampled::experiments {
namespace {

constexpr int64_t kDim = 10, kParticles = 256, kSteps = 500;
constexpr double kFactor = 2.0;

std::shared_ptr<const Target> Gaussian() {
  std::vector<double> stds;
  for (int i = 0; i < kDim; ++i) stds.push_back(std::sqrt(0.5 + 1.5 * i / (kDim - 1)));
  return Family("gaussian", kDim, {{"mean", std::vector<double>(kDim, 1.0)}, {"std", stds}});
}

double Mmd(const Points& x, const Points& fresh, double h) {
  return std::sqrt(std::max(0.0, UnbiasedMmd2(x, fresh, h)));
}

TEST(FlowDefaultsExperiment, EveryMethodReachesTheNullUntuned) {
  auto density = Gaussian();
  Rng rng(12);
  const Points data = Draw(*density, kParticles, rng), fresh = Draw(*density, 4096, rng);
  auto samples = DataTarget(data);
  const double h = std::sqrt(MedianPairwiseSquaredDistance(fresh) / 2.0);
  double null = 0;
  for (int trial = 0; trial < 50; ++trial) null = std::max(null, Mmd(Draw(*density, kParticles, rng), fresh, h));
  InitialParticles init;
  init.count = kParticles;
  const auto start = MakeInitialState(init, kDim, 3);
  ASSERT_TRUE(start.ok());
  std::printf("\nevery method at its defaults: %lld particles, N(0, I) -> N(1, diag(0.5..2)) in %lld-D, %lld steps; "
              "null (max over 50 trials) %.4f, MMD at the start %.4f\n",
              static_cast<long long>(kParticles), static_cast<long long>(kDim), static_cast<long long>(kSteps), null,
              Mmd(start->particles, fresh, h));
  std::printf("| method | target | final MMD | / null | min MMD (every 50 steps) | seconds |\n"
              "| --- | --- | --- | --- | --- | --- |\n");
  const char* only = std::getenv("SAMPLED_DEFAULTS_METHOD");  // one method, e.g. to try its options
  const char* velocity = std::getenv("SAMPLED_DEFAULTS_MMD");
  const char* step = std::getenv("SAMPLED_DEFAULTS_STEP");
  const char* optimizer = std::getenv("SAMPLED_DEFAULTS_OPTIMIZER");
  const char* bandwidth = std::getenv("SAMPLED_DEFAULTS_BANDWIDTH");
  const char* options = std::getenv("SAMPLED_DEFAULTS_OPTIONS");  // method options, e.g. "ridge=0.01,basis=100"
  for (const FlowMethod* method : FlowMethods()) {
    if (only != nullptr && method->name != only) continue;
    for (const bool on_data : {true, false}) {
      if ((on_data && method->needs_density) || (!on_data && method->needs_samples)) continue;
      FlowConfig c;
      c.method = method->name;
      c.seed = 5;
      c.threads = 2;
      c.schedule_steps = kSteps;
      if (velocity != nullptr && method->name == "mmd") c.options["velocity"] = velocity;
      if (step != nullptr) c.step_size = std::atof(step);
      if (optimizer != nullptr) c.optimizer = optimizer;
      if (bandwidth != nullptr) c.bandwidth = bandwidth;
      if (options != nullptr) {
        for (absl::string_view kv : absl::StrSplit(options, ',', absl::SkipEmpty())) {
          std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
          c.options[p.first] = p.second;
        }
      }
      auto flow = CreateFlow(c, on_data ? samples : density);
      ASSERT_TRUE(flow.ok()) << method->name << ": " << flow.status();
      FlowState state = *start;
      absl::Status status;
      double min_mmd = Mmd(state.particles, fresh, h);
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t step = 1; step <= kSteps && status.ok(); ++step) {
        StepStats stats;
        status = (*flow)->Step(state, &stats);
        if (step % 50 == 0 && status.ok()) min_mmd = std::min(min_mmd, Mmd(state.particles, fresh, h));
      }
      const double final_mmd = Mmd(state.particles, fresh, h);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("| %s | %s | %.4f | %.2f | %.4f | %.1f |%s\n", method->name.c_str(), on_data ? "data" : "density",
                  final_mmd, final_mmd / null, min_mmd, seconds, status.ok() ? "" : (" " + status.ToString()).c_str());
      std::fflush(stdout);
      EXPECT_TRUE(status.ok()) << method->name << ": " << status;
      if (method->name == "wgf" && !on_data) continue;  // the known failure above
      EXPECT_LT(final_mmd, kFactor * null) << method->name << (on_data ? " on data" : " on the density");
    }
  }
}

}  // namespace
}  // namespace sampled::experiments
