// The benchmark's cases through the service, as a user meets it: the real `sampled` binary on 127.0.0.1
// (port 0), driven through the C++ client library and samplectl.
//   --server-path: for each case, a flow job started with the defaults (seconds per step from its progress
//     events) and StepFlow of 20 steps, beside the bare default step in this process;
//   --upload: uploads of 10^6, 10^7 and 10^8 float32 values, time per value;
//   --cli: `samplectl health` wall time over 20 runs, and whether samplectl maps LibTorch.
#ifndef SAMPLED_TESTS_BENCH_SERVER_PATH_H_
#define SAMPLED_TESTS_BENCH_SERVER_PATH_H_

#include <string>

namespace sampled::bench {

struct ServerPathOptions {
  std::string server_binary = SAMPLED_SERVER_BIN_DEFAULT;
  std::string samplectl_binary = SAMPLED_SAMPLECTL_BIN_DEFAULT;
  std::string cases = "sd:4096x4096x2,sd:1024x1024x2,svgd:4096x4096x2,svgd:1024x1024x2,mmd:4096x4096x2,"
                      "mmd:1024x1024x2,king:4096x4096x2,king:1024x1024x2";
  int threads = 2;            // the server's compute threads per job (--torch-threads)
  double job_seconds = 4.0;   // how long each job runs
  int repeats = 20;           // bare steps timed per case
  // The tuned peer's seconds per step for sd 4096 x 4096 x 2 (fixed bandwidth), when measured; its BLAS.
  double peer_sd_4096_s = 0;
  std::string peer_blas;
};

// One JSON line per case on stdout. Returns a process exit code.
int RunServerPath(const ServerPathOptions& o);
int RunUpload(const ServerPathOptions& o);
int RunCli(const ServerPathOptions& o);

}  // namespace sampled::bench

#endif  // SAMPLED_TESTS_BENCH_SERVER_PATH_H_
