#include "server/metrics/http_exposer.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/time.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/memory/memory.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace sampled::server {
namespace {

constexpr int kPollMillis = 100;
constexpr size_t kMaxRequestBytes = 16 * 1024;
// A connection gets this long in all to send its request (a scraper sends one small GET), and each send
// of the response may block this long: a slow or stuck client cannot hold the endpoint or its shutdown.
constexpr int kConnectionMillis = 2000;

void WriteAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    sent += static_cast<size_t>(n);
  }
}

std::string Response(int code, const char* reason, const std::string& content_type, const std::string& body) {
  return absl::StrCat("HTTP/1.1 ", code, " ", reason, "\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpExposer>> HttpExposer::Start(const std::string& address,
                                                                std::function<std::string()> body) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("metrics address '", address, "' is not host:port"));
  }
  std::string host = address.substr(0, colon);
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port_text = std::to_string(port);
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port_text.c_str(), &hints, &res); rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("metrics address '", address, "': ", gai_strerror(rc)));
  }
  int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
  if (fd < 0) {
    ::freeaddrinfo(res);
    return absl::UnavailableError(absl::StrCat("metrics socket: ", std::strerror(errno)));
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
    const int err = errno;
    ::freeaddrinfo(res);
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on metrics address '", address, "': ", std::strerror(err)));
  }
  ::freeaddrinfo(res);
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int bound_port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  auto exposer = absl::WrapUnique(new HttpExposer(fd, bound_port, std::move(body)));
  exposer->thread_ = std::thread([e = exposer.get()] { e->Loop(); });
  return exposer;
}

HttpExposer::HttpExposer(int fd, int port, std::function<std::string()> body)
    : listen_fd_(fd), port_(port), body_(std::move(body)) {}

HttpExposer::~HttpExposer() { Stop(); }

void HttpExposer::Stop() {
  if (stopping_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
}

void HttpExposer::Loop() {
  while (!stopping_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, kPollMillis);
    if (ready <= 0) continue;
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    Serve(client);
    ::close(client);
  }
}

void HttpExposer::Serve(int client) {
  const timeval send_timeout{kConnectionMillis / 1000, 0};
  ::setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kConnectionMillis);
  std::string request;
  char buf[2048];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < kMaxRequestBytes) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || stopping_.load()) return;
    pollfd p{client, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), kPollMillis))) <= 0) continue;
    const ssize_t n = ::recv(client, buf, sizeof(buf), 0);
    if (n <= 0) return;
    request.append(buf, static_cast<size_t>(n));
  }
  const size_t line_end = request.find("\r\n");
  const std::string line = request.substr(0, line_end);
  const bool get = absl::StartsWith(line, "GET ");
  const size_t path_end = line.find(' ', 4);
  std::string path = get && path_end != std::string::npos ? line.substr(4, path_end - 4) : "";
  if (const size_t q = path.find('?'); q != std::string::npos) path.resize(q);
  if (!get) {
    WriteAll(client, Response(405, "Method Not Allowed", "text/plain", "only GET is supported\n"));
  } else if (path == "/metrics") {
    WriteAll(client, Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body_()));
  } else if (path == "/") {
    WriteAll(client, Response(200, "OK", "text/plain", "sampled: metrics at /metrics\n"));
  } else {
    WriteAll(client, Response(404, "Not Found", "text/plain", "not found; metrics are at /metrics\n"));
  }
}

}  // namespace sampled::server
