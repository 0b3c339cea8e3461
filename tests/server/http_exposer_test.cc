// The metrics endpoint in a process that links and loads LibTorch: the situation in which Debian's
// civetweb (prometheus-cpp's Exposer) cannot start its threads. This binary calls into LibTorch so the
// library is really loaded (not dropped by --as-needed), then serves and scrapes /metrics.
#include "server/metrics/http_exposer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/torch_runtime.h"
#include "server/metrics/server_metrics.h"

namespace sampled::server {
namespace {

// A blocking HTTP/1.1 GET over loopback; returns the whole response.
std::string HttpGet(int port, const std::string& path, const std::string& method = "GET") {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  const std::string request = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
  ::send(fd, request.data(), request.size(), 0);
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return response;
}

TEST(HttpExposerTest, ServesMetricsInAProcessThatLoadsLibTorch) {
  ConfigureComputeThreads(2);  // a real call into LibTorch
  ASSERT_FALSE(TorchVersion().empty());
  ServerMetrics metrics;
  metrics.RecordFlowStep("sd", 1024, 0.002);
  auto exposer = HttpExposer::Start("127.0.0.1:0", [&] { return metrics.Serialize(); });
  ASSERT_TRUE(exposer.ok()) << exposer.status();
  ASSERT_GT((*exposer)->port(), 0);

  const std::string ok = HttpGet((*exposer)->port(), "/metrics");
  EXPECT_THAT(ok, ::testing::StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(ok, ::testing::HasSubstr("text/plain; version=0.0.4"));
  EXPECT_THAT(ok, ::testing::HasSubstr("sampled_flow_steps_total{method=\"sd\"} 1"));
  EXPECT_THAT(ok, ::testing::HasSubstr("sampled_particle_updates_total{method=\"sd\"} 1024"));
  EXPECT_THAT(HttpGet((*exposer)->port(), "/other"), ::testing::StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(HttpGet((*exposer)->port(), "/metrics", "POST"), ::testing::StartsWith("HTTP/1.1 405"));

  // Several scrapers at once are served one after another.
  std::vector<std::thread> scrapers;
  std::vector<std::string> responses(4);
  for (int i = 0; i < 4; ++i) scrapers.emplace_back([&, i] { responses[i] = HttpGet((*exposer)->port(), "/metrics"); });
  for (auto& t : scrapers) t.join();
  for (const auto& r : responses) EXPECT_THAT(r, ::testing::StartsWith("HTTP/1.1 200 OK"));
  (*exposer)->Stop();
}

// A client that connects and sends nothing holds the endpoint for at most its connection deadline.
TEST(HttpExposerTest, ASilentClientDoesNotBlockScrapes) {
  auto exposer = HttpExposer::Start("127.0.0.1:0", [] { return std::string("x 1\n"); });
  ASSERT_TRUE(exposer.ok());
  const int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>((*exposer)->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(silent, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_THAT(HttpGet((*exposer)->port(), "/metrics"), ::testing::StartsWith("HTTP/1.1 200 OK"));
  ::close(silent);
  (*exposer)->Stop();
}

TEST(HttpExposerTest, RefusesBadAddresses) {
  EXPECT_EQ(HttpExposer::Start("nonsense", [] { return std::string(); }).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto first = HttpExposer::Start("127.0.0.1:0", [] { return std::string(); });
  ASSERT_TRUE(first.ok());
  auto second = HttpExposer::Start("127.0.0.1:" + std::to_string((*first)->port()), [] { return std::string(); });
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace sampled::server
