// samplectl's commands against an in-process server: outputs, exit codes and error messages.
#include "client/cpp/cli.h"

#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/common/rng.h"
#include "core/io/array_file.h"
#include "tests/server/test_server.h"

namespace sampled::testing {
namespace {

using ::testing::HasSubstr;

struct Result {
  int code;
  std::string out, err;
};

class SamplectlTest : public ::testing::Test {
 protected:
  Result Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", t_.address});
    std::ostringstream out, err;
    const int code = client::RunSamplectl(args, out, err);
    return {code, out.str(), err.str()};
  }
  std::string Id(std::vector<std::string> args) {
    Result r = Run(std::move(args));
    EXPECT_EQ(r.code, 0) << r.err;
    return std::string(absl::StripAsciiWhitespace(r.out));
  }

  TestServer t_;
};

TEST_F(SamplectlTest, DemoPathThroughTheCli) {
  const std::string s = Id({"session", "create", "--name", "cli"});
  EXPECT_THAT(s, ::testing::StartsWith("s_"));
  Rng rng(1);
  Points data(400, 2);
  rng.FillNormal(data.data(), data.size());
  const std::string file = ::testing::TempDir() + "/data.csv";
  ASSERT_TRUE(WriteArrayFile(file, data).ok());
  const std::string t = Id({"target", "upload", "--session", s, "--name", "data", "--file", file});
  EXPECT_THAT(t, ::testing::StartsWith("t_"));
  const std::string g = Id({"target", "define", "--session", s, "--name", "g", "--family", "mixture", "--param",
                            "means=-2,2,2,-2", "--param", "std=0.5", "--sample", "300", "--seed", "2"});
  Result list = Run({"target", "list", "--session", s});
  EXPECT_THAT(list.out, HasSubstr("data"));
  EXPECT_THAT(list.out, HasSubstr("points 300"));

  Result watched = Run({"flow", "start", "--session", s, "--target", g, "--method", "sd", "--particles", "200",
                        "--init-mean", "-6,6", "--steps", "50", "--noise", "cosine:4,0.5", "--eval-every", "25",
                        "--seed", "3", "--watch"});
  ASSERT_EQ(watched.code, 0) << watched.err;
  EXPECT_THAT(watched.out, HasSubstr("succeeded [##############################] 50/50 100%"));
  EXPECT_THAT(watched.out, HasSubstr("cfd="));
  const std::string job = std::string(absl::StrSplit(watched.out, '\n').begin()->data(), 18);
  EXPECT_THAT(job, ::testing::StartsWith("j_"));

  Result status = Run({"job", "status", job});
  EXPECT_THAT(status.out, HasSubstr("succeeded"));
  Result json = Run({"--json", "job", "status", job});
  EXPECT_THAT(json.out, HasSubstr("\"state\":\"JOB_STATE_SUCCEEDED\""));

  const std::string out = ::testing::TempDir() + "/p.npy";
  Result particles = Run({"particles", "--job", job, "--out", out});
  ASSERT_EQ(particles.code, 0) << particles.err;
  auto p = ReadArrayFile(out);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->points.rows(), 200);
  Result eval = Run({"eval", "--session", s, "--target", g, "--file", out, "--metrics", "mmd,cfd"});
  ASSERT_EQ(eval.code, 0) << eval.err;
  EXPECT_THAT(eval.out, HasSubstr("cfd"));
  EXPECT_THAT(eval.out, HasSubstr("mmd"));

  const std::string interactive = Id({"flow", "start", "--session", s, "--target", g, "--method", "sd",
                                      "--particles", "20", "--steps", "0"});
  Result step = Run({"flow", "step", "--job", interactive, "--steps", "2"});
  EXPECT_THAT(step.out, HasSubstr("step 2  mean move"));
  Result jobs = Run({"job", "list", "--session", s});
  EXPECT_EQ(std::count(jobs.out.begin(), jobs.out.end(), '\n'), 2);
  EXPECT_EQ(Run({"health"}).out, "SERVING\n");
}

TEST_F(SamplectlTest, ErrorsPrintTheCodeAndExitNonZero) {
  Result missing = Run({"session", "get", "s_nope"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_EQ(missing.err, "samplectl: NOT_FOUND: session 's_nope' not found\n");
  const std::string s = Id({"session", "create"});
  Result family = Run({"target", "define", "--session", s, "--name", "x", "--family", "nope"});
  EXPECT_EQ(family.code, 1);
  EXPECT_THAT(family.err, HasSubstr("INVALID_ARGUMENT: unknown target family 'nope'"));
  const std::string g = Id({"target", "define", "--session", s, "--name", "g", "--family", "gaussian"});
  Result option = Run({"flow", "start", "--session", s, "--target", g, "--method", "langevin", "--leapfrog", "3"});
  EXPECT_EQ(option.code, 1);
  EXPECT_THAT(option.err, HasSubstr("method 'langevin' has no option 'leapfrog'"));
  Result usage = Run({"session", "create", "--nmae", "x"});
  EXPECT_EQ(usage.code, 2);
  EXPECT_THAT(usage.err, HasSubstr("unknown flag --nmae"));
  EXPECT_EQ(Run({"frobnicate"}).code, 2);
  EXPECT_EQ(Run({"target", "upload", "--session", s}).code, 2);
  Result file = Run({"target", "upload", "--session", s, "--name", "n", "--file", "/nonexistent.npy"});
  EXPECT_EQ(file.code, 1);
  EXPECT_THAT(file.err, HasSubstr("NOT_FOUND: cannot open"));
  const std::string ragged = ::testing::TempDir() + "/ragged.csv";
  {
    std::ofstream f(ragged);
    f << "1,2\n3,4,5\n";
  }
  Result r = Run({"target", "upload", "--session", s, "--name", "r", "--file", ragged});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("csv line 2 has 3 values"));
  Result cancel = Run({"job", "cancel", "j_nope"});
  EXPECT_THAT(cancel.err, HasSubstr("NOT_FOUND"));
}

// `flow methods` says each parameter's default, the float32 kernel sums and the median subset among them.
TEST_F(SamplectlTest, FlowMethodsPrintTheDefaults) {
  Result methods = Run({"flow", "methods"});
  ASSERT_EQ(methods.code, 0) << methods.err;
  EXPECT_THAT(methods.out, HasSubstr("--dtype: precision of the kernel sums: float32 (default"));
  EXPECT_THAT(methods.out, HasSubstr("--median-pairs: pairs the median rules measure"));
  EXPECT_THAT(methods.out, HasSubstr("--batch: points per batch"));
}

}  // namespace
}  // namespace sampled::testing
