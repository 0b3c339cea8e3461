// A minimal HTTP endpoint for Prometheus: GET /metrics returns the text exposition, GET / a pointer to it,
// anything else 404; one request per connection.
//
// Why not prometheus-cpp's Exposer: Debian's civetweb (behind it) starts its threads with a 100 KiB
// stack, and in a process that links Debian's LibTorch the static TLS of the ~350 loaded libraries is
// larger than that, so every civetweb thread fails to start ("null context when constructing
// CivetServer"). This endpoint runs on one std::thread with the default stack, and is covered by a test
// in a process that links LibTorch (tests/server/http_exposer_test.cc).
//
// Thread-safe: Start/Stop from one owner; the handler is called on the endpoint's thread.
#ifndef SAMPLED_SERVER_METRICS_HTTP_EXPOSER_H_
#define SAMPLED_SERVER_METRICS_HTTP_EXPOSER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace sampled::server {

class HttpExposer {
 public:
  // Binds `address` ("host:port", port 0 for any free port) and starts serving `body()` on /metrics.
  // INVALID_ARGUMENT for a malformed address, UNAVAILABLE when it cannot bind.
  static absl::StatusOr<std::unique_ptr<HttpExposer>> Start(const std::string& address,
                                                            std::function<std::string()> body);
  ~HttpExposer();  // Stop()

  int port() const { return port_; }
  void Stop();

 private:
  HttpExposer(int fd, int port, std::function<std::string()> body);
  void Loop();
  void Serve(int client);

  int listen_fd_;
  int port_;
  std::function<std::string()> body_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_METRICS_HTTP_EXPOSER_H_
