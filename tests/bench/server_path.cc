#include "tests/bench/server_path.h"
#include "tests/bench/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/cpp/sampled_client.h"
#include "core/common/rng.h"
#include "core/flows/flow.h"
#include "core/flows/flow_state.h"
#include "core/kernels/pairwise_median.h"
#include "core/targets/empirical_target.h"
#include "core/targets/target_family.h"
#include "tests/bench/bench_util.h"

extern char** environ;

namespace sampled::bench {
namespace {

namespace v1 = ::sampled::v1;


Points Normal(int64_t n, int64_t d, uint64_t seed, double shift) {
  Rng rng(seed);
  Points p(n, d);
  rng.FillNormal(p.data(), p.size());
  return p.array() + shift;
}

struct Case {
  std::string method;
  int64_t targets = 0, particles = 0, dim = 0;
};

std::vector<Case> ParseCases(const std::string& text) {
  std::vector<Case> cases;
  for (absl::string_view spec : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(spec, absl::ByAnyChar(":x"));
    Case c;
    if (parts.size() != 4 || !absl::SimpleAtoi(parts[1], &c.targets) || !absl::SimpleAtoi(parts[2], &c.particles) ||
        !absl::SimpleAtoi(parts[3], &c.dim)) {
      std::fprintf(stderr, "bench: bad case '%s' (METHOD:NxMxD)\n", std::string(spec).c_str());
      std::exit(2);
    }
    c.method = parts[0];
    cases.push_back(c);
  }
  return cases;
}

// The peer's svgd target (../shared/bench/peer_flows.py): 0.5 N(-2*1, I) + 0.5 N(2*1, I).
ParamMap PeerMixtureParams(int64_t d) {
  std::vector<double> means(2 * d, -2.0);
  std::fill(means.begin() + d, means.end(), 2.0);
  return {{"means", means}, {"std", {1.0}}};
}

// Median seconds of a bare step in this process: the flow as CreateFlow builds it from `config`.
double BareStepSeconds(FlowConfig config, std::shared_ptr<const Target> target, const Points& init, int repeats) {
  auto flow = CreateFlow(config, std::move(target));
  if (!flow.ok()) {
    std::fprintf(stderr, "bench: %s\n", flow.status().ToString().c_str());
    std::exit(1);
  }
  FlowState state;
  state.particles = init;
  state.rng = Rng(3);
  StepStats stats;
  (void)(*flow)->Step(state, &stats);  // warm-up: workspaces grow here
  return MedianStepSeconds(**flow, state, repeats);
}

template <typename T>
T OrDie(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    std::fprintf(stderr, "bench: %s: %s\n", what, v.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(v);
}

// The server for a mode, or null after saying why.
std::unique_ptr<ServerProcess> StartServer(const ServerPathOptions& o) {
  std::unique_ptr<ServerProcess> server = ServerProcess::Start(o.server_binary, o.threads);
  if (server == nullptr) std::fprintf(stderr, "bench: cannot start %s\n", o.server_binary.c_str());
  return server;
}

}  // namespace

int RunServerPath(const ServerPathOptions& o) {
  std::unique_ptr<ServerProcess> server = StartServer(o);
  if (server == nullptr) return 1;
  std::printf("{\"server\": \"%s\", \"log\": \"%s\"}\n", server->address().c_str(), server->blas_line().c_str());
  std::fflush(stdout);
  auto client = client::SampledClient::Connect(server->address());
  const std::string session = OrDie(client->CreateSession("bench"), "create session").id();
  for (const Case& c : ParseCases(o.cases)) {
    // The target: uploaded data (float32 on the wire, as a user's arrays usually are), or for svgd the
    // peer's mixture density.
    std::shared_ptr<const Target> local;
    std::string target_id;
    const std::string name = absl::StrCat(c.method, "-", c.targets, "x", c.dim);
    if (c.method == "svgd") {
      const ParamMap params = PeerMixtureParams(c.dim);
      local = std::shared_ptr<const Target>(*CreateAnalyticTarget("mixture", c.dim, params));
      target_id = OrDie(client->DefineTarget(session, name, "mixture", c.dim, params), "define target").id();
    } else {
      const Points x = Normal(c.targets, c.dim, 1, 2.0).cast<float>().cast<double>();
      local = std::shared_ptr<const Target>(*EmpiricalTarget::Create(x));
      target_id = OrDie(client->UploadTarget(session, name, x, DType::kFloat32), "upload").id();
    }
    // The bare default step: the method's defaults, nothing else given.
    FlowConfig config;
    config.method = c.method;
    config.threads = o.threads;
    const Points init = Normal(c.particles, c.dim, 2, 0.0);
    const int bare_repeats = c.method == "king" ? std::min(o.repeats, 5) : o.repeats;
    // This machine is noisy: bare steps, a job and StepFlow alternate over three rounds, and each is the
    // median of its rounds.
    constexpr int kRounds = 3;
    std::vector<double> bares, jobs, stepflows;
    int64_t steps = 0;
    size_t event_count = 0;
    for (int round = 0; round < kRounds; ++round) {
      const double bare = BareStepSeconds(config, local, init, bare_repeats);
      bares.push_back(bare);
      // A job with the defaults, long enough for a steady rate from its progress events.
      v1::FlowSpec spec;
      spec.set_method(c.method);
      spec.set_particle_count(c.particles);
      spec.set_seed(round);
      steps = std::clamp<int64_t>(static_cast<int64_t>(o.job_seconds / kRounds / bare), 20, 1'000'000);
      spec.set_steps(steps);
      const v1::Job started = OrDie(client->StartFlow(session, target_id, spec), "start flow");
      std::vector<std::pair<double, int64_t>> events;  // (receive time, step) while running
      const v1::Job final_job = OrDie(client->WatchJob(started.id(), [&](const v1::Job& j) {
                                        if (j.state() == v1::JOB_STATE_RUNNING && j.step() > 0) {
                                          events.push_back({Now(), j.step()});
                                        }
                                      }),
                                      "watch");
      if (final_job.state() != v1::JOB_STATE_SUCCEEDED) {
        std::fprintf(stderr, "bench: the %s job ended in state %d\n", c.method.c_str(), final_job.state());
        return 1;
      }
      event_count += events.size();
      if (events.size() >= 2 && events.back().second > events.front().second) {
        jobs.push_back((events.back().first - events.front().first) / (events.back().second - events.front().second));
      } else if (final_job.steps_per_second() > 0) {
        jobs.push_back(1.0 / final_job.steps_per_second());
      }
      // Interactive stepping: StepFlow of 20 steps, wall time per step as the client sees it.
      const double t0 = Now();
      const v1::StepFlowResponse stepped = OrDie(client->StepFlow(started.id(), 20), "step flow");
      stepflows.push_back((Now() - t0) / std::max(1, stepped.stats_size()));
    }
    const double bare = Median(bares), job = Median(jobs), stepflow = Median(stepflows);

    std::string line = absl::StrFormat(
        "{\"server_path\": \"%s\", \"targets\": %d, \"particles\": %d, \"dim\": %d, \"threads\": %d, "
        "\"bare_default_s\": %.6g, \"job_s\": %.6g, \"job_over_bare\": %.3f, \"job_steps_per_round\": %d, "
        "\"progress_events\": %d, \"stepflow_s\": %.6g, \"stepflow_over_bare\": %.3f",
        c.method, c.targets, c.particles, c.dim, o.threads, bare, job, job / bare, steps, event_count, stepflow,
        stepflow / bare);
    if (c.method == "sd") {
      // The peer's SD step uses a fixed bandwidth and noise (sigma = 1); ours takes the median rule by default.
      // What the median costs: the default estimator (a fixed subset of pairs) and the exact rule, timed on
      // the initial particles, beside the default step.
      SubsetPairMedian subset(kDefaultMedianPairs, 0);
      double sink = subset(init);
      std::vector<double> t_subset, t_exact;
      for (int r = 0; r < 10; ++r) {
        double t0 = Now();
        sink += subset(init);
        t_subset.push_back(Now() - t0);
        t0 = Now();
        sink += MedianPairwiseSquaredDistance(init, o.threads);
        t_exact.push_back(Now() - t0);
      }
      absl::StrAppendFormat(&line,
                            ", \"median_subset_s\": %.4g, \"median_exact_s\": %.4g, "
                            "\"median_share_of_default_step\": %.3f",
                            Median(t_subset), Median(t_exact), Median(t_subset) / bare);
      if (!(sink > 0)) std::fprintf(stderr, "bench: median is %g\n", sink);
      if (c.targets == 4096 && c.particles == 4096 && c.dim == 2 && o.peer_sd_4096_s > 0) {
        if (o.peer_blas == "reference") {
          line += ", \"peer_ratio\": \"refused: the peer ran on the reference BLAS; install libopenblas0-pthread\"";
        } else {
          absl::StrAppendFormat(&line, ", \"peer_tuned_s\": %.6g, \"peer_blas\": \"%s\", \"job_speedup_vs_tuned\": %.3g",
                                o.peer_sd_4096_s, o.peer_blas, o.peer_sd_4096_s / job);
        }
      }
    }
    line += "}";
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    (void)client->DeleteTarget(session, target_id);
  }
  (void)client->DeleteSession(session);
  return 0;
}

int RunUpload(const ServerPathOptions& o) {
  std::unique_ptr<ServerProcess> server = StartServer(o);
  if (server == nullptr) return 1;
  auto client = client::SampledClient::Connect(server->address());
  const std::string session = OrDie(client->CreateSession("upload"), "create session").id();
  constexpr int64_t kDim = 10;
  double lo = 1e300, hi = 0;
  // The connection's first megabytes run while gRPC's flow-control window is still growing (BDP probing):
  // one upload first, not reported, so that each size is measured on a connection as a client keeps it.
  {
    Points warm = Points::Constant(100'000, kDim, 0.5);
    const v1::Target t = OrDie(client->UploadTarget(session, "warm-up", warm, DType::kFloat32), "upload");
    (void)client->DeleteTarget(session, t.id());
  }
  for (int64_t values : {int64_t{1'000'000}, int64_t{10'000'000}, int64_t{100'000'000}}) {
    Points x(values / kDim, kDim);
    uint64_t state = 88172645463325252ULL;  // xorshift: filling 10^8 values must not dominate the run
    for (int64_t i = 0; i < x.size(); ++i) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      x.data()[i] = static_cast<double>(state >> 11) * 0x1.0p-53;
    }
    // The best of three uploads of the array (the machine is noisy; a quadratic assembler shows at any count).
    double seconds = 1e300;
    for (int r = 0; r < 3; ++r) {
      const double t0 = Now();
      const v1::Target t = OrDie(client->UploadTarget(session, absl::StrCat("u", values), x, DType::kFloat32), "upload");
      seconds = std::min(seconds, Now() - t0);
      (void)client->DeleteTarget(session, t.id());
    }
    const double per_value = seconds / values;
    lo = std::min(lo, per_value);
    hi = std::max(hi, per_value);
    std::printf("{\"upload\": %ld, \"dim\": %ld, \"dtype\": \"float32\", \"seconds\": %.4g, \"ns_per_value\": %.4g}\n",
                static_cast<long>(values), static_cast<long>(kDim), seconds, 1e9 * per_value);
    std::fflush(stdout);
  }
  std::printf("{\"upload_per_value_max_over_min\": %.3f}\n", hi / lo);
  return 0;
}

int RunCli(const ServerPathOptions& o) {
  std::unique_ptr<ServerProcess> server = StartServer(o);
  if (server == nullptr) return 1;
  std::vector<double> times;
  // posix_spawn, not fork: this process maps LibTorch, and copying its page tables would be timed too.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  const std::string address = server->address();
  std::vector<char*> args = {const_cast<char*>(o.samplectl_binary.c_str()), const_cast<char*>("--server"),
                             const_cast<char*>(address.c_str()), const_cast<char*>("health"), nullptr};
  for (int r = 0; r < 20; ++r) {
    const double t0 = Now();
    pid_t pid = 0;
    if (posix_spawn(&pid, o.samplectl_binary.c_str(), &actions, nullptr, args.data(), environ) != 0) {
      std::fprintf(stderr, "bench: cannot run %s\n", o.samplectl_binary.c_str());
      return 1;
    }
    int status = 0;
    waitpid(pid, &status, 0);
    times.push_back(Now() - t0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "bench: samplectl health failed\n");
      return 1;
    }
  }
  posix_spawn_file_actions_destroy(&actions);
  // Does samplectl map LibTorch? ldd lists every library it loads.
  std::string ldd;
  if (FILE* p = popen(absl::StrCat("ldd ", o.samplectl_binary).c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) ldd.append(buf, n);
    pclose(p);
  }
  const bool torch = ldd.find("libtorch") != std::string::npos || ldd.find("libc10") != std::string::npos;
  std::sort(times.begin(), times.end());
  std::printf("{\"cli\": \"samplectl health\", \"runs\": 20, \"median_s\": %.4g, \"min_s\": %.4g, \"max_s\": %.4g, "
              "\"links_torch\": %s}\n",
              Median(times), times.front(), times.back(), torch ? "true" : "false");
  return 0;
}

}  // namespace sampled::bench
