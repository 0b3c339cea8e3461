// The findings of the hardening issue (docs/architecture.md, "Bounded, cancellable work"), each driven
// through the real server on 127.0.0.1:0: what a request could do to the server before, and what it does
// now. Each test failed before its fix.
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <optional>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "core/common/rng.h"
#include "tests/server/test_server.h"

namespace sampled::testing {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::sampled::v1;

Points Normal(int64_t n, int64_t d, uint64_t seed) {
  Rng rng(seed);
  Points p(n, d);
  rng.FillNormal(p.data(), p.size());
  return p;
}

v1::FlowSpec Spec(const std::string& method, int64_t particles, int64_t steps) {
  v1::FlowSpec s;
  s.set_method(method);
  s.set_particle_count(particles);
  s.set_steps(steps);
  s.set_seed(3);
  return s;
}

class HardeningTest : public ::testing::Test {
 protected:
  static server::ServerOptions Options() {
    server::ServerOptions o = TestOptions();
    o.limits.max_points_per_target = 5000;
    o.limits.max_particles = 5000;
    o.limits.max_dim = 100;
    o.limits.max_array_values = 200000;
    o.call_workers = 1;
    return o;
  }
  explicit HardeningTest(server::ServerOptions o = Options()) : t_(o), c_(*t_.client) {}

  std::string NewSession() {
    auto s = c_.CreateSession("h");
    EXPECT_TRUE(s.ok()) << s.status();
    return s->id();
  }
  std::string Data(const std::string& session, const std::string& name, int64_t n = 200, int64_t d = 2) {
    auto t = c_.UploadTarget(session, name, Normal(n, d, 1));
    EXPECT_TRUE(t.ok()) << t.status();
    return t->id();
  }
  void WaitState(const std::string& job, v1::JobState state) {
    const absl::Time deadline = absl::Now() + absl::Seconds(120);
    while (absl::Now() < deadline) {
      auto j = c_.GetJob(job);
      ASSERT_TRUE(j.ok()) << j.status();
      if (j->state() == state) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    FAIL() << "job " << job << " never reached state " << state;
  }

  TestServer t_;
  client::SampledClient& c_;
};

// 1. Inline samples are checked like an upload: finite, bounded by values; reference_size is bounded.
TEST_F(HardeningTest, Finding1InlineSamplesAreFiniteAndBounded) {
  const std::string s = NewSession();
  const std::string data = Data(s, "data");
  Points bad = Normal(10, 2, 2);
  bad(3, 1) = std::numeric_limits<double>::quiet_NaN();
  client::SampleSource src;
  src.samples = &bad;
  auto nan = c_.Evaluate(s, data, src, {"mmd"});
  EXPECT_EQ(nan.status().code(), absl::StatusCode::kInvalidArgument) << nan.status();
  EXPECT_THAT(nan.status().message(), HasSubstr("non-finite"));
  // 4000 rows x 100 columns: within max_points_per_target, past max_array_values.
  auto wide_target = c_.DefineTarget(s, "g100", "gaussian", 100, {});
  ASSERT_TRUE(wide_target.ok()) << wide_target.status();
  const Points wide = Normal(4000, 100, 3);
  src.samples = &wide;
  EXPECT_EQ(c_.Evaluate(s, wide_target->id(), src, {"ksd"}).status().code(), absl::StatusCode::kResourceExhausted);
  // reference_size past the limits.
  grpc::ClientContext ctx;
  v1::EvaluateResponse response;
  auto stub = v1::EvaluationService::NewStub(grpc::CreateChannel(t_.address, grpc::InsecureChannelCredentials()));
  auto writer = stub->Evaluate(&ctx, &response);
  v1::EvaluateRequest header;
  header.mutable_header()->set_session_id(s);
  header.mutable_header()->set_target_id(data);
  header.mutable_header()->set_samples_target_id(data);
  header.mutable_header()->set_reference_size(int64_t{1} << 40);
  ASSERT_TRUE(writer->Write(header));
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("reference_size"));
}

// 2. Jobs can be deleted (a running one is stopped first), and their memory is no longer counted.
TEST_F(HardeningTest, Finding2JobsCanBeDeleted) {
  const std::string s = NewSession();
  const std::string data = Data(s, "data");
  auto done = c_.StartFlow(s, data, Spec("sd", 100, 3));
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_TRUE(c_.WatchJob(done->id(), nullptr).ok());
  auto running = c_.StartFlow(s, data, Spec("sd", 100, 100000000));
  ASSERT_TRUE(running.ok());
  WaitState(running->id(), v1::JOB_STATE_RUNNING);
  std::shared_ptr<server::Job> held = *t_.server->backend().jobs().Get(running->id());
  ASSERT_TRUE(c_.DeleteJob(done->id()).ok());
  ASSERT_TRUE(c_.DeleteJob(running->id()).ok());
  EXPECT_EQ(c_.GetJob(done->id()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c_.DeleteJob(running->id()).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(c_.ListJobs(s)->empty());
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (!server::IsTerminal(held->state()) && absl::Now() < deadline) std::this_thread::yield();
  EXPECT_EQ(held->state(), server::JobState::kCancelled);
  auto session = c_.GetSession(s);
  ASSERT_TRUE(session.ok());
  EXPECT_EQ(session->bytes_held(), 200 * 2 * 8);  // the target only
}

// 2. Retention: a session keeps its newest ended jobs up to the count, and none past the age.
class SessionQuotaTest : public HardeningTest {
 protected:
  static server::ServerOptions Quota() {
    server::ServerOptions o = TestOptions();
    o.limits.max_session_bytes = 1 << 20;
    return o;
  }
  SessionQuotaTest() : HardeningTest(Quota()) {}
};

// A session past --max-session-bytes is refused what would take it further, naming the quota; another
// session is not affected, and deleting makes room again.
TEST_F(SessionQuotaTest, ASessionIsRefusedPastItsQuotaAndOthersAreNot) {
  const std::string a = NewSession(), b = NewSession();
  auto first = c_.UploadTarget(a, "first", Normal(100000, 1, 1));  // 800,000 bytes
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = c_.UploadTarget(a, "second", Normal(50000, 1, 2));  // 400,000 more
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("--max-session-bytes"));
  auto draws = c_.DefineTarget(a, "draws", "gaussian", 2, {}, 20000);
  EXPECT_EQ(draws.status().code(), absl::StatusCode::kResourceExhausted) << draws.status();
  auto flow = c_.StartFlow(a, first->id(), Spec("sd", 20000, 0));
  EXPECT_EQ(flow.status().code(), absl::StatusCode::kResourceExhausted) << flow.status();
  EXPECT_THAT(flow.status().message(), HasSubstr("sd flow of 20000 particles"));
  // (An SD flow on the data would hold a centred copy of it: 1.6 MB here.) A small one on a density fits.
  auto g = c_.DefineTarget(a, "g", "gaussian", 1, {});
  ASSERT_TRUE(g.ok()) << g.status();
  auto small = c_.StartFlow(a, g->id(), Spec("langevin", 100, 0));
  EXPECT_TRUE(small.ok()) << small.status();
  EXPECT_TRUE(c_.UploadTarget(b, "first", Normal(100000, 1, 3)).ok());  // another session's own quota
  ASSERT_TRUE(c_.DeleteTarget(a, first->id()).ok());
  EXPECT_TRUE(c_.UploadTarget(a, "second", Normal(50000, 1, 2)).ok());
}

TEST(JobRetentionTest, EndedJobsPastTheCountOrAgeAreForgotten) {
  server::ServerOptions o = TestOptions();
  o.limits.job_retention_count = 2;
  TestServer t(o);
  auto s = t.client->CreateSession("r");
  auto data = t.client->UploadTarget(s->id(), "data", Normal(50, 2, 1));
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    auto j = t.client->StartFlow(s->id(), data->id(), Spec("sd", 10, 1));
    ASSERT_TRUE(j.ok()) << j.status();
    ASSERT_TRUE(t.client->WatchJob(j->id(), nullptr).ok());
    ids.push_back(j->id());
  }
  // Each start pruned to the newest two ended jobs before adding itself.
  auto listed = t.client->ListJobs(s->id());
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ((*listed)[0].id(), ids[1]);
  EXPECT_EQ(t.client->GetJob(ids[0]).status().code(), absl::StatusCode::kNotFound);
  server::ServerOptions young = TestOptions();
  young.limits.job_retention_age = absl::ZeroDuration();
  TestServer u(young);
  auto s2 = u.client->CreateSession("r");
  auto data2 = u.client->UploadTarget(s2->id(), "data", Normal(50, 2, 1));
  auto first = u.client->StartFlow(s2->id(), data2->id(), Spec("sd", 10, 1));
  ASSERT_TRUE(u.client->WatchJob(first->id(), nullptr).ok());
  auto second = u.client->StartFlow(s2->id(), data2->id(), Spec("sd", 10, 0));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(u.client->GetJob(first->id()).status().code(), absl::StatusCode::kNotFound);
}

// 2, 3. Requests sized to exhaust memory are refused, never a crash: an allocation that fails anywhere
// (an upload's buffer, a target's draws, a flow's particles) is RESOURCE_EXHAUSTED and the server serves on.
class HugeLimitsTest : public HardeningTest {
 protected:
  static server::ServerOptions Huge() {
    server::ServerOptions o = TestOptions();
    o.limits.max_points_per_target = int64_t{1} << 40;
    o.limits.max_particles = int64_t{1} << 40;
    o.limits.max_array_values = int64_t{1} << 50;
    o.max_memory = 0;  // no budget: the allocator itself refuses (the budget's own test is below)
    return o;
  }
  HugeLimitsTest() : HardeningTest(Huge()) {}
};

TEST_F(HugeLimitsTest, Finding3AllocationFailuresAreStatusesNotCrashes) {
  const std::string s = NewSession();
  // 2^37 rows x 8 columns x 8 bytes = 8 TiB: no machine's allocator gives it.
  const int64_t rows = int64_t{1} << 37;
  auto draws = c_.DefineTarget(s, "huge", "gaussian", 8, {}, rows);
  EXPECT_EQ(draws.status().code(), absl::StatusCode::kResourceExhausted) << draws.status();
  EXPECT_THAT(draws.status().message(), HasSubstr("out of memory"));
  auto data = Data(s, "data", 100, 8);
  v1::FlowSpec spec = Spec("sd", rows, 0);
  auto flow = c_.StartFlow(s, data, spec);
  EXPECT_EQ(flow.status().code(), absl::StatusCode::kResourceExhausted) << flow.status();
  // An upload announcing that many rows reserves its buffer up front.
  grpc::ClientContext ctx;
  v1::Target response;
  auto stub = v1::TargetService::NewStub(grpc::CreateChannel(t_.address, grpc::InsecureChannelCredentials()));
  auto writer = stub->UploadTarget(&ctx, &response);
  v1::UploadTargetRequest header;
  header.mutable_header()->set_session_id(s);
  header.mutable_header()->set_name("upload");
  header.mutable_header()->set_dtype(v1::DTYPE_FLOAT64);
  header.mutable_header()->set_dim(8);
  header.mutable_header()->set_expected_rows(rows);
  writer->Write(header);
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  // Still serving, nothing half-stored.
  auto targets = c_.ListTargets(s);
  ASSERT_TRUE(targets.ok()) << targets.status();
  EXPECT_EQ(targets->size(), 1u);
}

// The resident set of this process, in bytes.
// The process's resident bytes after glibc has handed its free pages back: blocks that gRPC's threads
// allocated and freed (message buffers, per-thread arenas) stay resident until trimmed, and would count as
// growth that no live object holds (CI once saw 19 MB of them beside a 64 MB target).
// Under a sanitizer the allocator is the sanitizer's (shadow memory, quarantine, redzones): resident growth
// is not the program's, and the tests compare it only in the plain build (deploy/sanitizers.sh runs them for
// their races and memory errors).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kResidentIsTheProgram = false;
#else
constexpr bool kResidentIsTheProgram = true;
#endif

int64_t ResidentBytes() {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

// 2. One memory budget: requests past it are refused before they allocate (the process grows by less than
// 64 MB), naming what to reduce; what is stored is accounted by kind and matches the resident growth.
class MemoryBudgetTest : public HardeningTest {
 protected:
  static server::ServerOptions Budget() {
    server::ServerOptions o = TestOptions();
    o.limits.max_particles = 100000;
    o.max_memory = int64_t{96} << 20;
    return o;
  }
  MemoryBudgetTest() : HardeningTest(Budget()) {}
  int64_t Used(server::MemoryKind k) { return t_.server->backend().memory().used(k); }
  // A charge goes with the last holder of its object, which may be a call worker finishing its task just after
  // the reply (CI under load saw a deleted job's charge still held when DeleteJob returned): wait for it.
  int64_t UsedOnceReleased(std::optional<server::MemoryKind> k) {
    const auto used = [&] { return k ? Used(*k) : t_.server->backend().memory().used(); };
    const absl::Time deadline = absl::Now() + absl::Seconds(120);
    while (used() != 0 && absl::Now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return used();
  }
};

TEST_F(MemoryBudgetTest, Finding2RequestsPastTheBudgetAreRefusedBeforeAllocating) {
  const std::string s = NewSession();
  const int64_t rss0 = ResidentBytes();
  // 8e6 draws in 4-D (256 MB with their copy): refused before drawing.
  auto draws = c_.DefineTarget(s, "draws", "gaussian", 4, {}, 8000000);
  EXPECT_EQ(draws.status().code(), absl::StatusCode::kResourceExhausted) << draws.status();
  EXPECT_THAT(draws.status().message(), HasSubstr("--max-memory"));
  // An upload that grows past the budget is refused at the chunk that would pass it.
  const Points big = Normal(4000000, 4, 5);  // 128 MB on the client's side
  const int64_t rss_client = ResidentBytes();
  auto upload = c_.UploadTarget(s, "big", big);
  EXPECT_EQ(upload.status().code(), absl::StatusCode::kResourceExhausted) << upload.status();
  if (kResidentIsTheProgram) EXPECT_LT(ResidentBytes() - rss_client, int64_t{64} << 20);
  EXPECT_EQ(Used(server::MemoryKind::kUploads), 0);
  // A KiNG flow whose basis asks for gigabytes of Jacobians.
  auto data = c_.UploadTarget(s, "data", Normal(2000, 8, 6));
  ASSERT_TRUE(data.ok()) << data.status();
  const int64_t stored = Used(server::MemoryKind::kTargets);
  EXPECT_EQ(stored, 2000 * 8 * 8);
  v1::FlowSpec king = Spec("king", 50000, 0);
  (*king.mutable_options())["basis"] = "20000";
  auto flow = c_.StartFlow(s, data->id(), king);
  EXPECT_EQ(flow.status().code(), absl::StatusCode::kResourceExhausted) << flow.status();
  EXPECT_THAT(flow.status().message(), HasSubstr("king flow of 50000 particles"));
  if (kResidentIsTheProgram) {
    EXPECT_LT(ResidentBytes() - rss0, (int64_t{128} << 20) + (int64_t{64} << 20));  // the client's array, < 64 MB
  }
  // What fits is charged while it lives: a flow's state and workspace, then nothing once deleted.
  auto sd = c_.StartFlow(s, data->id(), Spec("sd", 1000, 0));
  ASSERT_TRUE(sd.ok()) << sd.status();
  EXPECT_GT(Used(server::MemoryKind::kJobs), 1000 * 8 * 8);
  ASSERT_TRUE(c_.DeleteJob(sd->id()).ok());
  EXPECT_EQ(UsedOnceReleased(server::MemoryKind::kJobs), 0);
  ASSERT_TRUE(c_.DeleteTarget(s, data->id()).ok());
  EXPECT_EQ(UsedOnceReleased(server::MemoryKind::kTargets), 0);
  EXPECT_EQ(UsedOnceReleased(std::nullopt), 0);
}

// The accounted bytes of a stored target match the process's resident growth (within 16 MB).
TEST(MemoryAccountingTest, AccountedTargetBytesMatchResidentGrowth) {
  if (!kResidentIsTheProgram) GTEST_SKIP() << "resident memory under a sanitizer is not the program's";
  server::ServerOptions o = TestOptions();
  o.max_memory = int64_t{1} << 30;
  TestServer t(o);
  auto s = t.client->CreateSession("m");
  const Points data = Normal(1000000, 8, 7);  // 64 MB on the client's side, allocated before measuring
  const int64_t before = ResidentBytes();
  auto target = t.client->UploadTarget(s->id(), "data", data);
  ASSERT_TRUE(target.ok()) << target.status();
  const int64_t grown = ResidentBytes() - before;
  const int64_t accounted = t.server->backend().memory().used(server::MemoryKind::kTargets);
  EXPECT_EQ(accounted, 1000000 * 8 * 8);
  EXPECT_EQ(t.server->backend().memory().used(), accounted);  // the upload's buffer went with it
  EXPECT_NEAR(static_cast<double>(grown), static_cast<double>(accounted), 16 << 20) << grown;
}

// 4. Handlers do not compute: a target's draws, a flow's particles and an upload's check wait for a call
// worker, so with the one call worker busy they wait too (and the handler threads are free meanwhile).
TEST_F(HardeningTest, Finding4WorkThatComputesWaitsForACallWorker) {
  const std::string s = NewSession();
  const std::string data = Data(s, "data");
  auto slow = c_.StartFlow(s, data, Spec("sd", 100, 0));
  ASSERT_TRUE(slow.ok());
  absl::StatusOr<v1::StepFlowResponse> stepped;
  std::thread stepper([&] { stepped = c_.StepFlow(slow->id(), 100000000); });
  WaitState(slow->id(), v1::JOB_STATE_RUNNING);
  std::atomic<bool> defined{false};
  absl::StatusOr<v1::Target> draws;
  std::thread definer([&] {
    draws = c_.DefineTarget(s, "draws", "gaussian", 2, {}, 1000);
    defined = true;
  });
  while (t_.server->backend().jobs().ComputeTotals().queued_tasks == 0) std::this_thread::yield();
  EXPECT_FALSE(defined.load());               // queued behind the step: not drawn on the handler
  EXPECT_TRUE(c_.GetSession(s).ok());          // a handler is free meanwhile
  ASSERT_TRUE(c_.CancelJob(slow->id()).ok());
  definer.join();
  stepper.join();
  ASSERT_TRUE(draws.ok()) << draws.status();
  EXPECT_EQ(draws->point_count(), 1000);
  EXPECT_EQ(stepped.status().code(), absl::StatusCode::kCancelled);
}

// 5. A client that gives up stops its work: a StepFlow past its deadline cancels the run at the next step,
// and the call worker is free for the next caller.
TEST_F(HardeningTest, Finding5AClientThatGivesUpStopsTheWork) {
  const std::string s = NewSession();
  const std::string data = Data(s, "data");
  auto flow = c_.StartFlow(s, data, Spec("sd", 100, 0));
  ASSERT_TRUE(flow.ok());
  auto impatient = client::SampledClient::Connect(t_.address);
  impatient->set_timeout(absl::Milliseconds(300));
  auto stepped = impatient->StepFlow(flow->id(), 100000000);
  EXPECT_EQ(stepped.status().code(), absl::StatusCode::kDeadlineExceeded) << stepped.status();
  WaitState(flow->id(), v1::JOB_STATE_CANCELLED);
  auto other = c_.StartFlow(s, data, Spec("sd", 50, 0));
  ASSERT_TRUE(other.ok()) << other.status();
  auto next = c_.StepFlow(other->id(), 2);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->job().step(), 2);
}

// 5 (fairness). With one call worker and one job worker, a long run of session A does not make session
// B's short work wait for it: the long run yields between slices.
TEST_F(HardeningTest, Finding5SessionsShareTheWorkers) {
  const std::string a = NewSession(), b = NewSession();
  const std::string data_a = Data(a, "data"), data_b = Data(b, "data");
  auto long_job = c_.StartFlow(a, data_a, Spec("sd", 100, 100000000));
  ASSERT_TRUE(long_job.ok());
  WaitState(long_job->id(), v1::JOB_STATE_RUNNING);
  auto short_job = c_.StartFlow(b, data_b, Spec("sd", 100, 20));
  ASSERT_TRUE(short_job.ok());
  auto ended = c_.WatchJob(short_job->id(), nullptr);
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(c_.GetJob(long_job->id())->state(), v1::JOB_STATE_RUNNING);  // still going
  // The same for calls: a long StepFlow of A, a short one of B.
  auto long_flow = c_.StartFlow(a, data_a, Spec("sd", 100, 0));
  auto short_flow = c_.StartFlow(b, data_b, Spec("sd", 50, 0));
  ASSERT_TRUE(long_flow.ok() && short_flow.ok());
  absl::StatusOr<v1::StepFlowResponse> long_stepped;
  std::thread stepper([&] { long_stepped = c_.StepFlow(long_flow->id(), 100000000); });
  WaitState(long_flow->id(), v1::JOB_STATE_RUNNING);
  auto short_stepped = c_.StepFlow(short_flow->id(), 5);
  ASSERT_TRUE(short_stepped.ok()) << short_stepped.status();
  EXPECT_EQ(c_.GetJob(long_flow->id())->state(), v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(c_.CancelJob(long_flow->id()).ok());
  ASSERT_TRUE(c_.CancelJob(long_job->id()).ok());
  stepper.join();
}

// 6. StepFlow returns the statistics of its last 10,000 steps (and counts the others), and a step that
// fails keeps those taken before it.
TEST_F(HardeningTest, Finding6StepStatisticsAreBoundedAndKeptOnFailure) {
  const std::string s = NewSession();
  const std::string data = Data(s, "data", 20);
  auto flow = c_.StartFlow(s, data, Spec("sd", 10, 0));
  ASSERT_TRUE(flow.ok());
  auto stepped = c_.StepFlow(flow->id(), 10050);
  ASSERT_TRUE(stepped.ok()) << stepped.status();
  EXPECT_EQ(stepped->stats_size(), 10000);
  EXPECT_EQ(stepped->stats_omitted(), 50);
  EXPECT_EQ(stepped->stats(0).step(), 51);
  EXPECT_EQ(stepped->stats(9999).step(), 10050);
  // Langevin with a step of 1e6 on a standard Gaussian: |x| grows ~1e6-fold a step, past 1e308 by step 60.
  auto g = c_.DefineTarget(s, "g", "gaussian", 2, {});
  ASSERT_TRUE(g.ok());
  v1::FlowSpec spec = Spec("langevin", 10, 0);
  spec.set_step_size(1e6);
  auto blowup = c_.StartFlow(s, g->id(), spec);
  ASSERT_TRUE(blowup.ok()) << blowup.status();
  auto failed = c_.StepFlow(blowup->id(), 1000);
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->job().state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(failed->job().error().message(), HasSubstr("non-finite"));
  EXPECT_GT(failed->stats_size(), 5);
  EXPECT_LT(failed->stats_size(), 1000);
  EXPECT_EQ(failed->job().step(), failed->stats_size());
  EXPECT_EQ(failed->stats(failed->stats_size() - 1).step(), failed->job().step());
}

// 7. Shutdown does not wait for a step to end: a step stops between its blocks, and the job is cancelled
// with the state of its last whole step.
TEST(HardeningShutdownTest, Finding7ShutdownStopsAStepMidway) {
  server::ServerOptions o = TestOptions();
  o.limits.max_particles = 20000;
  o.shutdown_grace = absl::Seconds(600);
  TestServer t(o);
  auto s = t.client->CreateSession("x");
  auto data = t.client->UploadTarget(s->id(), "data", Normal(20000, 64, 1));
  ASSERT_TRUE(data.ok()) << data.status();
  // SD on 20000 particles against 20000 points in 64-D: a step of 4e8 kernel pairs, seconds long.
  auto job = t.client->StartFlow(s->id(), data->id(), Spec("sd", 20000, 1000));
  ASSERT_TRUE(job.ok()) << job.status();
  std::shared_ptr<server::Job> held = *t.server->backend().jobs().Get(job->id());
  while (held->state() != server::JobState::kRunning) std::this_thread::yield();
  t.server->Shutdown();
  EXPECT_EQ(held->state(), server::JobState::kCancelled);
  EXPECT_EQ(held->Snapshot().step, 0);  // the first step was stopped, not waited for
  EXPECT_THAT(held->Snapshot().error.message(), HasSubstr("cancelled in step 1"));
}

// 8. Target messages leave out parameters past 4096 values (a 100-D covariance), unless asked for.
TEST_F(HardeningTest, Finding8LargeParametersAreLeftOutOfTargetMessages) {
  const std::string s = NewSession();
  auto g = c_.DefineTarget(s, "g", "gaussian", 100, {});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_FALSE(g->params().contains("cov"));
  EXPECT_THAT(g->omitted_params(), ::testing::ElementsAre("cov"));
  EXPECT_EQ(g->params().at("mean").values_size(), 100);
  auto listed = c_.ListTargets(s);
  ASSERT_TRUE(listed.ok());
  EXPECT_FALSE((*listed)[0].params().contains("cov"));
  auto full = c_.GetTarget(s, g->id(), /*full_params=*/true);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->params().at("cov").values_size(), 100 * 100);
  EXPECT_TRUE(full->omitted_params().empty());
}

// 9. A failed evaluation does not fail a healthy flow (MMD against a one-point target cannot be computed;
// the flow runs on and reports why), and a failed flow can be stepped again from its last good step.
TEST_F(HardeningTest, Finding9AFailedEvaluationDoesNotFailTheFlow) {
  const std::string s = NewSession();
  auto one = c_.UploadTarget(s, "one", Normal(1, 2, 4));
  ASSERT_TRUE(one.ok()) << one.status();
  v1::FlowSpec spec = Spec("sd", 20, 5);
  spec.set_eval_every(1);
  spec.add_eval_metrics("mmd");
  auto job = c_.StartFlow(s, one->id(), spec);
  ASSERT_TRUE(job.ok()) << job.status();
  auto ended = c_.WatchJob(job->id(), nullptr);
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << ended->error().message();
  EXPECT_EQ(ended->step(), 5);
  EXPECT_THAT(ended->metrics_error(), HasSubstr("at least 2 samples"));
  // The failed flow of finding 6, stepped again with a sane step size is not possible (the size is
  // fixed), but it can be stepped: it fails again at once from the same particles.
  auto g = c_.DefineTarget(s, "g", "gaussian", 2, {});
  v1::FlowSpec lg = Spec("langevin", 10, 0);
  lg.set_step_size(1e6);
  auto blowup = c_.StartFlow(s, g->id(), lg);
  auto failed = c_.StepFlow(blowup->id(), 1000);
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->job().state(), v1::JOB_STATE_FAILED);
  const Points before = *c_.GetParticles(blowup->id());
  auto again = c_.StepFlow(blowup->id(), 1);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->job().state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(again->job().step(), failed->job().step());
  EXPECT_EQ(*c_.GetParticles(blowup->id()), before);
  EXPECT_TRUE(before.allFinite());
}

}  // namespace
}  // namespace sampled::testing
