// 003 Table 1's neural-sampler rows at a scaled size: KL- and Fisher-trained samplers on the six 2-D densities,
// KSD (IMQ) of 500 fresh draws, mean over 20 repeats, at the end of training and the minimum over the
// checkpoints (every 250 iterations), as 003 reports it; beside the KSD of 500 exact draws (donut: 500 chains
// of a long MALA run, it has no exact sampler).
//
// Scaled settings (003: batch 5000, 4 x 400 ELU, Adam 2e-5 for both networks, 10k iterations, 5 score steps):
// batch 500, three hidden layers of 64 (ELU), Adam 3e-4 for the sampler and 1e-3 for the score network (the
// score network must track the moving sampler), 2000 iterations, 5 score steps of ssm. Chosen from three
// runs (docs/experiments.md): 128 wide with 1e-3 for both ended noisy (donut's final KSD 1.8x its minimum).
// SAMPLED_NS_ITERATIONS / _WIDTH / _LR / _SCORE_LR override them; SAMPLED_NS_PAPER=1 runs 003's settings
// (the `paper` label).
#include <cstdlib>
#include <map>

#include <gtest/gtest.h>

#include "absl/strings/str_format.h"
#include "core/metrics/metric.h"
#include "core/training/sampler.h"
#include "core/training/trainer.h"
#include "tests/experiments/experiment_util.h"

namespace sampled::experiments {
namespace {

const char* const kTargets[] = {"gaussian", "mixture", "rosenbrock", "donut", "funnel", "squiggle"};
constexpr int kRepeats = 20;
constexpr int64_t kDraws = 500;

// 003 Table 1 (mean ± sd) for KL-NS and Fisher-NS.
const std::map<std::string, std::vector<std::string>> kPaper = {
    {"kl", {"0.098 ± 0.018", "0.097 ± 0.017", "0.121 ± 0.026", "0.110 ± 0.023", "0.108 ± 0.018", "0.123 ± 0.023"}},
    {"fisher", {"0.108 ± 0.015", "0.126 ± 0.022", "0.151 ± 0.045", "0.207 ± 0.027", "0.303 ± 0.056", "0.146 ± 0.024"}}};

bool Paper() { return std::getenv("SAMPLED_NS_PAPER") != nullptr; }

double EnvDouble(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atof(v) : fallback;
}

int64_t Iterations() {
  if (const char* v = std::getenv("SAMPLED_NS_ITERATIONS")) return std::atoll(v);
  return Paper() ? 10000 : 2000;
}

double MeanKsd(const std::function<Points(int)>& draws, const Target& target) {
  double sum = 0;
  for (int r = 0; r < kRepeats; ++r) {
    auto ksd = KernelSteinDiscrepancyMetric().Compute(draws(r), target, MetricOptions());
    EXPECT_TRUE(ksd.ok());
    sum += *ksd;
  }
  return sum / kRepeats;
}

// KSD of 500 exact draws (donut: of 500 independent MALA chains after 2000 steps of 0.03).
double ReferenceKsd(const std::string& name) {
  auto target = Family(name, 2, {});
  if (target->can_sample()) {
    return MeanKsd([&](int r) { Rng rng(900 + r); return Draw(*target, kDraws, rng); }, *target);
  }
  return MeanKsd(
      [&](int r) {
        FlowConfig c;
        c.method = "mala";
        c.step_size = 0.03;
        c.seed = 700 + r;
        c.threads = 2;
        auto flow = CreateFlow(c, target);
        InitialParticles init;
        init.count = kDraws;
        auto state = MakeInitialState(init, 2, 800 + r);
        StepStats stats;
        for (int i = 0; i < 2000; ++i) EXPECT_TRUE((*flow)->Step(*state, &stats).ok());
        return state->particles;
      },
      *target);
}

struct Result {
  double final_ksd = 0, min_ksd = 0;
};

Result Train(const std::string& method, const std::string& name) {
  auto target = Family(name, 2, {});
  training::TrainConfig c;
  c.method = method;
  if (!Paper()) {
    const int64_t width = static_cast<int64_t>(EnvDouble("SAMPLED_NS_WIDTH", 64));
    c.hidden = std::vector<int64_t>{width, width, width};
    c.batch = 500;
    c.lr = EnvDouble("SAMPLED_NS_LR", 3e-4);
    c.score_lr = EnvDouble("SAMPLED_NS_SCORE_LR", 1e-3);
  }
  c.seed = 1;
  c.threads = 2;
  auto settings = training::ResolveTrainConfig(c, *target);
  EXPECT_TRUE(settings.ok()) << settings.status();
  auto state = training::MakeInitialTrainingState(*settings);
  auto trainer = training::CreateTrainer(*settings, target);
  const auto ksd_now = [&] {
    return MeanKsd(
        [&](int r) {
          PointsF x;
          training::Draw(settings->sampler, state->sampler.params, 5000 + r, kDraws, 2, &x);
          return Points(x.cast<double>());
        },
        *target);
  };
  Result out;
  out.min_ksd = std::numeric_limits<double>::infinity();
  const int64_t iterations = Iterations();
  for (int64_t i = 1; i <= iterations; ++i) {
    absl::Status s = (*trainer)->Step(*state, nullptr);
    if (!s.ok()) {
      ADD_FAILURE() << method << " on " << name << ": " << s;
      out.final_ksd = out.min_ksd = std::numeric_limits<double>::infinity();
      return out;
    }
    if (i % 250 == 0 || i == iterations) out.min_ksd = std::min(out.min_ksd, ksd_now());
  }
  out.final_ksd = ksd_now();
  return out;
}

TEST(NeuralSamplerExperiment, Table1) {
  std::printf("\n003 Table 1, neural samplers (%s, %lld iterations): KSD (IMQ) of 500 draws, mean of 20\n",
              Paper() ? "003's settings" : "scaled: batch 500, 3 x 64 ELU, Adam 3e-4 / 1e-3", static_cast<long long>(Iterations()));
  std::printf("| sampler | gaussian | mog2 | rosenbrock | donut | funnel | squiggle |\n| --- | --- | --- | --- | --- | --- | --- |\n");
  std::vector<double> reference;
  std::string ref_row = "| 500 exact draws (donut: MALA) |";
  for (const char* t : kTargets) {
    reference.push_back(ReferenceKsd(t));
    absl::StrAppendFormat(&ref_row, " %.3f |", reference.back());
  }
  std::printf("%s\n", ref_row.c_str());
  std::map<std::string, std::vector<Result>> results;
  std::vector<std::string> methods = {"kl", "fisher"};
  if (std::getenv("SAMPLED_NS_KL_ONLY") != nullptr) methods = {"kl"};
  for (const std::string& method : methods) {
    std::string final_row = absl::StrFormat("| %s final |", method), min_row = absl::StrFormat("| %s min |", method);
    for (const char* t : kTargets) {
      const Result r = Train(method, t);
      results[method].push_back(r);
      absl::StrAppendFormat(&final_row, " %.3f |", r.final_ksd);
      absl::StrAppendFormat(&min_row, " %.3f |", r.min_ksd);
    }
    std::string paper = absl::StrFormat("| %s-NS (003, min) |", method == "kl" ? "KL" : "Fisher");
    for (const std::string& v : kPaper.at(method)) paper += " " + v + " |";
    std::printf("%s\n%s\n%s\n", final_row.c_str(), min_row.c_str(), paper.c_str());
    std::fflush(stdout);
  }
  // The claim: on at least five of the six densities the KL sampler's final KSD is within 1.25x of
  // the KSD of 500 exact draws.
  int within = 0;
  for (size_t t = 0; t < std::size(kTargets); ++t) within += results["kl"][t].final_ksd <= 1.25 * reference[t];
  EXPECT_GE(within, 5) << "KL samplers within 1.25x of exact draws on " << within << " of 6 densities";
}

}  // namespace
}  // namespace sampled::experiments
