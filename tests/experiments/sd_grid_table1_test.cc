// 002 Table 1 in our terms: the 25-Gaussian grid of 002 Sec. 7.2.1 (means {-4,-2,0,2,4}^2, std 0.3, 1024
// points), 1024 particles from N((-8, 8), I), 1000 steps at step size 0.1, under the 16 conditions
// ADAGRAD x BATCH (128) x CONST x ANNEAL, for SD flow, MMD flow (Gaussian kernel, 002 Eq. 51) and SVGD (the
// grid's exact score), 2 seeds for SD and 1 for the others (3 each for the documented table). CONST=Y: the footnote-15 median bandwidth over the initial particles, held
// (`initial-median`, 002 Sec. 7.1: "the median squared pairwise distance among the source (base) data"; the
// environment's SAMPLED_TABLE1_CONSTANT=median runs the per-step reading instead); CONST=N: the cosine schedule
// sigma^2 10 -> 0.5 (SAMPLED_TABLE1_ROWS=constant runs the CONST=Y rows only). ANNEAL=Y: noise injected at the bandwidth; ANNEAL=N: none. A run converges when its
// minimum CFD (every 10 steps, K = 256 seeded frequencies) falls below the equal-distribution threshold
// (the largest CFD between two independent 1024-point samples of the grid over 200 trials).
#include <cstdlib>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_format.h"
#include "tests/experiments/experiment_util.h"

namespace sampled::experiments {
namespace {

struct Condition {
  bool adagrad, batch, constant, anneal;
};

// 002 Table 1 (convergence of 5 trials) and Table 3 (mean minimum CFD), rows in this order.
struct PaperRow {
  int sd, mmd, svgd;
  double sd_cfd, mmd_cfd, svgd_cfd;
};
const PaperRow kPaper[16] = {
    {1, 0, 0, 0.0007, 0.6129, 0.8495}, {1, 0, 0, 0.0007, 0.6111, 0.8521}, {1, 0, 0, 0.0007, 0.5816, 0.7878},
    {1, 0, 0, 0.0009, 0.5837, 0.7978}, {1, 0, 0, 0.0374, 0.9382, 0.7944}, {1, 0, 0, 0.0357, 0.9365, 0.7863},
    {1, 0, 0, 0.0371, 0.9230, 0.7454}, {1, 0, 0, 0.0389, 0.9249, 0.7494}, {1, 0, 1, 0.0006, 0.1584, 0.0033},
    {1, 0, 1, 0.0006, 0.1622, 0.0031}, {1, 0, 1, 0.0006, 0.1566, 0.0029}, {1, 0, 1, 0.0006, 0.1553, 0.0028},
    {1, 0, 1, 0.0359, 0.1884, 0.0412}, {1, 0, 1, 0.0399, 0.1895, 0.0414}, {1, 0, 1, 0.0381, 0.1892, 0.0377},
    {1, 0, 1, 0.0385, 0.1902, 0.0359}};

// 3 seeds for every method in the documented table (SAMPLED_TABLE1_SEEDS=3); in the test command 2 for SD
// flow and 1 for MMD flow and SVGD, whose documented columns are all-or-none per condition (within CI time).
int Seeds(const std::string& method) {
  const char* seeds = std::getenv("SAMPLED_TABLE1_SEEDS");
  if (seeds != nullptr && std::atoi(seeds) > 0) return std::atoi(seeds);
  return method == "sd" ? 2 : 1;
}

// The CONST=Y bandwidth rule: initial-median unless the environment names another.
std::string ConstantRule() {
  const char* rule = std::getenv("SAMPLED_TABLE1_CONSTANT");
  return rule != nullptr && *rule != '\0' ? rule : "initial-median";
}
constexpr int kSteps = 1000;

std::shared_ptr<const Target> Grid() {
  std::vector<double> means;
  for (int i = -2; i <= 2; ++i)
    for (int j = -2; j <= 2; ++j) {
      means.push_back(2.0 * i);
      means.push_back(2.0 * j);
    }
  return Family("mixture", 2, {{"means", means}, {"std", {0.3}}});
}

struct RunResult {
  double min_cfd = 1e9;
  int occupied = 0;         // grid components holding at least 1% of the particles at the end
  double bandwidth = 0;     // the kernel bandwidth of the last step
};

// How many of the 25 grid components hold at least 1% of the particles (nearest mean within 1).
int OccupiedComponents(const Points& particles) {
  std::vector<int> counts(25, 0);
  for (int64_t i = 0; i < particles.rows(); ++i) {
    const double a = std::round(particles(i, 0) / 2.0), b = std::round(particles(i, 1) / 2.0);
    if (std::abs(a) > 2 || std::abs(b) > 2) continue;
    if (std::hypot(particles(i, 0) - 2 * a, particles(i, 1) - 2 * b) > 1.0) continue;
    ++counts[static_cast<int>((a + 2) * 5 + (b + 2))];
  }
  int occupied = 0;
  for (int c : counts) occupied += c >= particles.rows() / 100;
  return occupied;
}

// One run: its minimum CFD (every 10 steps), and how it ended.
RunResult RunCondition(const std::string& method, const Condition& c, int seed,
                                       const std::shared_ptr<const Target>& density,
                                       const std::shared_ptr<const Target>& data, const Points& frequencies) {
  FlowConfig f;
  f.method = method;
  f.step_size = 0.1;
  f.optimizer = c.adagrad ? "adagrad" : "sgd";
  f.batch_size = c.batch ? 128 : 0;
  f.bandwidth = c.constant ? ConstantRule() : "cosine:10,0.5";
  f.noise = c.anneal ? "bandwidth" : "none";
  f.schedule_steps = kSteps;
  f.dtype = DType::kFloat32;
  f.seed = seed;
  f.threads = 2;
  auto flow = CreateFlow(f, method == "svgd" ? density : data);
  EXPECT_TRUE(flow.ok()) << flow.status();
  InitialParticles init;
  init.count = 1024;
  init.mean = {-8.0, 8.0};
  auto state = MakeInitialState(init, 2, 100 + seed);
  StepStats stats;
  RunResult r;
  for (int step = 1; step <= kSteps; ++step) {
    if (!(*flow)->Step(*state, &stats).ok()) break;  // a diverged run keeps its best CFD
    if (step % 10 == 0) {
      r.min_cfd = std::min(r.min_cfd, CharacteristicFunctionDistance(state->particles, *data->samples(), frequencies));
    }
  }
  r.occupied = OccupiedComponents(state->particles);
  r.bandwidth = stats.bandwidth;
  return r;
}

TEST(SdGridTable1Experiment, SixteenConditions) {
  auto density = Grid();
  Rng rng(2023);
  auto data = DataTarget(Draw(*density, 1024, rng));
  const Points frequencies = CfdFrequencies(256, 2, 7);
  double threshold = 0;
  for (int trial = 0; trial < 200; ++trial) {
    threshold = std::max(threshold, CharacteristicFunctionDistance(Draw(*density, 1024, rng), Draw(*density, 1024, rng),
                                                                   frequencies));
  }
  const std::string constant_rule = ConstantRule();
  const int seeds = Seeds("sd"), baseline_seeds = Seeds("svgd");
  std::printf("\n002 Table 1 in our terms (threshold %.4f; paper 0.0651 over 1000 trials; CONST=Y: %s)\n", threshold,
              constant_rule.c_str());
  std::printf(
      "| ADAGRAD | BATCH | CONST | ANNEAL | SD | MMD | SVGD | SD min CFD | MMD min CFD | SVGD min CFD | paper SD/MMD/SVGD "
      "| components held SD/MMD/SVGD | final bandwidth SD/MMD/SVGD |\n"
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  const char* rows = std::getenv("SAMPLED_TABLE1_ROWS");
  const bool constant_only = rows != nullptr && std::string(rows) == "constant";
  int row = 0;
  for (bool adagrad : {false, true}) {
    for (bool batch : {false, true}) {
      for (bool constant : {false, true}) {
        for (bool anneal : {false, true}) {
          const Condition c{adagrad, batch, constant, anneal};
          if (constant_only && !constant) {
            ++row;
            continue;
          }
          std::map<std::string, int> converged;
          std::map<std::string, std::vector<double>> mins, occupied, bandwidth;
          for (const char* method : {"sd", "mmd-gaussian", "svgd"}) {
            for (int seed = 0; seed < Seeds(method); ++seed) {
              const RunResult r = RunCondition(method, c, seed, density, data, frequencies);
              mins[method].push_back(r.min_cfd);
              occupied[method].push_back(r.occupied);
              bandwidth[method].push_back(r.bandwidth);
              converged[method] += r.min_cfd < threshold;
            }
          }
          const PaperRow& p = kPaper[row++];
          auto mean = [&](std::map<std::string, std::vector<double>>& m, const char* k) { return Summarise(m[k]).mean; };
          std::printf(
              "| %s | %s | %s | %s | %d/%d | %d/%d | %d/%d | %.4f | %.4f | %.4f | %d/%d/%d (CFD %.4f / %.4f / %.4f) "
              "| %.0f / %.0f / %.0f | %.2f / %.2f / %.2f |\n",
              adagrad ? "Y" : "N", batch ? "Y" : "N", constant ? "Y" : "N", anneal ? "Y" : "N", converged["sd"], seeds,
              converged["mmd-gaussian"], baseline_seeds, converged["svgd"], baseline_seeds, mean(mins, "sd"), mean(mins, "mmd-gaussian"),
              mean(mins, "svgd"), p.sd, p.mmd, p.svgd, p.sd_cfd, p.mmd_cfd, p.svgd_cfd, mean(occupied, "sd"),
              mean(occupied, "mmd-gaussian"), mean(occupied, "svgd"), mean(bandwidth, "sd"),
              mean(bandwidth, "mmd-gaussian"), mean(bandwidth, "svgd"));
          std::fflush(stdout);
          // SD converges under every cosine schedule; under the constant schedule in every condition with the
          // initial-particle median (002's 16 of 16), only with AdaGrad with the per-step median.
          if (!constant || adagrad || constant_rule == "initial-median") {
            EXPECT_EQ(converged["sd"], seeds) << "condition row " << row;
          }
          // As documented: MMD flow converges with AdaGrad on the full data and with AdaGrad + cosine on
          // batches, in no other condition; SVGD in none.
          if (constant_rule == "initial-median") {
            EXPECT_EQ(converged["mmd-gaussian"], adagrad && (!batch || !constant) ? baseline_seeds : 0) << "condition row " << row;
          }
          EXPECT_EQ(converged["svgd"], 0) << "condition row " << row;
        }
      }
    }
  }
}

}  // namespace
}  // namespace sampled::experiments
