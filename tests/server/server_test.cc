// The server in-process on 127.0.0.1:0, driven through the C++ client: every RPC family, the error codes
// a caller relies on, cancellation, session deletion, the queue bound, and the metrics endpoint.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "core/common/rng.h"
#include "core/io/array_codec.h"
#include "tests/server/test_server.h"

namespace sampled::testing {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::sampled::v1;

Points Normal(int64_t n, int64_t d, uint64_t seed, double shift = 0) {
  Rng rng(seed);
  Points p(n, d);
  rng.FillNormal(p.data(), p.size());
  return p.array() + shift;
}

v1::FlowSpec SdSpec(int64_t particles, int64_t steps) {
  v1::FlowSpec s;
  s.set_method("sd");
  s.set_particle_count(particles);
  s.set_steps(steps);
  s.set_seed(3);
  return s;
}

std::string Scrape(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  ::send(fd, req.data(), req.size(), 0);
  std::string out;
  char buf[8192];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

// The value of the series whose line starts with `series` ("name{labels}"), or 0 when absent.
double Sample(const std::string& exposition, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      double v = 0;
      EXPECT_TRUE(absl::SimpleAtod(line.substr(series.size() + 1), &v));
      return v;
    }
  }
  return 0;
}

class ServerTest : public ::testing::Test {
 protected:
  static server::ServerOptions Options() {
    server::ServerOptions o = TestOptions();
    o.limits.max_points_per_target = 5000;
    o.limits.max_particles = 5000;
    o.limits.max_dim = 64;
    o.limits.max_queued_jobs = 2;
    o.limits.max_targets_per_session = 6;
    o.limits.max_array_values = 200000;
    o.call_workers = 1;                        // a long call occupies it: the next one waits
    o.slice_time = absl::InfiniteDuration();   // and does not yield (ServerFairnessTest covers slices)
    return o;
  }
  ServerTest() : t_(Options()), c_(*t_.client) {}

  std::string NewSession() {
    auto s = c_.CreateSession("test");
    EXPECT_TRUE(s.ok()) << s.status();
    return s->id();
  }
  std::string DataTarget(const std::string& session, const std::string& name, int64_t n = 300) {
    auto t = c_.UploadTarget(session, name, Normal(n, 2, 1, 1.5));
    EXPECT_TRUE(t.ok()) << t.status();
    return t->id();
  }
  // Waits until the job is running. A watch alone is not enough: started on a job that is still in its
  // previous terminal state (a stopped flow whose StepFlow has not reached the server yet) it ends at once.
  void WaitRunning(const std::string& job) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      auto j = c_.GetJob(job);
      ASSERT_TRUE(j.ok()) << j.status();
      if (j->state() == v1::JOB_STATE_RUNNING) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    FAIL() << "job " << job << " never ran";
  }

  // Starts an SD job that would run for hours and waits until it is running.
  absl::StatusOr<v1::Job> StartRunningJob(const std::string& session, const std::string& target) {
    absl::StatusOr<v1::Job> job = c_.StartFlow(session, target, SdSpec(100, 100000000));
    if (job.ok()) WaitRunning(job->id());
    return job;
  }

  TestServer t_;
  client::SampledClient& c_;
};

TEST_F(ServerTest, SessionsCreateGetListPaginateDelete) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(NewSession());
  auto all = c_.ListSessions();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 5u);
  // Pages of two follow creation order.
  auto stub = v1::SessionService::NewStub(grpc::CreateChannel(t_.address, grpc::InsecureChannelCredentials()));
  v1::ListSessionsRequest r;
  r.set_page_size(2);
  std::vector<std::string> paged;
  do {
    grpc::ClientContext ctx;
    v1::ListSessionsResponse page;
    ASSERT_TRUE(stub->ListSessions(&ctx, r, &page).ok());
    EXPECT_LE(page.sessions_size(), 2);
    for (const auto& s : page.sessions()) paged.push_back(s.id());
    r.set_page_token(page.next_page_token());
  } while (!r.page_token().empty());
  EXPECT_EQ(paged, ids);
  r.set_page_token("bogus");
  grpc::ClientContext ctx;
  v1::ListSessionsResponse page;
  EXPECT_EQ(stub->ListSessions(&ctx, r, &page).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  ASSERT_TRUE(c_.DeleteSession(ids[0]).ok());
  EXPECT_EQ(c_.GetSession(ids[0]).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c_.DeleteSession(ids[0]).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c_.GetSession(ids[1])->name(), "test");
}

TEST_F(ServerTest, UploadSurvivesAnyChunkingAndBothDtypes) {
  const std::string s = NewSession();
  const Points p = Normal(3000, 3, 2);
  auto f64 = c_.UploadTarget(s, "f64", p, DType::kFloat64, /*chunk_bytes=*/7 * 8 + 3);
  ASSERT_TRUE(f64.ok()) << f64.status();
  EXPECT_EQ(f64->point_count(), 3000);
  EXPECT_EQ(f64->dim(), 3);
  EXPECT_EQ(f64->kind(), v1::TARGET_KIND_SAMPLES);
  EXPECT_EQ(f64->bytes(), 3000 * 3 * 8);
  auto f32 = c_.UploadTarget(s, "f32", p, DType::kFloat32);
  ASSERT_TRUE(f32.ok());
  // An array in several 1 MiB messages (the 4 MiB default message limit is never raised).
  auto big = c_.UploadTarget(s, "big", Normal(3000, 64, 3));
  ASSERT_TRUE(big.ok()) << big.status();
  // The stored samples are the uploaded ones: the energy distance of the set to itself is -(2/n) U < 0.
  client::SampleSource src;
  src.samples = &p;
  auto e = c_.Evaluate(s, f64->id(), src, {"energy"});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_LT(e->metrics().at("energy"), 0.0);
  EXPECT_GT(e->metrics().at("energy"), -0.01);
  auto targets = c_.ListTargets(s);
  ASSERT_TRUE(targets.ok());
  EXPECT_EQ(targets->size(), 3u);
}

// Writes a raw upload stream: header, then the given chunks.
grpc::Status RawUpload(const std::string& address, const v1::UploadTargetHeader& header,
                       const std::vector<std::string>& chunks, bool send_header = true) {
  auto stub = v1::TargetService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::Target target;
  auto w = stub->UploadTarget(&ctx, &target);
  v1::UploadTargetRequest r;
  if (send_header) {
    *r.mutable_header() = header;
    w->Write(r);
  }
  for (const auto& c : chunks) {
    r.Clear();
    r.set_chunk(c);
    if (!w->Write(r)) break;
  }
  w->WritesDone();
  return w->Finish();
}

TEST_F(ServerTest, BadUploadsAreRefusedAndStoreNothing) {
  const std::string s = NewSession();
  const std::string kept = DataTarget(s, "kept");
  Points p = Normal(100, 2, 4);
  p(5, 1) = std::numeric_limits<double>::quiet_NaN();
  auto nan = c_.UploadTarget(s, "nan", p);
  EXPECT_EQ(nan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(nan.status().message(), HasSubstr("row 5, column 1"));
  p(5, 1) = std::numeric_limits<double>::infinity();
  EXPECT_THAT(c_.UploadTarget(s, "inf", p).status().message(), HasSubstr("non-finite"));

  v1::UploadTargetHeader h;
  h.set_session_id(s);
  h.set_name("raw");
  h.set_dtype(v1::DTYPE_FLOAT64);
  h.set_dim(2);
  const std::string row = EncodeRows(Normal(3, 2, 5), 0, 3, DType::kFloat64);
  grpc::Status ragged = RawUpload(t_.address, h, {row, row.substr(0, 8)});  // 6.5 rows
  EXPECT_EQ(ragged.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ragged.error_message(), HasSubstr("row boundary"));
  h.set_expected_rows(4);
  EXPECT_THAT(RawUpload(t_.address, h, {row}).error_message(), HasSubstr("expected 4 rows"));
  h.set_expected_rows(0);
  EXPECT_EQ(RawUpload(t_.address, h, {}, /*send_header=*/false).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  h.set_dtype(v1::DTYPE_UNSPECIFIED);
  EXPECT_THAT(RawUpload(t_.address, h, {row}).error_message(), HasSubstr("dtype"));
  h.set_dtype(v1::DTYPE_FLOAT64);
  h.set_dim(0);
  EXPECT_EQ(RawUpload(t_.address, h, {row}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  h.set_dim(65);
  EXPECT_THAT(RawUpload(t_.address, h, {row}).error_message(), HasSubstr("limit 64"));

  // Past the server's limits: RESOURCE_EXHAUSTED, whether announced or discovered while streaming.
  EXPECT_EQ(c_.UploadTarget(s, "huge", Normal(5001, 2, 6)).status().code(), absl::StatusCode::kResourceExhausted);
  h.set_dim(2);
  h.set_expected_rows(0);
  std::vector<std::string> many(2, EncodeRows(Normal(2600, 2, 7), 0, 2600, DType::kFloat64));
  EXPECT_EQ(RawUpload(t_.address, h, many).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  EXPECT_EQ(c_.UploadTarget("s_nope", "x", Normal(3, 2, 1)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c_.UploadTarget(s, "kept", Normal(3, 2, 1)).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(c_.UploadTarget(s, "", Normal(3, 2, 1)).status().code(), absl::StatusCode::kInvalidArgument);

  auto targets = c_.ListTargets(s);
  ASSERT_TRUE(targets.ok());
  ASSERT_EQ(targets->size(), 1u);
  EXPECT_EQ((*targets)[0].id(), kept);
  EXPECT_EQ((*targets)[0].point_count(), 300);
}

TEST_F(ServerTest, ACancelledUploadStoresNothing) {
  const std::string s = NewSession();
  auto stub = v1::TargetService::NewStub(grpc::CreateChannel(t_.address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::Target target;
  auto w = stub->UploadTarget(&ctx, &target);
  v1::UploadTargetRequest r;
  r.mutable_header()->set_session_id(s);
  r.mutable_header()->set_name("partial");
  r.mutable_header()->set_dtype(v1::DTYPE_FLOAT64);
  r.mutable_header()->set_dim(2);
  ASSERT_TRUE(w->Write(r));
  r.Clear();
  r.set_chunk(EncodeRows(Normal(10, 2, 1), 0, 10, DType::kFloat64));  // whole rows: a valid prefix
  ASSERT_TRUE(w->Write(r));
  ctx.TryCancel();
  EXPECT_EQ(w->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The server may see the cancellation a little later; either way it must not store the prefix.
  auto again = c_.UploadTarget(s, "partial", Normal(3, 2, 2));
  ASSERT_TRUE(again.ok()) << again.status();  // the name was never taken
  EXPECT_EQ(c_.ListTargets(s)->size(), 1u);
}

TEST_F(ServerTest, ArraysPastTheValueLimitAreRefused) {
  const std::string s = NewSession();
  // 200000 values: 3125 x 64 passes, 3126 x 64 does not (the row limit, 5000, is not what stops it).
  EXPECT_TRUE(c_.UploadTarget(s, "ok", Normal(3125, 64, 1)).ok());
  auto big = c_.UploadTarget(s, "big", Normal(3126, 64, 1));
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(big.status().message(), HasSubstr("200000 values"));
  auto draws = c_.DefineTarget(s, "draws", "gaussian", 64, {}, 3126);
  EXPECT_EQ(draws.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(ServerTest, DefineTargetsAndTheirErrors) {
  const std::string s = NewSession();
  auto g = c_.DefineTarget(s, "g", "gaussian", 0, {});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->kind(), v1::TARGET_KIND_DENSITY);
  EXPECT_EQ(g->dim(), 2);
  EXPECT_EQ(g->params().at("mean").values_size(), 2);
  auto draws = c_.DefineTarget(s, "draws", "mixture", 2, {}, 1000, 4);
  ASSERT_TRUE(draws.ok());
  EXPECT_EQ(draws->kind(), v1::TARGET_KIND_SAMPLES);
  EXPECT_EQ(draws->point_count(), 1000);

  auto unknown = c_.DefineTarget(s, "x", "banana", 2, {});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.status().message(), HasSubstr("known families: gaussian, mixture"));
  EXPECT_THAT(c_.DefineTarget(s, "x", "gaussian", 2, {{"mu", {0, 0}}}).status().message(), HasSubstr("no parameter 'mu'"));
  EXPECT_THAT(c_.DefineTarget(s, "x", "gaussian", 3, {{"mean", {0, 0}}}).status().message(), HasSubstr("expected 3 values"));
  EXPECT_THAT(c_.DefineTarget(s, "x", "rosenbrock", 3, {}).status().message(), HasSubstr("2 dimensions"));
  EXPECT_EQ(c_.DefineTarget(s, "x", "gaussian", 65, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c_.DefineTarget(s, "x", "donut", 2, {}, 10).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c_.DefineTarget(s, "x", "gaussian", 2, {}, 6000).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(c_.ListTargets(s)->size(), 2u);
  EXPECT_EQ(c_.GetTarget(s, "t_nope").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(c_.DeleteTarget(s, g->id()).ok());
  EXPECT_EQ(c_.DeleteTarget(s, g->id()).code(), absl::StatusCode::kNotFound);
  auto families = c_.ListFamilies();
  ASSERT_TRUE(families.ok());
  EXPECT_EQ(families->size(), 9u);  // six analytic, blr and gmm (over data), torchscript (uploaded)
}

TEST_F(ServerTest, FlowJobRunsReportsProgressAndHandsBackParticles) {
  const std::string s = NewSession();
  const std::string target = DataTarget(s, "data");
  v1::FlowSpec spec = SdSpec(200, 60);
  spec.set_eval_every(20);
  auto job = c_.StartFlow(s, target, spec);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->state(), ::testing::AnyOf(v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING));
  int64_t last_step = -1;
  int events = 0;
  auto final_job = c_.WatchJob(job->id(), [&](const v1::Job& j) {
    EXPECT_GE(j.step(), last_step);
    last_step = j.step();
    ++events;
  });
  ASSERT_TRUE(final_job.ok()) << final_job.status();
  EXPECT_GE(events, 2);  // at least the first state and the final one
  EXPECT_EQ(final_job->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(final_job->step(), 60);
  EXPECT_EQ(final_job->total_steps(), 60);
  EXPECT_EQ(final_job->metrics_step(), 60);
  EXPECT_TRUE(final_job->metrics().contains("cfd"));
  EXPECT_TRUE(final_job->metrics().contains("mmd"));
  EXPECT_TRUE(final_job->last_stats().has_bandwidth());
  EXPECT_GT(final_job->last_stats().seconds(), 0);
  EXPECT_TRUE(final_job->has_end_time());

  int64_t step = 0;
  auto particles = c_.GetParticles(job->id(), &step);
  ASSERT_TRUE(particles.ok()) << particles.status();
  EXPECT_EQ(particles->rows(), 200);
  EXPECT_EQ(step, 60);
  auto f32 = c_.GetParticles(job->id(), nullptr, DType::kFloat32);
  ASSERT_TRUE(f32.ok());
  EXPECT_LT((*f32 - *particles).cwiseAbs().maxCoeff(), 1e-5);
  // The flow moved the particles from N(0, I) toward the data around (1.5, 1.5).
  EXPECT_GT(particles->colwise().mean().minCoeff(), 1.0);

  client::SampleSource from_job;
  from_job.job_id = job->id();
  auto e = c_.Evaluate(s, target, from_job, {"mmd", "cfd"}, 3);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_NEAR(e->metrics().at("cfd"), final_job->metrics().at("cfd"), 1e-12);  // same seed, same particles
  auto jobs = c_.ListJobs(s);
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->size(), 1u);
}

TEST_F(ServerTest, InteractiveSteppingReturnsEachStepsStatistics) {
  const std::string s = NewSession();
  const std::string target = DataTarget(s, "data");
  v1::FlowSpec spec = SdSpec(50, 0);
  spec.set_noise("cosine:4,0.5");
  spec.set_schedule_steps(10);
  auto job = c_.StartFlow(s, target, spec);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job->step(), 0);
  auto r = c_.StepFlow(job->id(), 5);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->stats_size(), 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(r->stats(i).step(), i + 1);
  // The cosine schedule decreases the noise from sqrt(4) at step 0.
  EXPECT_NEAR(r->stats(0).noise(), 2.0, 1e-12);
  EXPECT_LT(r->stats(4).noise(), r->stats(0).noise());
  EXPECT_EQ(r->job().step(), 5);
  auto more = c_.StepFlow(job->id(), 2);
  ASSERT_TRUE(more.ok());
  EXPECT_EQ(more->stats(1).step(), 7);
  EXPECT_EQ(c_.StepFlow(job->id(), 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c_.StepFlow("j_nope", 1).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ServerTest, CancelStopsARunningJobWithinOneStep) {
  const std::string s = NewSession();
  const std::string target = DataTarget(s, "data");
  auto job = StartRunningJob(s, target);
  ASSERT_TRUE(job.ok());
  // A running job cannot be stepped interactively.
  auto step = c_.StepFlow(job->id(), 1);
  EXPECT_EQ(step.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(step.status().message(), HasSubstr("running"));
  auto cancelled = c_.CancelJob(job->id());
  ASSERT_TRUE(cancelled.ok());
  auto final_job = c_.WatchJob(job->id(), nullptr);
  ASSERT_TRUE(final_job.ok());
  EXPECT_EQ(final_job->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_LE(final_job->step(), cancelled->step() + 1);  // the step in flight finishes, no more
  EXPECT_EQ(final_job->error().code_name(), "CANCELLED");
  auto again = c_.CancelJob(job->id());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(again.status().message(), HasSubstr("already cancelled"));
  // A cancelled flow can be stepped again interactively.
  auto resumed = c_.StepFlow(job->id(), 2);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->job().step(), final_job->step() + 2);
}

TEST_F(ServerTest, FullQueueRefusesNewJobsAndStoresNothing) {
  const std::string s = NewSession();
  const std::string target = DataTarget(s, "data");
  auto running = StartRunningJob(s, target);
  ASSERT_TRUE(running.ok());
  auto q1 = c_.StartFlow(s, target, SdSpec(10, 10));
  auto q2 = c_.StartFlow(s, target, SdSpec(10, 10));
  ASSERT_TRUE(q1.ok() && q2.ok());
  auto refused = c_.StartFlow(s, target, SdSpec(10, 10));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("queue is full"));
  EXPECT_EQ(c_.ListJobs(s)->size(), 3u);
  // Cancelling a queued job ends it at once.
  auto q1c = c_.CancelJob(q1->id());
  ASSERT_TRUE(q1c.ok());
  EXPECT_EQ(q1c->state(), v1::JOB_STATE_CANCELLED);
  ASSERT_TRUE(c_.CancelJob(running->id()).ok());
  auto q2_final = c_.WatchJob(q2->id(), nullptr);
  ASSERT_TRUE(q2_final.ok());
  EXPECT_EQ(q2_final->state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(ServerTest, DeletingASessionCancelsItsJobs) {
  const std::string s = NewSession();
  const std::string target = DataTarget(s, "data");
  auto job = StartRunningJob(s, target);
  ASSERT_TRUE(job.ok());
  absl::StatusOr<v1::Job> watched;
  absl::Notification subscribed;
  std::thread watcher([&] {
    watched = c_.WatchJob(job->id(), [&](const v1::Job&) {
      if (!subscribed.HasBeenNotified()) subscribed.Notify();
    });
  });
  subscribed.WaitForNotification();
  auto deleted = c_.DeleteSession(s);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->cancelled_jobs(), 1);
  watcher.join();
  ASSERT_TRUE(watched.ok()) << watched.status();
  EXPECT_EQ(watched->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(c_.GetJob(job->id()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c_.ListTargets(s).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ServerTest, BadFlowRequestsNameTheProblem) {
  const std::string s = NewSession();
  const std::string data = DataTarget(s, "data");
  auto density = c_.DefineTarget(s, "g", "gaussian", 0, {});
  ASSERT_TRUE(density.ok());
  struct Case {
    std::function<void(v1::FlowSpec&)> edit;
    std::string target;
    absl::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](v1::FlowSpec& f) { f.set_step_size(0); }, data, absl::StatusCode::kInvalidArgument, "step_size"},
      {[](v1::FlowSpec& f) { f.set_step_size(-1); }, data, absl::StatusCode::kInvalidArgument, "step_size"},
      {[](v1::FlowSpec& f) { f.set_method("nope"); }, data, absl::StatusCode::kInvalidArgument, "unknown flow method"},
      {[](v1::FlowSpec& f) { f.set_bandwidth("-2"); }, data, absl::StatusCode::kInvalidArgument, "bandwidth"},
      {[](v1::FlowSpec& f) { (*f.mutable_options())["basis"] = "10"; }, data, absl::StatusCode::kInvalidArgument,
       "no option 'basis'"},
      {[](v1::FlowSpec& f) { f.set_method("langevin"); f.set_bandwidth("1"); }, density.value().id(),
       absl::StatusCode::kInvalidArgument, "does not use 'bandwidth'"},
      {[](v1::FlowSpec& f) {}, density.value().id(), absl::StatusCode::kFailedPrecondition, "needs a sample target"},
      {[](v1::FlowSpec& f) { f.set_method("svgd"); }, data, absl::StatusCode::kFailedPrecondition, "needs the target's score"},
      {[](v1::FlowSpec& f) { f.set_particle_count(5001); }, data, absl::StatusCode::kResourceExhausted, "limit of 5000"},
      {[](v1::FlowSpec& f) { f.add_init_mean(1); f.add_init_mean(2); f.add_init_mean(3); }, data,
       absl::StatusCode::kInvalidArgument, "init mean"},
      {[](v1::FlowSpec& f) { f.set_steps(-1); }, data, absl::StatusCode::kInvalidArgument, "steps"},
      {[](v1::FlowSpec& f) { f.add_eval_metrics("ksd"); }, data, absl::StatusCode::kFailedPrecondition, "ksd"},
      {[](v1::FlowSpec& f) { f.set_init_target_id(f.init_target_id() + "t_nope"); }, data,
       absl::StatusCode::kNotFound, "t_nope"},
      {[](v1::FlowSpec& f) {}, "t_nope", absl::StatusCode::kNotFound, "target 't_nope' not found"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    v1::FlowSpec spec = SdSpec(10, 5);
    cases[i].edit(spec);
    auto r = c_.StartFlow(s, cases[i].target, spec);
    EXPECT_EQ(r.status().code(), cases[i].code) << "case " << i << ": " << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(cases[i].message)) << "case " << i;
  }
  EXPECT_EQ(c_.ListJobs(s)->size(), 0u);
  EXPECT_EQ(c_.StartFlow("s_nope", data, SdSpec(10, 5)).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ServerTest, FlowFromUploadedInitialParticles) {
  const std::string s = NewSession();
  const std::string data = DataTarget(s, "data");
  auto init = c_.UploadTarget(s, "init", Normal(40, 2, 9, -3));
  ASSERT_TRUE(init.ok());
  v1::FlowSpec spec;
  spec.set_method("sd");
  spec.set_steps(0);
  spec.set_init_target_id(init->id());
  auto job = c_.StartFlow(s, data, spec);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->particle_count(), 40);
  auto p = c_.GetParticles(job->id());
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, Normal(40, 2, 9, -3));
  spec.set_particle_count(10);
  EXPECT_THAT(c_.StartFlow(s, data, spec).status().message(), HasSubstr("not both"));
}

TEST_F(ServerTest, EvaluateRefusesMismatches) {
  const std::string s = NewSession();
  const std::string data = DataTarget(s, "data");
  const Points three = Normal(10, 3, 1);
  client::SampleSource src;
  src.samples = &three;
  auto dim = c_.Evaluate(s, data, src, {"mmd"});
  EXPECT_EQ(dim.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dim.status().message(), HasSubstr("dimension 3"));
  const Points two = Normal(10, 2, 1);
  src.samples = &two;
  EXPECT_EQ(c_.Evaluate(s, data, src, {"kl"}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c_.Evaluate(s, data, src, {"ksd"}).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c_.Evaluate(s, "t_nope", src, {}).status().code(), absl::StatusCode::kNotFound);
  auto g = c_.DefineTarget(s, "g", "gaussian", 0, {});
  auto ksd = c_.Evaluate(s, g->id(), src, {});
  ASSERT_TRUE(ksd.ok()) << ksd.status();
  EXPECT_TRUE(ksd->metrics().contains("ksd"));
  client::SampleSource job;
  job.job_id = "j_nope";
  EXPECT_EQ(c_.Evaluate(s, data, job, {}).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ServerTest, MetricsEndpointCountsTraffic) {
  const int port = t_.server->metrics_port();
  const std::string before = Scrape(port);
  EXPECT_THAT(before, HasSubstr("sampled_build_info"));
  const double sessions_before = Sample(before, "sampled_rpcs_total{code=\"OK\",method=\"SessionService/CreateSession\"}");
  const std::string s = NewSession();
  const std::string data = DataTarget(s, "data");
  EXPECT_FALSE(c_.GetSession("s_nope").ok());
  auto job = c_.StartFlow(s, data, SdSpec(100, 25));
  ASSERT_TRUE(c_.WatchJob(job->id(), nullptr).ok());
  const std::string after = Scrape(port);
  EXPECT_EQ(Sample(after, "sampled_rpcs_total{code=\"OK\",method=\"SessionService/CreateSession\"}"), sessions_before + 1);
  EXPECT_EQ(Sample(after, "sampled_rpcs_total{code=\"NOT_FOUND\",method=\"SessionService/GetSession\"}"), 1);
  EXPECT_EQ(Sample(after, "sampled_flow_steps_total{method=\"sd\"}"), 25);
  EXPECT_EQ(Sample(after, "sampled_particle_updates_total{method=\"sd\"}"), 2500);
  EXPECT_EQ(Sample(after, "sampled_flow_step_duration_seconds_count{method=\"sd\"}"), 25);
  EXPECT_EQ(Sample(after, "sampled_jobs{state=\"succeeded\"}"), 1);
  EXPECT_EQ(Sample(after, "sampled_sessions"), 1);
  EXPECT_EQ(Sample(after, "sampled_targets"), 1);
  EXPECT_EQ(Sample(after, "sampled_held_bytes"), 300 * 2 * 8 + 100 * 2 * 8);
  // The memory budget's accounting: the target's bytes exactly; the job's state with its workspace estimate.
  EXPECT_EQ(Sample(after, "sampled_memory_bytes{kind=\"targets\"}"), 300 * 2 * 8);
  EXPECT_GE(Sample(after, "sampled_memory_bytes{kind=\"jobs\"}"), 100 * 2 * 8);
  EXPECT_EQ(Sample(after, "sampled_memory_bytes{kind=\"uploads\"}"), 0);
  EXPECT_GT(Sample(after, "sampled_memory_budget_bytes"), 0);
  EXPECT_GE(Sample(after, "sampled_rpc_duration_seconds_count{method=\"SessionService/CreateSession\"}"), 1);
}

TEST_F(ServerTest, ShutdownCancelsQueuedWorkWithUnavailable) {
  const std::string s = NewSession();
  const std::string data = DataTarget(s, "data");
  auto running = StartRunningJob(s, data);
  ASSERT_TRUE(running.ok());
  // A long interactive step occupies the call worker; a second one waits in its queue.
  auto long_interactive = c_.StartFlow(s, data, SdSpec(100, 0));
  auto interactive = c_.StartFlow(s, data, SdSpec(20, 0));
  ASSERT_TRUE(long_interactive.ok() && interactive.ok());
  absl::StatusOr<v1::StepFlowResponse> long_stepped;
  std::thread long_stepper([&] { long_stepped = c_.StepFlow(long_interactive->id(), 100000000); });
  WaitRunning(long_interactive->id());
  absl::StatusOr<v1::StepFlowResponse> stepped;
  std::thread stepper([&] { stepped = c_.StepFlow(interactive->id(), 3); });
  while (t_.server->backend().jobs().ComputeTotals().queued_tasks == 0) std::this_thread::yield();
  t_.server->Shutdown();
  stepper.join();
  long_stepper.join();
  EXPECT_EQ(stepped.status().code(), absl::StatusCode::kUnavailable) << stepped.status();
  EXPECT_FALSE(long_stepped.ok());  // stopped by the shutdown
}

TEST_F(ServerTest, CallsDoNotWaitBehindRunningJobs) {
  // One job worker, busy with a job that would run for hours: an Evaluate and the interactive steps of
  // another flow are answered on the call worker meanwhile.
  const std::string s = NewSession();
  const std::string data = DataTarget(s, "data");
  auto running = StartRunningJob(s, data);
  ASSERT_TRUE(running.ok());
  client::SampleSource from_target;
  from_target.samples_target_id = data;
  auto e = c_.Evaluate(s, data, from_target, {"mmd"});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_LT(std::abs(e->metrics().at("mmd")), 0.01);  // a sample against itself
  auto interactive = c_.StartFlow(s, data, SdSpec(20, 0));
  ASSERT_TRUE(interactive.ok());
  auto stepped = c_.StepFlow(interactive->id(), 3);
  ASSERT_TRUE(stepped.ok()) << stepped.status();
  EXPECT_EQ(stepped->job().step(), 3);
  auto still = c_.GetJob(running->id());
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->state(), v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(c_.CancelJob(running->id()).ok());
}

TEST_F(ServerTest, HealthServesUntilShutdownAndShutdownCancelsJobs) {
  auto h = c_.Health();
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(*c_.Health("sampled.v1.FlowService"), grpc::health::v1::HealthCheckResponse::SERVING);
  const std::string s = NewSession();
  auto job = StartRunningJob(s, DataTarget(s, "data"));
  ASSERT_TRUE(job.ok());
  std::shared_ptr<server::Job> held = *t_.server->backend().jobs().Get(job->id());
  t_.server->Shutdown();
  EXPECT_EQ(held->state(), server::JobState::kCancelled);
  EXPECT_FALSE(c_.Health().ok());  // the server is gone
}

}  // namespace
}  // namespace sampled::testing
