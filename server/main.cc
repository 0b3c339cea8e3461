// sampled: the sampling server. Flags configure addresses, threads and limits (see README.md); SIGTERM
// or SIGINT shut it down gracefully and it exits 0.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "core/common/torch_runtime.h"
#include "server/sampled_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "gRPC address host:port (port 0: any free port)");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464", "Prometheus /metrics address host:port; empty: off");
ABSL_FLAG(int, workers, 1, "job worker threads (jobs that run at once)");
ABSL_FLAG(int, torch_threads, 0, "compute threads per job (LibTorch intra-op and kernel sums); 0: every core");
ABSL_FLAG(int64_t, max_sessions, 1000, "sessions held at once");
ABSL_FLAG(int64_t, max_targets_per_session, 100, "targets per session");
ABSL_FLAG(int64_t, max_points_per_target, 10000000, "rows of an uploaded array");
ABSL_FLAG(int64_t, max_particles, 1000000, "particles of one flow");
ABSL_FLAG(int64_t, max_dim, 4096, "dimension of a target");
ABSL_FLAG(int64_t, max_queued_jobs, 64, "work items waiting for a worker; more are refused with RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, max_jobs_per_session, 1000, "jobs a session holds");
ABSL_FLAG(int64_t, max_steps, 100000000, "steps of one flow run");
ABSL_FLAG(int64_t, max_array_values, 100000000, "values (rows x dim) of one array: upload, draws, particles");
ABSL_FLAG(int, sample_workers, 2, "threads that serve Sample calls (never queued behind a job)");
ABSL_FLAG(int64_t, max_memory, -1,
          "bytes everything held or being built may take (targets, uploads, jobs and their workspaces, samplers, "
          "calls); past it requests are refused with RESOURCE_EXHAUSTED before allocating. -1: three quarters of "
          "the machine's memory; 0: no limit");
ABSL_FLAG(int, call_workers, 2,
          "threads for the calls a client waits on (StepFlow, Evaluate, building a flow or a target's draws), "
          "shared round-robin by the sessions");
ABSL_FLAG(int64_t, job_retention_count, 200, "ended jobs a session keeps (the newest); older ones are forgotten");
ABSL_FLAG(absl::Duration, job_retention_age, absl::Hours(24 * 7), "ended jobs older than this are forgotten");
ABSL_FLAG(absl::Duration, slice_time, absl::Milliseconds(250),
          "how long a slice of a long run lasts before its worker turns to waiting work of other sessions");
ABSL_FLAG(int64_t, max_queued_jobs_per_session, 16, "work items of one session waiting for a worker (jobs, calls)");
ABSL_FLAG(int64_t, max_running_jobs_per_session, 0, "jobs of one session running at once; 0: as many as --workers");
ABSL_FLAG(int64_t, max_sample_draws, 10000000, "draws of one Sample call");
ABSL_FLAG(int64_t, max_sample_steps, 100000, "reverse steps of a score model's draw (Sample's steps)");
ABSL_FLAG(int64_t, max_train_width, 4096, "hidden width or latent dimension of a trained network");
ABSL_FLAG(int64_t, max_train_layers, 16, "hidden layers of a trained network");
ABSL_FLAG(int64_t, max_train_batch, 100000, "batch of a training run");
ABSL_FLAG(int64_t, max_samplers_per_session, 100, "trained samplers a session holds");
ABSL_FLAG(int64_t, max_session_bytes, 0,
          "bytes one session may hold (targets, jobs' states and workspaces, samplers); 0: no quota");
ABSL_FLAG(bool, allow_torchscript, false,
          "accept TorchScript model targets (UploadModel); they are code: read docs/torchscript.md first");
ABSL_FLAG(int64_t, max_model_bytes, 64 << 20, "bytes of one uploaded TorchScript model");
ABSL_FLAG(absl::Duration, model_load_time, absl::Seconds(30), "time a model's load and checks may take");
ABSL_FLAG(std::string, state_dir, "",
          "directory that keeps sessions, targets, samplers, jobs and checkpoints across restarts; empty: in memory");
ABSL_FLAG(std::string, checkpoint_every, "30s",
          "how often a running job writes a checkpoint: a duration (30s, 5m) or a step count (1000); the interval "
          "stretches so that writing costs at most 5% of the job's time");
ABSL_FLAG(absl::Duration, request_id_ttl, absl::Hours(24), "how long the request id of an idempotent call is kept");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10), "time running jobs get to stop at shutdown");

namespace {

// Written by the signal handler (async-signal-safe: one write), read by main.
int shutdown_pipe[2] = {-1, -1};

void WriteSignalToPipe(int signal) {
  const unsigned char byte = static_cast<unsigned char>(signal);
  const int saved = errno;
  (void)!write(shutdown_pipe[1], &byte, 1);
  errno = saved;
}

// Flags are documented with dashes (--metrics-listen); Abseil names them with underscores. Rewrites the
// name part of every "--flag[=value]" argument.
std::vector<std::string> NormalizeFlagNames(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  for (size_t i = 1; i < args.size(); ++i) {
    std::string& a = args[i];
    if (a == "--") break;
    if (a.size() < 3 || a[0] != '-' || a[1] != '-') continue;
    const size_t end = std::min(a.find('='), a.size());
    for (size_t k = 2; k < end; ++k) {
      if (a[k] == '-') a[k] = '_';
    }
  }
  return args;
}

// The compute threads of a step (our kernel sums and LibTorch's intra-op work) are OpenMP teams, whose
// threads spin between parallel regions (libgomp: 300,000 rounds) before they sleep. Within the process
// libgomp throttles that when its teams outnumber the cores, but it cannot see another process: beside a
// second computing process (another sampled, a test run, a neighbour) the spinning threads take the
// cores the other needs. Two 1024 x 1024 SD steps in two processes took 16 ms each instead of 1 ms; a
// server's job beside another busy server ran 42 instead of 160 steps/s. With 1,000 rounds a step alone
// is as fast as before (docs/performance.md). libgomp reads GOMP_SPINCOUNT once, before main, so the
// server sets it and executes itself again (same pid, same arguments) unless the environment already
// chooses a policy.
void BoundOpenMpSpinning(char** argv) {
  if (std::getenv("GOMP_SPINCOUNT") != nullptr || std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("GOMP_SPINCOUNT", "1000", 1);
  execv("/proc/self/exe", argv);
  // The exec failed (no /proc): run on with libgomp's default, which is only slower under contention.
  std::perror("sampled: re-executing with GOMP_SPINCOUNT=1000 failed; continuing");
}

}  // namespace

int main(int argc, char** argv) {
  BoundOpenMpSpinning(argv);
  absl::SetProgramUsageMessage("sampled: a gRPC sampling service (see README.md)");
  std::vector<std::string> args = NormalizeFlagNames(argc, argv);
  std::vector<char*> arg_ptrs;
  for (std::string& a : args) arg_ptrs.push_back(a.data());
  absl::ParseCommandLine(static_cast<int>(arg_ptrs.size()), arg_ptrs.data());

  // The shutdown signals are caught by a handler that only writes the signal's number into a pipe, which
  // the main thread reads once the server is up. A handler, not a blocked mask and sigwait: threads that
  // libraries start before main (OpenBLAS's pthreads server starts its workers when it is loaded) never
  // saw a mask, and a SIGTERM delivered to one of them killed the process instead of shutting it down.
  if (pipe2(shutdown_pipe, O_CLOEXEC) != 0) {
    std::perror("sampled: pipe");
    return 1;
  }
  struct sigaction on_signal = {};
  on_signal.sa_handler = WriteSignalToPipe;
  sigemptyset(&on_signal.sa_mask);
  on_signal.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &on_signal, nullptr);
  sigaction(SIGINT, &on_signal, nullptr);

  sampled::server::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.workers = absl::GetFlag(FLAGS_workers);
  options.sample_workers = absl::GetFlag(FLAGS_sample_workers);
  options.call_workers = absl::GetFlag(FLAGS_call_workers);
  options.max_memory = absl::GetFlag(FLAGS_max_memory);
  options.slice_time = absl::GetFlag(FLAGS_slice_time);
  options.torch_threads = absl::GetFlag(FLAGS_torch_threads);
  options.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  options.allow_torchscript = absl::GetFlag(FLAGS_allow_torchscript);
  sampled::server::Limits& l = options.limits;
  l.max_sessions = absl::GetFlag(FLAGS_max_sessions);
  l.max_targets_per_session = absl::GetFlag(FLAGS_max_targets_per_session);
  l.max_points_per_target = absl::GetFlag(FLAGS_max_points_per_target);
  l.max_particles = absl::GetFlag(FLAGS_max_particles);
  l.max_dim = absl::GetFlag(FLAGS_max_dim);
  l.max_queued_jobs = absl::GetFlag(FLAGS_max_queued_jobs);
  l.max_queued_jobs_per_session = absl::GetFlag(FLAGS_max_queued_jobs_per_session);
  l.job_retention_count = absl::GetFlag(FLAGS_job_retention_count);
  l.job_retention_age = absl::GetFlag(FLAGS_job_retention_age);
  l.max_running_jobs_per_session = absl::GetFlag(FLAGS_max_running_jobs_per_session);
  l.max_jobs_per_session = absl::GetFlag(FLAGS_max_jobs_per_session);
  l.max_steps = absl::GetFlag(FLAGS_max_steps);
  l.max_array_values = absl::GetFlag(FLAGS_max_array_values);
  l.max_sample_draws = absl::GetFlag(FLAGS_max_sample_draws);
  l.max_sample_steps = absl::GetFlag(FLAGS_max_sample_steps);
  l.max_train_width = absl::GetFlag(FLAGS_max_train_width);
  l.max_train_layers = absl::GetFlag(FLAGS_max_train_layers);
  l.max_train_batch = absl::GetFlag(FLAGS_max_train_batch);
  l.max_samplers_per_session = absl::GetFlag(FLAGS_max_samplers_per_session);
  l.max_session_bytes = absl::GetFlag(FLAGS_max_session_bytes);
  l.max_model_bytes = absl::GetFlag(FLAGS_max_model_bytes);
  l.model_load_time = absl::GetFlag(FLAGS_model_load_time);
  options.state_dir = absl::GetFlag(FLAGS_state_dir);
  options.request_id_ttl = absl::GetFlag(FLAGS_request_id_ttl);
  {
    const std::string every = absl::GetFlag(FLAGS_checkpoint_every);
    int64_t steps = 0;
    absl::Duration d;
    if (absl::SimpleAtoi(every, &steps) && steps > 0) {
      options.checkpoint.every_steps = steps;
      options.checkpoint.every = absl::InfiniteDuration();
    } else if (absl::ParseDuration(every, &d) && d > absl::ZeroDuration()) {
      options.checkpoint.every = d;
    } else {
      std::fprintf(stderr, "sampled: --checkpoint-every must be a positive duration (30s, 5m) or step count, got '%s'\n",
                   every.c_str());
      return 1;
    }
  }

  auto server = sampled::server::SampledServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "sampled: %s\n", server.status().ToString().c_str());
    return 1;
  }
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  if ((*server)->metrics_port() > 0) {
    const std::string mhost = options.metrics_listen.substr(0, options.metrics_listen.rfind(':'));
    std::printf("sampled listening on %s:%d, metrics on http://%s:%d/metrics\n", host.c_str(), (*server)->port(),
                mhost.c_str(), (*server)->metrics_port());
  } else {
    std::printf("sampled listening on %s:%d\n", host.c_str(), (*server)->port());
  }
  // The BLAS behind LibTorch's matrix products (the KiNG family's solves and contractions): the reference
  // BLAS is 30-50x slower than an optimised one, and says so.
  const sampled::BlasInfo blas = sampled::MappedBlas();
  std::printf("sampled: BLAS %s (%s), %d compute threads per job, %d job worker(s)\n", blas.name.c_str(),
              blas.path.empty() ? "no libblas mapped" : blas.path.c_str(), (*server)->compute_threads(),
              options.workers);
  if (blas.name == "reference") {
    std::printf("sampled: warning: the reference BLAS makes matrix products 30-50x slower; install "
                "libopenblas0-pthread (deploy/install-deps.sh does)\n");
  }
  if (options.state_dir.empty()) {
    std::printf("sampled: no --state-dir: sessions, targets, samplers and jobs are in memory and go when the server stops\n");
  } else {
    const auto& r = (*server)->restore_report();
    std::printf("sampled: state in %s: restored %lld sessions, %lld targets, %lld samplers, %lld jobs (%lld resumed)%s\n",
                options.state_dir.c_str(), static_cast<long long>(r.sessions), static_cast<long long>(r.targets),
                static_cast<long long>(r.samplers), static_cast<long long>(r.jobs), static_cast<long long>(r.resumed),
                r.lost > 0 ? absl::StrCat(", ", r.lost, " could not be loaded (see the log)").c_str() : "");
  }
  std::fflush(stdout);

  unsigned char received = 0;
  while (read(shutdown_pipe[0], &received, 1) < 0 && errno == EINTR) {
  }
  const int signal = received;
  std::printf("sampled: %s received, shutting down\n", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  std::fflush(stdout);
  (*server)->Shutdown();
  std::printf("sampled: stopped\n");
  return 0;
}
