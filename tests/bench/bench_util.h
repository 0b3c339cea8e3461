// What the benchmark's modes share: a clock, medians, and timing a flow's steps.
#ifndef SAMPLED_TESTS_BENCH_BENCH_UTIL_H_
#define SAMPLED_TESTS_BENCH_BENCH_UTIL_H_

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/flows/flow.h"

namespace sampled::bench {

inline double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
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
