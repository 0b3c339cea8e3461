// An in-process sampled server on 127.0.0.1 (port 0) with a client, for integration tests.
#ifndef SAMPLED_TESTS_SERVER_TEST_SERVER_H_
#define SAMPLED_TESTS_SERVER_TEST_SERVER_H_

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "client/cpp/sampled_client.h"
#include "server/sampled_server.h"

namespace sampled::testing {

inline server::ServerOptions TestOptions() {
  server::ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.metrics_listen = "127.0.0.1:0";
  o.workers = 1;
  o.torch_threads = 2;
  o.shutdown_grace = absl::Seconds(30);
  return o;
}

struct TestServer {
  explicit TestServer(const server::ServerOptions& options = TestOptions()) {
    auto s = server::SampledServer::Start(options);
    EXPECT_TRUE(s.ok()) << s.status();
    server = *std::move(s);
    address = absl::StrCat("127.0.0.1:", server->port());
    client = client::SampledClient::Connect(address);
  }
  ~TestServer() { server->Shutdown(); }

  std::unique_ptr<server::SampledServer> server;
  std::string address;
  std::unique_ptr<client::SampledClient> client;
};

}  // namespace sampled::testing

#endif  // SAMPLED_TESTS_SERVER_TEST_SERVER_H_
