// The real `sampled` binary as a child process for the benchmarks: on 127.0.0.1, port 0, metrics off.
#ifndef SAMPLED_TESTS_BENCH_SERVER_PROCESS_H_
#define SAMPLED_TESTS_BENCH_SERVER_PROCESS_H_

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"

namespace sampled::bench {

// The real server binary on 127.0.0.1, port 0, metrics off; SIGTERM and wait on destruction.
class ServerProcess {
 public:
  static std::unique_ptr<ServerProcess> Start(const std::string& binary, int threads) {
    int fds[2];
    if (pipe(fds) != 0) return nullptr;
    const pid_t pid = fork();
    if (pid < 0) return nullptr;
    if (pid == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      const std::string t = std::to_string(threads);
      execl(binary.c_str(), binary.c_str(), "--listen", "127.0.0.1:0", "--metrics-listen", "", "--torch-threads",
            t.c_str(), static_cast<char*>(nullptr));
      std::perror("exec sampled");
      _exit(127);
    }
    close(fds[1]);
    auto s = std::unique_ptr<ServerProcess>(new ServerProcess(pid, fdopen(fds[0], "r")));
    char line[4096];
    // "sampled listening on 127.0.0.1:PORT", then "sampled: BLAS NAME (PATH), ...".
    if (s->out_ == nullptr || std::fgets(line, sizeof(line), s->out_) == nullptr) return nullptr;
    const char* colon = std::strrchr(line, ':');
    if (std::strncmp(line, "sampled listening on ", 21) != 0 || colon == nullptr) return nullptr;
    s->address_ = absl::StrCat("127.0.0.1:", std::atoi(colon + 1));
    if (std::fgets(line, sizeof(line), s->out_) != nullptr) {
      s->blas_line_ = line;
      if (!s->blas_line_.empty() && s->blas_line_.back() == '\n') s->blas_line_.pop_back();
    }
    return s;
  }

  ~ServerProcess() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    if (out_ != nullptr) std::fclose(out_);
  }

  const std::string& address() const { return address_; }
  const std::string& blas_line() const { return blas_line_; }

 private:
  ServerProcess(pid_t pid, FILE* out) : pid_(pid), out_(out) {}
  pid_t pid_;
  FILE* out_;
  std::string address_, blas_line_;
};

}  // namespace sampled::bench

#endif  // SAMPLED_TESTS_BENCH_SERVER_PROCESS_H_
