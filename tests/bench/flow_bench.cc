// Flow-step benchmark: our step beside the reference peer (../shared/bench/peer_flows.py) in one run, one
// JSON line per case. See ../shared/bench/README.md for the peer and docs/performance.md for results.
//
//   sampled_flow_bench                     CPU probe, then every case against the peer (as shipped and tuned)
//   sampled_flow_bench --cases sd:4096x4096x50,king:100x100x20 --repeats 10 --threads 2 [--no-peer]
//   sampled_flow_bench --check             numerics: our step and the peer's on identical inputs
//   sampled_flow_bench --memory            one SD step with 65536 targets and particles in 2-D, peak RSS
//   sampled_flow_bench --scaling           SD step time against N, M and d, and the parts of one step
//
// Our step is the production step (core/flows): it draws its own noise and centres and casts its inputs,
// work the peer's timed step does not do. Times are medians over --repeats steps after one warm-up step.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/common/parallel.h"
#include "core/common/rng.h"
#include "core/flows/flow.h"
#include "core/flows/flow_state.h"
#include "core/flows/natural_gradient.h"
#include "core/flows/ntk_mlp.h"
#include "core/flows/sd_flow.h"
#include "core/flows/sufficient_statistics.h"
#include "core/io/array_file.h"
#include "core/kernels/kernel_sums.h"
#include "core/kernels/pairwise_median.h"
#include "core/kernels/simd_math.h"
#include "core/targets/empirical_target.h"
#include "core/targets/target_family.h"
#include "tests/bench/bench_util.h"
#include "tests/bench/server_path.h"

namespace sampled {
namespace {

namespace ei = Eigen::internal;

struct Options {
  std::string peer = SAMPLED_PEER_FLOWS_DEFAULT;
  std::string python = SAMPLED_PYTHON_DEFAULT;
  int threads = 2;
  int repeats = 20;
  bool use_peer = true;
  std::string cases = "sd:1024x1024x2,sd:4096x4096x2,sd:4096x4096x50,svgd:1024x1024x2,svgd:4096x4096x2,"
                      "svgd:4096x4096x50,mmd:1024x1024x2,mmd:4096x4096x2,mmd:4096x4096x50,king:100x100x20,"
                      "king:1024x1024x2";
  std::string dtype = "float32";
};

struct Case {
  std::string method;
  int64_t targets, particles, dim;
};

using bench::Median;
using bench::Now;

Points Normal(int64_t n, int64_t d, uint64_t seed, double shift) {
  Rng rng(seed);
  Points p(n, d);
  rng.FillNormal(p.data(), p.size());
  return p.array() + shift;
}

// The peer's svgd target: 0.5 N(-2*1, I) + 0.5 N(2*1, I).
std::shared_ptr<const Target> PeerMixture(int64_t d) {
  std::vector<double> means(2 * d, -2.0);
  std::fill(means.begin() + d, means.end(), 2.0);
  return std::shared_ptr<const Target>(*CreateAnalyticTarget("mixture", d, {{"means", means}, {"std", {1.0}}}));
}

// The flow configuration that computes the same step as the peer's method.
FlowConfig PeerConfig(const std::string& method, DType dtype) {
  FlowConfig c;
  c.method = method;
  if (method == "sd") {
    c.step_size = 0.1;
    c.noise = "constant:1";  // sigma = 1 noise and kernel bandwidth, as the peer
    c.dtype = dtype;
  } else if (method == "svgd") {
    c.step_size = 0.1;
    c.bandwidth = "svgd-median";  // the peer's (Liu & Wang's) rule; ours by default is median-scaled:0.5
    c.dtype = dtype;
  } else if (method == "mmd") {
    c.step_size = 0.1;
    c.options = {{"velocity", "mmd2-gradient"}};  // the peer's form (ours by default is 000 App. E's)
    c.dtype = dtype;
  } else if (method == "king") {
    c.step_size = 0.1;  // rbf statistics on 200 basis points, lambda = ridge = 1e-3: the peer's defaults
  }
  return c;
}

// The peer run as shipped or tuned (../shared/bench/README.md). `fixed` passes the case as is; the peer's
// sd always uses a fixed bandwidth and noise (sigma = 1).
std::optional<bench::PeerRun> PeerSeconds(const Options& o, const Case& c, bool tuned) {
  // The spin policy the bench set for itself is not the peer's.
  const std::string unset_spin = std::getenv("SAMPLED_BENCH_PEER_UNSET_SPIN") != nullptr ? "-u GOMP_SPINCOUNT " : "";
  const std::string env = tuned ? bench::TunedPeerEnv() : (unset_spin.empty() ? "" : "env " + unset_spin);
  const int repeats = c.method == "king" ? std::min(o.repeats, 5) : o.repeats;
  const std::string cmd = absl::StrFormat(
      "%s%s %s --method %s --targets %d --particles %d --dim %d --dtype %s --threads %d --repeats %d 2>/dev/null",
      env, o.python, o.peer, c.method, c.targets, c.particles, c.dim, c.method == "king" ? "float32" : o.dtype,
      o.threads, repeats);
  return bench::ParsePeerRun(bench::Capture(cmd));
}

struct Timing {
  double median = 0;
};

Timing OurSeconds(const Options& o, const Case& c) {
  const DType dtype = o.dtype == "float32" ? DType::kFloat32 : DType::kFloat64;
  FlowConfig config = PeerConfig(c.method, dtype);
  config.threads = o.threads;
  std::shared_ptr<const Target> target =
      c.method == "svgd" ? PeerMixture(c.dim)
                         : std::shared_ptr<const Target>(*EmpiricalTarget::Create(Normal(c.targets, c.dim, 1, 2.0)));
  auto flow = CreateFlow(config, target);
  if (!flow.ok()) {
    std::fprintf(stderr, "bench: %s\n", flow.status().ToString().c_str());
    std::exit(1);
  }
  FlowState state;
  state.particles = Normal(c.particles, c.dim, 2, 0.0);
  state.rng = Rng(3);
  StepStats stats;
  const double warm0 = Now();
  (void)(*flow)->Step(state, &stats);  // warm-up: workspaces grow here
  const double warm = Now() - warm0;
  // At least --repeats steps and half a second of them: a median over a few milliseconds is at the mercy of
  // this VM's noise (SD 1024^2 read 0.52 to 0.81 ms over 20 steps in three runs of one day).
  const int repeats = static_cast<int>(std::clamp<double>(std::ceil(0.5 / std::max(warm, 1e-6)), o.repeats, 5000));
  return {bench::MedianStepSeconds(**flow, state, repeats)};
}

// Kernel evaluations of one step (the work that scales with N x M).
double Pairs(const Case& c) {
  const double n = c.targets, m = c.particles;
  if (c.method == "sd" || c.method == "mmd") return m * (n + m);
  return m * m;  // svgd, king
}

// The CPU probe: SIMD exp and FMA throughput per core, and how much a second thread adds.
struct Probe {
  double exp_per_s = 0;   // float32 exps per second on one core
  double fma_per_s = 0;   // float32 FMAs per second on one core
  double two_thread_scaling = 0;  // (work per second on 2 threads) / (on 1 thread)
};

// The exp the kernel sums use (2^t, t <= 0), in independent chains.
double ExpLoop(int64_t iterations, float start) {
  using Packet = ei::packet_traits<float>::type;
  constexpr int kChains = 8;
  Packet x[kChains];
  for (int k = 0; k < kChains; ++k) x[k] = ei::pset1<Packet>(start - 0.01f * k);
  const Packet shift = ei::pset1<Packet>(-1.0f);
  for (int64_t i = 0; i < iterations; ++i) {
    for (int k = 0; k < kChains; ++k) x[k] = ei::padd(FastExp2(x[k]), shift);  // stays in (-1, 0)
  }
  float s = 0;
  for (int k = 0; k < kChains; ++k) s += ei::predux(x[k]);
  return s;
}

// Each rate is the best of five trials: the lower bound is then the machine's best, not a trial the
// second vCPU happened to slow down.
Probe RunProbe() {
  constexpr int P = ei::unpacket_traits<ei::packet_traits<float>::type>::size;
  constexpr int kTrials = 5;
  Probe p;
  volatile double sink = 0;
  const int64_t exp_iters = 4'000'000, fma_iters = 20'000'000;
  for (int trial = 0; trial < kTrials; ++trial) {
    // Distinct start values keep the compiler from merging the calls.
    double t0 = Now();
    sink = sink + ExpLoop(exp_iters, -0.5f);
    p.exp_per_s = std::max(p.exp_per_s, static_cast<double>(exp_iters) * 8 * P / (Now() - t0));
    t0 = Now();
    sink = sink + bench::FmaLoop(fma_iters, 0.5f);
    p.fma_per_s = std::max(p.fma_per_s, static_cast<double>(fma_iters) * 12 * P / (Now() - t0));
    t0 = Now();
    sink = sink + ExpLoop(exp_iters, -0.6f);
    const double one = Now() - t0;
    double other_sink = 0;
    t0 = Now();
    std::thread other([&] { other_sink = ExpLoop(exp_iters, -0.7f); });
    sink = sink + ExpLoop(exp_iters, -0.8f);
    other.join();
    sink = sink + other_sink;
    const double two = Now() - t0;
    p.two_thread_scaling = std::max(p.two_thread_scaling, std::min(2.0, 2.0 * one / two));
  }
  return p;
}

int RunBenchmark(const Options& o) {
  bool refused = false;
  const Probe probe = RunProbe();
  std::printf(
      "{\"probe\": {\"exp_per_s_per_core\": %.3g, \"fma_per_s_per_core\": %.3g, \"two_thread_scaling\": %.2f, "
      "\"hardware_threads\": %u}}\n",
      probe.exp_per_s, probe.fma_per_s, probe.two_thread_scaling, std::thread::hardware_concurrency());
  std::fflush(stdout);
  for (absl::string_view spec : absl::StrSplit(o.cases, ',', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(spec, absl::ByAnyChar(":x"));
    Case c;
    if (parts.size() != 4 || !absl::SimpleAtoi(parts[1], &c.targets) || !absl::SimpleAtoi(parts[2], &c.particles) ||
        !absl::SimpleAtoi(parts[3], &c.dim)) {
      std::fprintf(stderr, "bench: bad case '%s' (METHOD:NxMxD)\n", std::string(spec).c_str());
      return 2;
    }
    c.method = parts[0];
    const Timing ours = OurSeconds(o, c);
    std::optional<bench::PeerRun> shipped, tuned;
    if (o.use_peer) {
      shipped = PeerSeconds(o, c, false);
      tuned = PeerSeconds(o, c, true);
    }
    std::string line = absl::StrFormat(
        "{\"method\": \"%s\", \"targets\": %d, \"particles\": %d, \"dim\": %d, \"dtype\": \"%s\", \"threads\": %d, "
        "\"ours_s\": %.6g, \"pairs_per_s\": %.4g",
        c.method, c.targets, c.particles, c.dim, o.dtype, o.threads, ours.median, Pairs(c) / ours.median);
    if (shipped || tuned) {
      const std::string blas = (tuned ? tuned : shipped)->blas;
      absl::StrAppendFormat(&line, ", \"peer_blas\": \"%s\"", blas);
      // A ratio against netlib's reference BLAS overstates our lead (../shared/bench/README.md): refuse it.
      if (blas == "reference") {
        line += ", \"ratio\": \"refused: the peer ran on the reference BLAS; install libopenblas0-pthread\"";
        shipped.reset();
        tuned.reset();
        refused = true;
      }
    }
    if (shipped) absl::StrAppendFormat(&line, ", \"peer_shipped_s\": %.6g, \"speedup_vs_shipped\": %.3g", shipped->seconds, shipped->seconds / ours.median);
    if (tuned) absl::StrAppendFormat(&line, ", \"peer_tuned_s\": %.6g, \"speedup_vs_tuned\": %.3g", tuned->seconds, tuned->seconds / ours.median);
    if (c.method == "sd" && o.dtype == "float32") {
      // Practical lower bound (../shared/bench/README.md): one exp per kernel pair at the probed SIMD exp rate
      // plus the FLOPs (distance 2d, weights 1, sums d + 1 per pair, as FMAs) at the probed FMA rate, on all
      // threads with the measured scaling.
      const double cores = 1.0 + (o.threads > 1 ? probe.two_thread_scaling - 1.0 : 0.0);
      const double bound = Pairs(c) / (probe.exp_per_s * cores) + Pairs(c) * (3.0 * c.dim + 2) / (probe.fma_per_s * cores);
      absl::StrAppendFormat(&line, ", \"lower_bound_s\": %.4g, \"ours_over_lower_bound\": %.3g", bound, ours.median / bound);
    }
    line += "}";
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  if (refused) {
    std::fprintf(stderr, "bench: the peer ran on the reference BLAS, so no ratio was reported; install "
                         "libopenblas0-pthread (deploy/install-deps.sh)\n");
    return 3;
  }
  return 0;
}

// --scaling ------------------------------------------------------------------------------------------------

// How an SD step's time grows with N (targets), M (particles) and d, and where it goes.
int RunScaling(const Options& o) {
  Options one = o;
  one.repeats = std::min(o.repeats, 10);
  auto report = [&](const Case& c) {
    const Timing t = OurSeconds(one, c);
    std::printf("{\"scaling\": \"sd\", \"targets\": %ld, \"particles\": %ld, \"dim\": %ld, \"dtype\": \"%s\", "
                "\"seconds\": %.4g, \"ns_per_pair\": %.4g}\n",
                static_cast<long>(c.targets), static_cast<long>(c.particles), static_cast<long>(c.dim), o.dtype.c_str(),
                t.median, 1e9 * t.median / Pairs(c));
    std::fflush(stdout);
  };
  for (int64_t n : {512, 1024, 2048, 4096, 8192, 16384}) report({"sd", n, n, 2});
  for (int64_t n : {1024, 16384}) report({"sd", n, 4096, 2});
  for (int64_t m : {1024, 16384}) report({"sd", 4096, m, 2});
  for (int64_t d : {1, 2, 4, 8, 9, 16, 32, 50, 100}) report({"sd", 4096, 4096, d});

  // Where the time of one SD step (4096 x 4096 x 2, float32) goes: the parts timed on their own.
  const int64_t n = 4096, d = 2;
  const Points x = Normal(n, d, 1, 2.0), y = Normal(n, d, 2, 0.0);
  const PointsF xf = x.cast<float>(), yf = y.cast<float>();
  KernelWorkspace<float> ws;
  Points out;
  auto time = [&](const char* part, const std::function<void()>& f) {
    f();
    std::vector<double> t;
    for (int r = 0; r < one.repeats; ++r) {
      const double t0 = Now();
      f();
      t.push_back(Now() - t0);
    }
    std::printf("{\"part\": \"%s\", \"seconds\": %.4g}\n", part, Median(t));
    std::fflush(stdout);
  };
  Rng rng(4);
  Points eps(n, d);
  time("noise: M x d normal draws", [&] { rng.FillNormal(eps.data(), eps.size()); });
  time("centre and cast particles and targets", [&] {
    const Eigen::RowVectorXd c = y.colwise().mean();
    PointsF a = (y.rowwise() - c).cast<float>(), b = (x.rowwise() - c).cast<float>();
    (void)a;
    (void)b;
  });
  KernelSumsOptions shifted;
  shifted.sigma = 1.0;
  shifted.max_shift = true;
  KernelSumsOptions plain = shifted;
  plain.max_shift = false;
  time("one kernel sum, N x M, with the running max-shift", [&] { KernelSums<float>(yf, xf, nullptr, shifted, ws, o.threads, &out); });
  time("one kernel sum, N x M, without a shift", [&] { KernelSums<float>(yf, xf, nullptr, plain, ws, o.threads, &out); });
  PairwiseMedianWorkspace<float> mws;
  time("exact median of the M particles' pairwise distances (median_pairs 0)",
       [&] { MedianPairwiseSquaredDistance(yf, o.threads, mws); });
  SubsetPairMedian subset(kDefaultMedianPairs, 0);
  time("the default median over a fixed subset of 16384 pairs", [&] { (void)subset(y); });
  // The same kernel sum at d = 50 (the GEMM path).
  const PointsF x50 = Normal(n, 50, 5, 0.2).cast<float>(), y50 = Normal(n, 50, 6, 0.0).cast<float>();
  KernelSumsOptions wide = shifted;
  wide.sigma = std::sqrt(50.0);
  KernelWorkspace<float> ws50;
  time("one kernel sum, N x M at d = 50, with the running max-shift",
       [&] { KernelSums<float>(y50, x50, nullptr, wide, ws50, o.threads, &out); });

  // Where a KiNG step goes (000 Eq. 9, rbf statistics on 200 basis points, float32 contractions): the
  // features and their Jacobians, the median of the pool, G's contractions, Cov_q[T], the solve and the
  // drift; and ntKiNG's NTK kernel.
  for (const auto& [n, kd] : {std::pair<int64_t, int64_t>{1024, 2}, std::pair<int64_t, int64_t>{100, 20}}) {
    const Points kx = Normal(n, kd, 7, 2.0), ky = Normal(n, kd, 8, 0.0);
    Points pool(2 * n, kd);
    pool << ky, kx;
    SubsetPairMedian pool_median(kDefaultMedianPairs, 0);
    const double feature_sigma = std::sqrt(0.5 * pool_median(pool));
    Rng brng(9);
    std::vector<int64_t> perm(2 * n), index(200);
    std::iota(perm.begin(), perm.end(), 0);
    brng.SampleWithoutReplacement(2 * n, 200, perm.data(), index.data());
    Points basis(200, kd);
    for (int64_t i = 0; i < 200; ++i) basis.row(i) = pool.row(index[i]);
    auto stats = RbfStatistics(basis, feature_sigma);
    Points tx, ty, jy;
    const std::string at = absl::StrFormat(" (king %d x %d, d = %d)", n, n, kd);
    time(("pool median for the feature bandwidth" + at).c_str(), [&] { (void)pool_median(pool); });
    time(("features T at the targets" + at).c_str(), [&] { (void)stats->Evaluate(kx, &tx, nullptr); });
    time(("features T and Jacobians at the particles" + at).c_str(), [&] { (void)stats->Evaluate(ky, &ty, &jy); });
    const Eigen::VectorXd grad = (tx.colwise().mean() - ty.colwise().mean()).transpose();
    NaturalGradientProblem problem =
        MakeNaturalGradientProblem(ky, ty, jy, grad, 1e-3, 1e-3, o.threads, DType::kFloat32);
    problem.rbf = stats->rbf();
    NaturalGradientWorkspace ngws;
    Points velocity;
    std::vector<double> gram, fisher, solve, drift;
    const double kernel_sigma = std::sqrt(0.5 * MedianPairwiseSquaredDistance(ky, o.threads));
    time(("natural-gradient velocity, all of it" + at).c_str(), [&] {
      (void)KingVelocity(problem, kernel_sigma, ngws, &velocity);
      gram.push_back(ngws.timings.gram);
      fisher.push_back(ngws.timings.fisher);
      solve.push_back(ngws.timings.solve);
      drift.push_back(ngws.timings.drift);
    });
    std::printf("{\"part\": \"of which G's contractions%s\", \"seconds\": %.4g}\n", at.c_str(), Median(gram));
    std::printf("{\"part\": \"of which Cov_q[T]%s\", \"seconds\": %.4g}\n", at.c_str(), Median(fisher));
    std::printf("{\"part\": \"of which the b x b solve%s\", \"seconds\": %.4g}\n", at.c_str(), Median(solve));
    std::printf("{\"part\": \"of which the drift from alpha%s\", \"seconds\": %.4g}\n", at.c_str(), Median(drift));
    NtkMlp mlp(kd, {64, 64}, Activation::kTanh, 1);
    PointsF ntk;
    time(("ntKiNG's NTK kernel, hidden 64,64" + at).c_str(), [&] { mlp.KernelInto(ky, o.threads, &ntk); });
  }
  return 0;
}

// --check --------------------------------------------------------------------------------------------------

// Our step on the given inputs, as the flow computes it.
template <typename Scalar>
Points OurStep(const std::string& method, const Points& x, const Points& y, const Points& eps) {
  const DType dtype = std::is_same_v<Scalar, float> ? DType::kFloat32 : DType::kFloat64;
  if (method == "sd") {
    // The SD flow's arithmetic with the given noise: centred on the particles' mean, z = y + 1 eps.
    const Eigen::RowVectorXd center = y.colwise().mean();
    const PointsT<Scalar> z = ((y.rowwise() - center) + eps).template cast<Scalar>();
    const PointsT<Scalar> xc = (x.rowwise() - center).template cast<Scalar>();
    const PointsT<Scalar> yc = (y.rowwise() - center).template cast<Scalar>();
    KernelWorkspace<Scalar> ws;
    Points scratch, dir;
    SdFlowDirection(z, xc, yc, 1.0, ws, 2, &scratch, &dir);
    return y + 0.1 * dir;
  }
  std::shared_ptr<const Target> target = method == "svgd" ? PeerMixture(y.cols())
                                                          : std::shared_ptr<const Target>(*EmpiricalTarget::Create(x));
  FlowConfig c = PeerConfig(method, dtype);
  c.threads = 2;
  if (method == "svgd") c.median_pairs = 0;  // the peer's torch.median over every pair
  auto flow = CreateFlow(c, target);
  FlowState state;
  state.particles = y;
  StepStats stats;
  if (!flow.ok() || !(*flow)->Step(state, &stats).ok()) {
    std::fprintf(stderr, "check: our %s step failed\n", method.c_str());
    std::exit(1);
  }
  return state.particles;
}

int RunCheck(const Options& o) {
  if (access(o.peer.c_str(), R_OK) != 0) {
    std::printf("{\"check\": \"skipped\", \"reason\": \"peer not found at %s\"}\n", o.peer.c_str());
    return 77;
  }
  char dir_template[] = "/tmp/sampled_check_XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  bool all_ok = true;
  // d = 3 takes the fused SIMD path, d = 50 the GEMM path (and exact differences for mmd).
  for (const auto& [n, m, d] : {std::tuple<int, int, int>{700, 500, 3}, std::tuple<int, int, int>{300, 250, 50}}) {
  const Points x = Normal(n, d, 11, 2.0), y = Normal(m, d, 12, 0.0), eps = Normal(m, d, 13, 0.0);
  for (const std::string dtype : {"float32", "float64"}) {
    const DType t = dtype == "float32" ? DType::kFloat32 : DType::kFloat64;
    // The inputs in the checked precision, so that both sides start from the same numbers.
    const Points xr = t == DType::kFloat32 ? Points(x.cast<float>().cast<double>()) : x;
    const Points yr = t == DType::kFloat32 ? Points(y.cast<float>().cast<double>()) : y;
    const Points er = t == DType::kFloat32 ? Points(eps.cast<float>().cast<double>()) : eps;
    if (!WriteArrayFile(dir + "/x.npy", xr, t).ok() || !WriteArrayFile(dir + "/y.npy", yr, t).ok() ||
        !WriteArrayFile(dir + "/eps.npy", er, t).ok()) {
      std::fprintf(stderr, "check: cannot write inputs to %s\n", dir.c_str());
      return 1;
    }
    for (const std::string method : {"sd", "svgd", "mmd"}) {
      std::remove((dir + "/y_next.npy").c_str());
      bench::Capture(absl::StrFormat("%s %s --method %s --dtype %s --threads 2 --repeats 1 --inputs %s --out %s >/dev/null 2>&1",
                              o.python, o.peer, method, dtype, dir, dir));
      auto peer = ReadArrayFile(dir + "/y_next.npy");
      if (!peer.ok()) {
        std::printf("{\"check\": \"%s\", \"dtype\": \"%s\", \"error\": \"the peer wrote no output\"}\n", method.c_str(),
                    dtype.c_str());
        all_ok = false;
        continue;
      }
      const Points ours = t == DType::kFloat32 ? OurStep<float>(method, xr, yr, er) : OurStep<double>(method, xr, yr, er);
      const double diff = (ours - peer->points).cwiseAbs().maxCoeff();
      const double tol = t == DType::kFloat32 ? 1e-4 : 1e-9;
      const bool ok = diff <= tol;
      all_ok &= ok;
      std::printf(
          "{\"check\": \"%s\", \"dtype\": \"%s\", \"targets\": %d, \"particles\": %d, \"dim\": %d, "
          "\"max_abs_diff\": %.3g, \"tolerance\": %.0e, \"pass\": %s}\n",
          method.c_str(), dtype.c_str(), n, m, d, diff, tol, ok ? "true" : "false");
    }
  }
  }
  return all_ok ? 0 : 1;
}

// --memory -------------------------------------------------------------------------------------------------

int RunMemoryChild() {
  FlowConfig c = PeerConfig("sd", DType::kFloat32);
  c.threads = 2;
  auto flow = CreateFlow(c, std::shared_ptr<const Target>(*EmpiricalTarget::Create(Normal(65536, 2, 1, 2.0))));
  FlowState state;
  state.particles = Normal(65536, 2, 2, 0.0);
  StepStats stats;
  const double t0 = Now();
  if (!flow.ok() || !(*flow)->Step(state, &stats).ok()) return 1;
  const double seconds = Now() - t0;
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  std::printf(
      "{\"memory\": \"sd\", \"targets\": 65536, \"particles\": 65536, \"dim\": 2, \"dtype\": \"float32\", "
      "\"step_s\": %.3g, \"peak_rss_bytes\": %ld, \"under_1_gib\": %s}\n",
      seconds, u.ru_maxrss * 1024L, u.ru_maxrss * 1024L < (1L << 30) ? "true" : "false");
  return 0;
}

}  // namespace
}  // namespace sampled

int main(int argc, char** argv) {
  sampled::bench::UseServerSpinPolicy(argv);
  sampled::Options o;
  sampled::bench::ServerPathOptions server;
  bool check = false, memory = false, scaling = false, server_path = false, upload = false, cli = false;
  bool cases_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return sampled::bench::FlagValue(argc, argv, &i); };
    if (a == "--peer") {
      o.peer = value();
    } else if (a == "--python") {
      o.python = value();
    } else if (a == "--threads") {
      o.threads = std::atoi(value().c_str());
    } else if (a == "--repeats") {
      o.repeats = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--cases") {
      o.cases = value();
      cases_given = true;
    } else if (a == "--server-path") {
      server_path = true;
    } else if (a == "--upload") {
      upload = true;
    } else if (a == "--cli") {
      cli = true;
    } else if (a == "--job-seconds") {
      server.job_seconds = std::atof(value().c_str());
    } else if (a == "--server-binary") {
      server.server_binary = value();
    } else if (a == "--samplectl-binary") {
      server.samplectl_binary = value();
    } else if (a == "--dtype") {
      o.dtype = value();
    } else if (a == "--no-peer") {
      o.use_peer = false;
    } else if (a == "--check") {
      check = true;
    } else if (a == "--memory") {
      memory = true;
    } else if (a == "--scaling") {
      scaling = true;
    } else {
      std::fprintf(stderr, "usage: %s [--cases LIST] [--repeats R] [--threads T] [--dtype float32|float64] "
                   "[--peer PATH] [--python PATH] [--no-peer] | --check | --memory | --scaling | "
                   "--server-path [--cases LIST] [--job-seconds S] [--no-peer] | --upload | --cli\n", argv[0]);
      return 2;
    }
  }
  sampled::SetDefaultComputeThreads(o.threads);
  if (check) return sampled::RunCheck(o);
  if (memory) return sampled::RunMemoryChild();
  if (scaling) return sampled::RunScaling(o);
  if (server_path || upload || cli) {
    server.threads = o.threads;
    server.repeats = o.repeats;
    if (cases_given) server.cases = o.cases;
    if (server_path && o.use_peer) {
      // The tuned peer's SD step at 4096 x 4096 in 2-D, in this run, for the default job's ratio.
      auto peer = sampled::PeerSeconds(o, {"sd", 4096, 4096, 2}, /*tuned=*/true);
      if (peer) {
        server.peer_sd_4096_s = peer->seconds;
        server.peer_blas = peer->blas;
      }
    }
    int rc = 0;
    if (server_path) rc = std::max(rc, sampled::bench::RunServerPath(server));
    if (upload) rc = std::max(rc, sampled::bench::RunUpload(server));
    if (cli) rc = std::max(rc, sampled::bench::RunCli(server));
    if (server.peer_blas == "reference") rc = std::max(rc, 3);
    return rc;
  }
  return sampled::RunBenchmark(o);
}
