// 003 Table 1's neural-sampler rows at a scaled size, through the service (an in-process server on
// 127.0.0.1:0 and the C++ client): training jobs on the six 2-D densities with KL and Fisher training, each
// evaluating KSD of a fresh draw every 250 iterations (the job keeps the best checkpoint); then KSD (IMQ) of
// 500 fresh draws by Evaluate on the sampler's id, mean over 20 seeds, of the final weights ("final") and of
// the best checkpoint ("min", 003's pick of the lowest over checkpoints); beside the KSD of 500 exact draws
// (donut: 500 chains of a long MALA run, it has no exact sampler).
//
// Scaled settings (003: batch 5000, 4 x 400 ELU, Adam 2e-5 for both networks, 10k iterations, 5 score steps):
// batch 500, three hidden layers of 64 (ELU), Adam 3e-4 for the sampler and 1e-3 for the score network (the
// score network must track the moving sampler), 2000 iterations, 5 score steps of ssm. Chosen from three
// runs (docs/experiments.md): 128 wide with 1e-3 for both ended noisy (donut's final KSD 1.8x its minimum).
// SAMPLED_NS_ITERATIONS / _WIDTH / _LR / _SCORE_LR override them; SAMPLED_NS_PAPER=1 runs 003's settings
// (the `paper` label). The test command trains Fisher samplers only on the densities its assertions read;
// SAMPLED_NS_FULL_TABLE=1 runs every cell.
#include <cmath>
#include <cstdlib>
#include <map>

#include <gtest/gtest.h>

#include "absl/strings/str_format.h"
#include "core/metrics/metric.h"
#include "core/training/sampler.h"
#include "core/training/trainer.h"
#include "tests/experiments/experiment_util.h"
#include "tests/server/test_server.h"

namespace sampled::experiments {
namespace {

namespace v1 = ::sampled::v1;

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

Result Train(client::SampledClient& c, const std::string& method, const std::string& name) {
  const std::string session = c.CreateSession(method + "-" + name)->id();
  auto target = c.DefineTarget(session, name, name, 2, {});
  EXPECT_TRUE(target.ok()) << target.status();
  v1::TrainSpec spec;
  spec.set_method(method);
  spec.set_steps(Iterations());
  if (!Paper()) {
    const int64_t width = static_cast<int64_t>(EnvDouble("SAMPLED_NS_WIDTH", 64));
    for (int i = 0; i < 3; ++i) spec.add_hidden(width);
    spec.set_batch(500);
    spec.set_lr(EnvDouble("SAMPLED_NS_LR", 3e-4));
    spec.set_score_lr(EnvDouble("SAMPLED_NS_SCORE_LR", 1e-3));
  }
  spec.set_seed(1);
  spec.set_eval_every(250);
  spec.set_eval_draws(kDraws);
  auto job = c.StartTraining(session, target->id(), spec);
  EXPECT_TRUE(job.ok()) << job.status();
  Result out;
  out.final_ksd = out.min_ksd = std::numeric_limits<double>::infinity();
  if (!job.ok()) return out;
  auto done = c.WatchJob(job->id(), nullptr);
  if (!done.ok() || done->state() != v1::JOB_STATE_SUCCEEDED) {
    ADD_FAILURE() << method << " on " << name << ": " << (done.ok() ? done->error().message() : done.status().ToString());
    return out;
  }
  const auto mean_ksd = [&](bool best) {
    double sum = 0;
    for (int r = 0; r < kRepeats; ++r) {
      client::SampleSource source;
      source.sampler_id = done->sampler_id();
      source.sampler_draws = kDraws;
      source.best_checkpoint = best;
      auto e = c.Evaluate(session, target->id(), source, {"ksd"}, 5000 + r);
      EXPECT_TRUE(e.ok()) << e.status();
      sum += e.ok() ? e->metrics().at("ksd") : std::numeric_limits<double>::infinity();
    }
    return sum / kRepeats;
  };
  out.final_ksd = mean_ksd(false);
  out.min_ksd = std::min(out.final_ksd, mean_ksd(true));
  return out;
}

TEST(NeuralSamplerExperiment, Table1) {
  std::printf("\n003 Table 1, neural samplers (%s, %lld iterations): KSD (IMQ) of 500 draws, mean of 20\n",
              Paper() ? "003's settings" : "scaled: batch 500, 3 x 64 ELU, Adam 3e-4 / 1e-3", static_cast<long long>(Iterations()));
  std::printf("| sampler | gaussian | mog2 | rosenbrock | donut | funnel | squiggle |\n| --- | --- | --- | --- | --- | --- | --- |\n");
  testing::TestServer server;  // 127.0.0.1:0, stopped at the end of the test
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
      // In the test command Fisher training runs on the three densities its assertions read (within CI
      // time); SAMPLED_NS_FULL_TABLE=1 (and the paper settings) run the whole row for docs/experiments.md.
      const bool asserted = method != "fisher" || std::string(t) == "donut" || std::string(t) == "funnel" ||
                            std::string(t) == "squiggle";
      if (!asserted && !Paper() && std::getenv("SAMPLED_NS_FULL_TABLE") == nullptr) {
        results[method].push_back(Result{std::nan(""), std::nan("")});
        absl::StrAppend(&final_row, " - |");
        absl::StrAppend(&min_row, " - |");
        continue;
      }
      const Result r = Train(*server.client, method, t);
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
  if (results.count("fisher") == 0 || Paper()) return;
  // docs/experiments.md: as in 003, Fisher training is behind KL training on the hard densities, and more
  // than 1.5x the exact draws' KSD there (donut, funnel, squiggle: indices 3, 4, 5).
  for (size_t t : {3, 4, 5}) {
    EXPECT_GT(results["fisher"][t].final_ksd, results["kl"][t].final_ksd) << kTargets[t];
    EXPECT_GT(results["fisher"][t].final_ksd, 1.5 * reference[t]) << kTargets[t];
  }
}

}  // namespace
}  // namespace sampled::experiments
