#include "server/metrics/server_metrics.h"

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "core/common/torch_runtime.h"

#ifndef SAMPLED_VERSION
#define SAMPLED_VERSION "dev"
#endif

namespace sampled::server {
namespace {

using prometheus::Histogram;

// 100 us .. ~100 s in factors of ~3.2 (half decades).
Histogram::BucketBoundaries HalfDecades(double from, int count) {
  Histogram::BucketBoundaries b;
  double v = from;
  for (int i = 0; i < count; ++i) {
    b.push_back(v);
    v *= (i % 2 == 0) ? 2.5 : 4.0;
  }
  return b;
}

// A gauge family for one scrape (the held-state gauges are rebuilt at every scrape).
prometheus::MetricFamily GaugeFamily(const std::string& name, const std::string& help) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = prometheus::MetricType::Gauge;
  return f;
}

void AddGauge(prometheus::MetricFamily& f, double value, std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

}  // namespace

ServerMetrics::ServerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  rpcs_ = &prometheus::BuildCounter()
               .Name("sampled_rpcs_total")
               .Help("RPCs handled, by method and gRPC status code")
               .Register(*registry_);
  rpc_seconds_ = &prometheus::BuildHistogram()
                      .Name("sampled_rpc_duration_seconds")
                      .Help("Time from the start of an RPC to its status, by method")
                      .Register(*registry_);
  flow_steps_ = &prometheus::BuildCounter()
                     .Name("sampled_flow_steps_total")
                     .Help("Particle flow steps taken, by method")
                     .Register(*registry_);
  particle_updates_ = &prometheus::BuildCounter()
                           .Name("sampled_particle_updates_total")
                           .Help("Particle moves (particles times steps), by method")
                           .Register(*registry_);
  step_seconds_ = &prometheus::BuildHistogram()
                       .Name("sampled_flow_step_duration_seconds")
                       .Help("Wall time of one flow step, by method")
                       .Register(*registry_);
  training_steps_ = &prometheus::BuildCounter()
                         .Name("sampled_training_steps_total")
                         .Help("Training iterations (score phase and sampler step), by method")
                         .Register(*registry_);
  training_step_seconds_ = &prometheus::BuildHistogram()
                                .Name("sampled_training_step_duration_seconds")
                                .Help("Wall time of one training iteration, by method")
                                .Register(*registry_);
  sample_calls_ = &prometheus::BuildCounter()
                       .Name("sampled_sample_calls_total")
                       .Help("Sample calls, by gRPC status code")
                       .Register(*registry_);
  sample_draws_ = &prometheus::BuildCounter()
                       .Name("sampled_sample_draws_total")
                       .Help("Draws streamed by Sample calls")
                       .Register(*registry_)
                       .Add({});
  sample_seconds_ = &prometheus::BuildHistogram()
                         .Name("sampled_sample_duration_seconds")
                         .Help("Wall time of a Sample call, from its request to its status")
                         .Register(*registry_)
                         .Add({}, HalfDecades(1e-4, 13));
  prometheus::BuildGauge()
      .Name("sampled_build_info")
      .Help("Build information; the value is 1")
      .Labels({{"version", SAMPLED_VERSION}, {"torch", TorchVersion()}, {"blas", MappedBlas().name},
               {"grpc", grpc::Version()}})
      .Register(*registry_)
      .Add({})
      .Set(1);
}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::RecordRpc(const std::string& method, const std::string& code, double seconds) {
  rpcs_->Add({{"method", method}, {"code", code}}).Increment();
  rpc_seconds_->Add({{"method", method}}, HalfDecades(1e-4, 13)).Observe(seconds);
}

void ServerMetrics::RecordFlowStep(const std::string& method, int64_t particles, double seconds) {
  // The metric objects of a method are looked up once: a family's Add builds a label map and the histogram
  // its bucket list, microseconds that showed in jobs of short steps. The objects are thread-safe.
  StepMetrics* m;
  {
    absl::MutexLock lock(&step_mu_);
    auto [it, added] = step_metrics_.try_emplace(method);
    if (added) {
      it->second = {&flow_steps_->Add({{"method", method}}), &particle_updates_->Add({{"method", method}}),
                    &step_seconds_->Add({{"method", method}}, HalfDecades(1e-5, 15))};
    }
    m = &it->second;
  }
  m->steps->Increment();
  m->particle_updates->Increment(static_cast<double>(particles));
  m->seconds->Observe(seconds);
}

void ServerMetrics::RecordTrainingStep(const std::string& method, double seconds) {
  // Iterations take milliseconds or more: the label lookups of Add cost nothing in comparison.
  training_steps_->Add({{"method", method}}).Increment();
  training_step_seconds_->Add({{"method", method}}, HalfDecades(1e-4, 13)).Observe(seconds);
}

void ServerMetrics::RecordSample(const std::string& code, int64_t draws, double seconds) {
  sample_calls_->Add({{"code", code}}).Increment();
  sample_draws_->Increment(static_cast<double>(draws));
  sample_seconds_->Observe(seconds);
}

void ServerMetrics::SetHeldStateProvider(std::function<HeldState()> provider) {
  absl::MutexLock lock(&mu_);
  provider_ = std::move(provider);
}

std::string ServerMetrics::Serialize() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  std::function<HeldState()> provider;
  {
    absl::MutexLock lock(&mu_);
    provider = provider_;
  }
  if (provider) {
    const HeldState s = provider();
    auto sessions = GaugeFamily("sampled_sessions", "Sessions held");
    AddGauge(sessions, static_cast<double>(s.sessions));
    auto targets = GaugeFamily("sampled_targets", "Targets held, over all sessions");
    AddGauge(targets, static_cast<double>(s.targets));
    auto bytes = GaugeFamily("sampled_held_bytes", "Bytes of target data, flow and training state, and samplers held");
    AddGauge(bytes, static_cast<double>(s.bytes));
    auto queue = GaugeFamily("sampled_queued_tasks", "Work items waiting for a worker");
    AddGauge(queue, static_cast<double>(s.queued_tasks));
    auto jobs = GaugeFamily("sampled_jobs", "Jobs held, by state");
    for (const auto& [state, count] : s.jobs_by_state) AddGauge(jobs, static_cast<double>(count), {{"state", state}});
    auto samplers = GaugeFamily("sampled_samplers", "Trained samplers held, over all sessions");
    AddGauge(samplers, static_cast<double>(s.samplers));
    auto sampler_bytes = GaugeFamily("sampled_sampler_bytes", "Bytes of trained samplers' weights held");
    AddGauge(sampler_bytes, static_cast<double>(s.sampler_bytes));
    auto memory = GaugeFamily("sampled_memory_bytes",
                              "Bytes charged to the memory budget, by kind: stored targets, uploads in progress, job "
                              "states with their workspaces, samplers, calls in flight (inline samples, Sample draws)");
    for (const auto& [kind, b] : s.memory_by_kind) AddGauge(memory, static_cast<double>(b), {{"kind", kind}});
    auto budget = GaugeFamily("sampled_memory_budget_bytes", "The memory budget (--max-memory); 0: no limit");
    AddGauge(budget, static_cast<double>(s.memory_budget));
    for (auto* f : {&sessions, &targets, &bytes, &queue, &jobs, &samplers, &sampler_bytes, &memory, &budget}) {
      families.push_back(std::move(*f));
    }
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace sampled::server
