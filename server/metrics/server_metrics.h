// The server's Prometheus metrics (names sampled_*, base units, no ids in labels) and their text
// exposition. Counters and histograms are recorded as events happen; gauges of held state (sessions,
// targets, bytes, jobs by state) are read from a provider at scrape time, so they cannot drift.
//
// Thread-safe.
#ifndef SAMPLED_SERVER_METRICS_SERVER_METRICS_H_
#define SAMPLED_SERVER_METRICS_SERVER_METRICS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
class Histogram;
class Gauge;
}  // namespace prometheus

namespace sampled::server {

// Held state, read at scrape time.
struct HeldState {
  int64_t sessions = 0;
  int64_t targets = 0;
  int64_t bytes = 0;
  int64_t queued_tasks = 0;
  int64_t samplers = 0;
  int64_t sampler_bytes = 0;
  std::map<std::string, int64_t> jobs_by_state;  // state name -> count
  std::map<std::string, int64_t> memory_by_kind;  // the memory budget's accounting, kind -> bytes
  int64_t memory_budget = 0;                      // --max-memory (0: no limit)
};

class ServerMetrics {
 public:
  ServerMetrics();
  ~ServerMetrics();

  // One finished RPC: `method` is "Service/Method" (a bounded set), `code` the gRPC code name.
  void RecordRpc(const std::string& method, const std::string& code, double seconds);
  // One flow step of `method` that moved `particles` particles.
  void RecordFlowStep(const std::string& method, int64_t particles, double seconds);

  // One training iteration of `method`.
  void RecordTrainingStep(const std::string& method, double seconds);
  // One Sample call that ended with `code` after streaming `draws` draws.
  void RecordSample(const std::string& code, int64_t draws, double seconds);

  void SetHeldStateProvider(std::function<HeldState()> provider);

  // The Prometheus text exposition format (version 0.0.4) of every metric.
  std::string Serialize() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* rpcs_;
  prometheus::Family<prometheus::Histogram>* rpc_seconds_;
  prometheus::Family<prometheus::Counter>* flow_steps_;
  prometheus::Family<prometheus::Counter>* particle_updates_;
  prometheus::Family<prometheus::Histogram>* step_seconds_;
  prometheus::Family<prometheus::Counter>* training_steps_;
  prometheus::Family<prometheus::Histogram>* training_step_seconds_;
  prometheus::Family<prometheus::Counter>* sample_calls_;
  prometheus::Counter* sample_draws_;
  prometheus::Histogram* sample_seconds_;
  struct StepMetrics {
    prometheus::Counter* steps = nullptr;
    prometheus::Counter* particle_updates = nullptr;
    prometheus::Histogram* seconds = nullptr;
  };
  mutable absl::Mutex mu_;
  // By method; entries are never removed (the methods are a fixed set), so their addresses are stable.
  absl::Mutex step_mu_;  // apart from mu_, which Serialize holds while it calls the provider
  std::map<std::string, StepMetrics> step_metrics_ ABSL_GUARDED_BY(step_mu_);
  std::function<HeldState()> provider_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_METRICS_SERVER_METRICS_H_
