// Everything the server is configured with: listen addresses, threads, limits. Filled from flags in
// main.cc, or directly by tests.
#ifndef SAMPLED_SERVER_SERVER_OPTIONS_H_
#define SAMPLED_SERVER_SERVER_OPTIONS_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "server/jobs/checkpoint.h"

namespace sampled::server {

// Request sizes past these are refused with RESOURCE_EXHAUSTED (INVALID_ARGUMENT for the dimension).
struct Limits {
  int64_t max_sessions = 1000;
  int64_t max_targets_per_session = 100;
  int64_t max_points_per_target = 10'000'000;
  int64_t max_particles = 1'000'000;
  int64_t max_dim = 4096;
  int64_t max_queued_jobs = 64;           // tasks waiting in each pool (jobs, calls, samples)
  int64_t max_queued_jobs_per_session = 16;  // of them, from one session (jobs and calls)
  int64_t max_running_jobs_per_session = 0;  // jobs of one session running at once; 0: as many as workers
  int64_t max_jobs_per_session = 1000;
  // Retention of ended jobs (succeeded, failed, cancelled; an interactive flow between its steps counts as
  // ended): a session keeps its newest `job_retention_count`, and none ended longer than `job_retention_age`
  // ago. Enforced when the session starts another job.
  int64_t job_retention_count = 200;
  absl::Duration job_retention_age = absl::Hours(24 * 7);
  int64_t max_steps = 100'000'000;
  // Values (rows x dim) of one array: an upload, a target's draws, a flow's particles (8 bytes each).
  int64_t max_array_values = 100'000'000;
  // Training: any hidden width or latent dimension, hidden layers per network, the batch.
  int64_t max_train_width = 4096;
  int64_t max_train_layers = 16;
  int64_t max_train_batch = 100'000;
  int64_t max_samplers_per_session = 100;
  // Bytes one session may hold (its targets, jobs' states and workspaces, samplers), checked when
  // something is added; 0: no quota (only the server-wide --max-memory).
  int64_t max_session_bytes = 0;
  // Draws of one Sample call (and its draws x dim stay within max_array_values).
  int64_t max_sample_draws = 10'000'000;
  int64_t max_sample_steps = 100'000;  // a score model's reverse steps per draw
  // TorchScript model targets: bytes of one archive, and the time its load and checks may take.
  int64_t max_model_bytes = 64 << 20;
  absl::Duration model_load_time = absl::Seconds(30);
};

struct ServerOptions {
  // Bytes everything held or being built may take (--max-memory): -1, three quarters of the machine's
  // memory; 0, no limit (still accounted).
  int64_t max_memory = -1;
  std::string listen = "127.0.0.1:50051";
  std::string metrics_listen = "127.0.0.1:9464";  // empty: no metrics endpoint
  int workers = 1;        // job threads
  int call_workers = 2;   // threads for calls a client waits on (StepFlow, Evaluate, a flow's setup)
  // How long a slice of a long run (a job, a StepFlow) lasts before it yields its worker to waiting work.
  absl::Duration slice_time = absl::Milliseconds(250);
  int sample_workers = 2; // threads that serve Sample calls (never behind a job)
  int torch_threads = 0;  // intra-op threads per job (LibTorch and our kernels); 0: every core
  absl::Duration shutdown_grace = absl::Seconds(10);
  // TorchScript targets are code: off unless asked for (docs/torchscript.md).
  bool allow_torchscript = false;
  // Where sessions, targets, samplers, jobs and checkpoints are kept (docs/architecture.md, "Durable
  // state"); empty: in memory only, lost when the server stops.
  std::string state_dir;
  CheckpointPolicy checkpoint;
  // How long a request id of an idempotent call is remembered.
  absl::Duration request_id_ttl = absl::Hours(24);
  Limits limits;
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_SERVER_OPTIONS_H_
