// What the benchmark's modes share: a clock, medians, and timing a flow's steps.
#ifndef SAMPLED_TESTS_BENCH_BENCH_UTIL_H_
#define SAMPLED_TESTS_BENCH_BENCH_UTIL_H_

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include <vector>

#include <optional>
#include <regex>
#include <string>

#include "absl/strings/numbers.h"
#include "core/flows/flow.h"

namespace sampled::bench {

inline double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Our side of a benchmark runs under the OpenMP spin policy the server sets for itself (server/main.cc:
// GOMP_SPINCOUNT=1000, read by libgomp at load, so by executing again); the peer runs with the environment's
// own (TunedPeerEnv unsets it again). Call first thing in main.
inline void UseServerSpinPolicy(char** argv) {
  if (std::getenv("GOMP_SPINCOUNT") == nullptr && std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("SAMPLED_BENCH_PEER_UNSET_SPIN", "1", 1);
    setenv("GOMP_SPINCOUNT", "1000", 1);
    execv("/proc/self/exe", argv);
  }
}

// The value that follows the flag argv[*i] (advancing *i past it); exits 2 when there is none.
inline std::string FlagValue(int argc, char** argv, int* i) {
  if (*i + 1 >= argc) {
    std::fprintf(stderr, "bench: %s needs a value\n", argv[*i]);
    std::exit(2);
  }
  return argv[++*i];
}

// Runs a shell command, returns its stdout (empty on failure).
inline std::string Capture(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

// The environment of a tuned peer run (../shared/bench/README.md: malloc thresholds that keep PyTorch's
// large buffers mapped, OpenBLAS's own CPU detection), without the spin policy our side runs under.
inline std::string TunedPeerEnv() {
  const std::string unset_spin = std::getenv("SAMPLED_BENCH_PEER_UNSET_SPIN") != nullptr ? "-u GOMP_SPINCOUNT " : "";
  return "env " + unset_spin + "-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
         "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824 ";
}

// Float32 FMAs in independent SIMD chains (the probe of the machine's multiply-add rate): 12 x the packet
// size per iteration.
inline double FmaLoop(int64_t iterations, float start) {
  using Packet = Eigen::internal::packet_traits<float>::type;
  constexpr int kChains = 12;
  Packet x[kChains];
  for (int k = 0; k < kChains; ++k) x[k] = Eigen::internal::pset1<Packet>(start + 0.01f * k);
  const Packet a = Eigen::internal::pset1<Packet>(0.999999f), b = Eigen::internal::pset1<Packet>(1e-7f);
  for (int64_t i = 0; i < iterations; ++i) {
    for (int k = 0; k < kChains; ++k) x[k] = Eigen::internal::pmadd(x[k], a, b);
  }
  float s = 0;
  for (int k = 0; k < kChains; ++k) s += Eigen::internal::predux(x[k]);
  return s;
}

// One run of a peer: its median seconds per step or iteration and the BLAS it mapped (its "blas" field).
struct PeerRun {
  double seconds = 0;
  std::string blas = "unknown";
};

// The run a peer's JSON line reports (its "median" and "blas" fields), or nothing when it printed none.
inline std::optional<PeerRun> ParsePeerRun(const std::string& out) {
  std::smatch m;
  static const std::regex kMedian("\"median\": ([0-9.eE+-]+)");
  static const std::regex kBlas("\"blas\": \"([a-z]+)\"");
  if (!std::regex_search(out, m, kMedian)) return std::nullopt;
  PeerRun run;
  if (!absl::SimpleAtod(m[1].str(), &run.seconds)) return std::nullopt;
  if (std::regex_search(out, m, kBlas)) run.blas = m[1].str();
  return run;
}

// The median wall time of `repeats` steps of `flow` from `state` (advanced by them). A failed step ends the
// benchmark: its numbers would mean nothing.
inline double MedianStepSeconds(Flow& flow, FlowState& state, int repeats) {
  StepStats stats;
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = Now();
    absl::Status s = flow.Step(state, &stats);
    times.push_back(Now() - t0);
    if (!s.ok()) {
      std::fprintf(stderr, "bench: %s\n", s.ToString().c_str());
      std::exit(1);
    }
  }
  return Median(times);
}

}  // namespace sampled::bench

#endif  // SAMPLED_TESTS_BENCH_BENCH_UTIL_H_
