// The assembled server: the gRPC services (plus grpc.health.v1 and reflection) over one Backend, and the
// Prometheus endpoint. main.cc runs one; tests start one in-process on 127.0.0.1 with port 0.
//
// Thread-safe: Shutdown may be called from any thread (a signal watcher), once or more.
#ifndef SAMPLED_SERVER_SAMPLED_SERVER_H_
#define SAMPLED_SERVER_SAMPLED_SERVER_H_

#include <memory>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/backend.h"
#include "server/metrics/http_exposer.h"
#include "server/server_options.h"

namespace sampled::server {

class SampledServer {
 public:
  // Binds and starts serving. UNAVAILABLE when an address cannot be bound, INVALID_ARGUMENT for bad
  // options.
  static absl::StatusOr<std::unique_ptr<SampledServer>> Start(const ServerOptions& options);
  ~SampledServer();

  int port() const { return port_; }
  int metrics_port() const { return exposer_ ? exposer_->port() : 0; }
  // Compute threads each job's steps use (--torch-threads, or cores / workers).
  int compute_threads() const { return compute_threads_; }
  // What was read back from --state-dir at start.
  const Backend::RestoreReport& restore_report() const { return backend_->restore_report(); }
  Backend& backend() { return *backend_; }

  // Graceful shutdown: health turns NOT_SERVING, new work is refused, jobs are cancelled (each stops
  // before its next step) and given options.shutdown_grace to stop, in-flight RPCs get a few seconds to
  // finish, then the metrics endpoint stops.
  void Shutdown();
  // Blocks until Shutdown has completed.
  void Wait();

 private:
  SampledServer() = default;

  ServerOptions options_;
  std::unique_ptr<Backend> backend_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HttpExposer> exposer_;
  int port_ = 0;
  int compute_threads_ = 1;
  absl::Mutex mu_;
  bool shutdown_started_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_SAMPLED_SERVER_H_
