// Training jobs, samplers and the Sample stream through the in-process server and the C++ client:
// determinism across chunkings and dtypes, continue-training, the lifecycle of what a run leaves
// (succeeded, cancelled, non-finite), deletion during a streaming Sample, and every bad request refused
// with its code and nothing stored.
#include <atomic>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/rng.h"
#include "tests/server/test_server.h"

namespace sampled::testing {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::sampled::v1;

class TrainingServerTest : public ::testing::Test {
 protected:
  static server::ServerOptions Options() {
    server::ServerOptions o = TestOptions();
    o.limits.max_train_width = 256;
    o.limits.max_train_batch = 4096;
    o.limits.max_sample_draws = 3'000'000;
    o.limits.max_array_values = 10'000'000;
    return o;
  }
  TrainingServerTest() : t_(Options()), c_(*t_.client) {
    auto s = c_.CreateSession("training");
    EXPECT_TRUE(s.ok()) << s.status();
    session_ = s->id();
    auto t = c_.DefineTarget(session_, "mog2", "mixture", 2, {});
    EXPECT_TRUE(t.ok()) << t.status();
    target_ = t->id();
  }

  static v1::TrainSpec Spec(const std::string& method, int64_t steps) {
    v1::TrainSpec s;
    s.set_method(method);
    s.set_steps(steps);
    s.add_hidden(32);
    s.add_hidden(32);
    s.set_batch(256);
    s.set_score_steps(2);
    s.set_lr(1e-3);
    s.set_seed(11);
    return s;
  }

  // Runs a training job to its end and returns the final job.
  v1::Job Train(const v1::TrainSpec& spec) {
    auto job = c_.StartTraining(session_, target_, spec);
    EXPECT_TRUE(job.ok()) << job.status();
    if (!job.ok()) return {};
    EXPECT_EQ(job->kind(), "training");
    auto done = c_.WatchJob(job->id(), nullptr);
    EXPECT_TRUE(done.ok()) << done.status();
    return *done;
  }

  TestServer t_;
  client::SampledClient& c_;
  std::string session_, target_;
};

TEST_F(TrainingServerTest, ASucceededRunLeavesASamplerWhoseDrawsDependOnlyOnTheSeed) {
  v1::TrainSpec spec = Spec("kl", 60);
  spec.set_eval_every(20);
  const v1::Job job = Train(spec);
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error().message();
  ASSERT_FALSE(job.sampler_id().empty());
  EXPECT_EQ(job.step(), 60);
  EXPECT_TRUE(job.has_training());
  EXPECT_EQ(job.training().step(), 60);
  EXPECT_GT(job.metrics().at("ksd"), 0);

  auto sampler = c_.GetSampler(job.sampler_id());
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  EXPECT_EQ(sampler->method(), "kl");
  EXPECT_EQ(sampler->steps(), 60);
  EXPECT_EQ(sampler->dim(), 2);
  EXPECT_THAT(sampler->hidden(), ::testing::ElementsAre(32, 32));
  EXPECT_THAT(sampler->provenance_json(), HasSubstr("\"family\": \"mixture\""));
  EXPECT_FALSE(sampler->last_finite());
  auto listed = c_.ListSamplers(session_);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);

  // Same seed, same draws: any chunking, either dtype (float64 carries the float32 draws exactly).
  auto a = c_.Sample(job.sampler_id(), 2500, 5);
  auto b = c_.Sample(job.sampler_id(), 2500, 5, DType::kFloat64, false, /*chunk_rows=*/7);
  auto f = c_.Sample(job.sampler_id(), 2500, 5, DType::kFloat32, false, /*chunk_rows=*/1000);
  auto prefix = c_.Sample(job.sampler_id(), 1500, 5);
  auto other = c_.Sample(job.sampler_id(), 2500, 6);
  for (auto* r : {&a, &b, &f, &prefix, &other}) ASSERT_TRUE(r->ok()) << r->status();
  EXPECT_EQ(a->rows(), 2500);
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(*a, *f);
  EXPECT_EQ(Points(a->topRows(1500)), *prefix);
  EXPECT_NE(*a, *other);
  auto best = c_.Sample(job.sampler_id(), 100, 5, DType::kFloat64, /*best=*/true);
  ASSERT_TRUE(best.ok()) << best.status();

  // The history: one row per iteration (fewer than 1024), metrics at the evaluations.
  auto history = c_.GetJobHistory(job.id());
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->rows_size(), 60);
  EXPECT_EQ(history->rows(19).step(), 20);
  EXPECT_GT(history->rows(19).metrics().at("ksd"), 0);
  EXPECT_TRUE(history->rows(20).metrics().empty());
}

TEST_F(TrainingServerTest, ContinueTrainingStartsFromTheSamplersWeights) {
  const v1::Job first = Train(Spec("kl", 20));
  ASSERT_EQ(first.state(), v1::JOB_STATE_SUCCEEDED);
  v1::TrainSpec more = Spec("kl", 20);
  more.set_from_sampler_id(first.sampler_id());
  const v1::Job second = Train(more);
  ASSERT_EQ(second.state(), v1::JOB_STATE_SUCCEEDED) << second.error().message();
  EXPECT_NE(second.sampler_id(), first.sampler_id());
  auto m = c_.GetSampler(second.sampler_id());
  ASSERT_TRUE(m.ok());
  EXPECT_THAT(m->provenance_json(), HasSubstr(first.sampler_id()));
  // The continued run differs from a fresh one of the same seed.
  const v1::Job fresh = Train(Spec("kl", 20));
  auto x = c_.Sample(second.sampler_id(), 10, 1), y = c_.Sample(fresh.sampler_id(), 10, 1);
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_NE(*x, *y);

  v1::TrainSpec wrong = Spec("kl", 5);
  wrong.set_hidden(0, 16);
  wrong.set_from_sampler_id(first.sampler_id());
  auto refused = c_.StartTraining(session_, target_, wrong);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("another architecture"));
}

TEST_F(TrainingServerTest, BadTrainingRequestsAreRefusedAndStoreNothing) {
  auto data = c_.UploadTarget(session_, "data", Points::Random(50, 2));
  ASSERT_TRUE(data.ok());
  struct Case {
    std::string target;
    v1::TrainSpec spec;
    absl::StatusCode code;
    std::string message;
  };
  std::vector<Case> cases;
  cases.push_back({data->id(), Spec("kl", 5), absl::StatusCode::kFailedPrecondition, "needs a target with a density"});
  v1::TrainSpec s = Spec("fisher", 5);
  s.set_score_activation("leaky-relu");
  cases.push_back({target_, s, absl::StatusCode::kFailedPrecondition, "second derivative"});
  s = Spec("kl", 5);
  s.set_hidden(0, 100000);
  cases.push_back({target_, s, absl::StatusCode::kResourceExhausted, "--max-train-width"});
  s = Spec("kl", 5);
  s.set_batch(1 << 20);
  cases.push_back({target_, s, absl::StatusCode::kResourceExhausted, "--max-train-batch"});
  s = Spec("kl", 5);  // each width and the batch within the limits, their product past --max-array-values
  s.clear_hidden();
  for (int i = 0; i < 16; ++i) s.add_hidden(256);
  s.set_batch(4096);
  cases.push_back({target_, s, absl::StatusCode::kResourceExhausted, "activations"});
  cases.push_back({target_, Spec("kl", 0), absl::StatusCode::kInvalidArgument, "steps must be between 1"});
  cases.push_back({target_, Spec("svgd", 5), absl::StatusCode::kInvalidArgument, "known: kl, fisher"});
  s = Spec("kl", 5);
  s.set_activation("relu");
  cases.push_back({target_, s, absl::StatusCode::kInvalidArgument, "activation"});
  s = Spec("kl", 5);
  s.set_from_sampler_id("m_nope");
  cases.push_back({target_, s, absl::StatusCode::kNotFound, "m_nope"});
  cases.push_back({"t_nope", Spec("kl", 5), absl::StatusCode::kNotFound, "t_nope"});
  for (const Case& c : cases) {
    auto r = c_.StartTraining(session_, c.target, c.spec);
    EXPECT_EQ(r.status().code(), c.code) << c.message << ": " << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(c.message));
  }
  auto jobs = c_.ListJobs(session_);
  ASSERT_TRUE(jobs.ok());
  EXPECT_TRUE(jobs->empty());
  auto samplers = c_.ListSamplers(session_);
  ASSERT_TRUE(samplers.ok());
  EXPECT_TRUE(samplers->empty());
}

TEST_F(TrainingServerTest, BadSampleRequestsNameTheProblem) {
  const v1::Job job = Train(Spec("kl", 3));
  ASSERT_FALSE(job.sampler_id().empty());
  auto zero = c_.Sample(job.sampler_id(), 0, 1);
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(zero.status().message(), HasSubstr("n must be >= 1"));
  auto many = c_.Sample(job.sampler_id(), 3'000'001, 1);
  EXPECT_EQ(many.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(many.status().message(), HasSubstr("--max-sample-draws"));
  auto unknown = c_.Sample("m_unknown", 10, 1);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(c_.DeleteSampler(job.sampler_id()).ok());
  auto deleted = c_.Sample(job.sampler_id(), 10, 1);
  EXPECT_EQ(deleted.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c_.DeleteSampler(job.sampler_id()).code(), absl::StatusCode::kNotFound);
  auto history = c_.GetJobHistory("j_unknown");
  EXPECT_EQ(history.status().code(), absl::StatusCode::kNotFound);
}

// Export, then import into another session: the same draws for the same seed; bad files are refused with
// the reason and store nothing.
TEST_F(TrainingServerTest, ExportImportKeepsTheDrawsAndRefusesBadFiles) {
  v1::TrainSpec spec = Spec("kl", 10);
  spec.set_eval_every(5);
  const v1::Job job = Train(spec);
  ASSERT_FALSE(job.sampler_id().empty());
  auto bytes = c_.ExportSampler(job.sampler_id());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto other = c_.CreateSession("other");
  ASSERT_TRUE(other.ok());
  auto imported = c_.ImportSampler(other->id(), *bytes);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->session_id(), other->id());
  EXPECT_EQ(imported->provenance_json(), c_.GetSampler(job.sampler_id())->provenance_json());
  EXPECT_EQ(imported->method(), "kl");  // read back from the provenance's result
  EXPECT_EQ(imported->steps(), 10);
  auto a = c_.Sample(job.sampler_id(), 3000, 4), b = c_.Sample(imported->id(), 3000, 4);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);

  std::string flipped = *bytes;
  flipped[flipped.size() / 2] ^= 0x01;
  std::string version = *bytes;
  version[11] = 7;
  struct Bad {
    std::string bytes;
    std::string message;
  };
  for (const Bad& bad : {Bad{flipped, "checksum"}, Bad{bytes->substr(0, bytes->size() - 100), "checksum"},
                         Bad{version, "version 7"}, Bad{"not a sampler", "not a sampler file"}}) {
    auto r = c_.ImportSampler(other->id(), bad.bytes);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad.message;
    EXPECT_THAT(r.status().message(), HasSubstr(bad.message));
  }
  auto listed = c_.ListSamplers(other->id());
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 1u);
  EXPECT_EQ(c_.ImportSampler("s_nope", *bytes).status().code(), absl::StatusCode::kNotFound);
}

// The history stays bounded however long the run and however often it evaluates: at most 1024 iterations,
// evenly spaced, and at most 1024 evaluations.
TEST_F(TrainingServerTest, HistoryStaysBounded) {
  v1::TrainSpec spec = Spec("kl", 2500);
  spec.set_hidden(0, 4);
  spec.set_hidden(1, 4);
  spec.set_batch(8);
  spec.set_score_steps(1);
  spec.set_eval_every(1);
  spec.set_eval_draws(2);
  const v1::Job job = Train(spec);
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error().message();
  auto history = c_.GetJobHistory(job.id());
  ASSERT_TRUE(history.ok());
  int64_t with_metrics = 0, previous = 0;
  for (const auto& r : history->rows()) {
    EXPECT_GT(r.step(), previous);
    previous = r.step();
    with_metrics += !r.metrics().empty();
  }
  EXPECT_LE(history->rows_size(), 2 * 1024);
  EXPECT_GE(history->rows_size(), 512);
  EXPECT_LE(with_metrics, 1024);
  EXPECT_GE(with_metrics, 512);
  EXPECT_EQ(history->rows(history->rows_size() - 1).step() % 4, 0);  // thinned twice: every 4th iteration
}

// Deleting a sampler while a Sample streams from it ends cleanly: the stream finishes with the weights it
// started with (the model is pinned), and later calls are NOT_FOUND.
TEST_F(TrainingServerTest, DeletingDuringAStreamingSampleIsSafe) {
  const v1::Job job = Train(Spec("kl", 3));
  ASSERT_FALSE(job.sampler_id().empty());
  auto expected = c_.Sample(job.sampler_id(), 200000, 9, DType::kFloat32);
  ASSERT_TRUE(expected.ok());
  grpc::ClientContext ctx;
  v1::SampleRequest r;
  r.set_sampler_id(job.sampler_id());
  r.set_n(200000);
  r.set_seed(9);
  r.set_dtype(v1::DTYPE_FLOAT32);
  r.set_chunk_rows(1000);
  auto stub = v1::SamplerService::NewStub(grpc::CreateChannel(t_.address, grpc::InsecureChannelCredentials()));
  auto reader = stub->Sample(&ctx, r);
  v1::SampleChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk));
  ASSERT_TRUE(c_.DeleteSampler(job.sampler_id()).ok());
  int64_t rows = chunk.rows();
  while (reader->Read(&chunk)) rows += chunk.rows();
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(rows, 200000);
  EXPECT_EQ(c_.Sample(job.sampler_id(), 10, 1).status().code(), absl::StatusCode::kNotFound);
}

// A client that cancels a long Sample stops it; Samples are served while a training job holds the only
// job worker.
TEST_F(TrainingServerTest, SamplesDoNotWaitBehindTrainingAndStopWhenCancelled) {
  const v1::Job trained = Train(Spec("kl", 3));
  auto running = c_.StartTraining(session_, target_, Spec("kl", 100000000));
  ASSERT_TRUE(running.ok());
  for (int i = 0; i < 200; ++i) {
    auto j = c_.GetJob(running->id());
    if (j.ok() && j->step() > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto draws = c_.Sample(trained.sampler_id(), 1000, 2);
  ASSERT_TRUE(draws.ok()) << draws.status();

  grpc::ClientContext ctx;
  v1::SampleRequest r;
  r.set_sampler_id(trained.sampler_id());
  r.set_n(3'000'000);
  r.set_chunk_rows(1000);
  auto stub = v1::SamplerService::NewStub(grpc::CreateChannel(t_.address, grpc::InsecureChannelCredentials()));
  auto reader = stub->Sample(&ctx, r);
  v1::SampleChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk));
  ctx.TryCancel();
  while (reader->Read(&chunk)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);

  // The cancelled training run that took steps leaves its last weights.
  ASSERT_TRUE(c_.CancelJob(running->id()).ok());
  auto ended = c_.WatchJob(running->id(), nullptr);
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(ended->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_FALSE(ended->sampler_id().empty());
  auto left = c_.GetSampler(ended->sampler_id());
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->steps(), ended->step());
}

// A run whose loss turns non-finite fails saying so and leaves its last finite weights, marked.
TEST_F(TrainingServerTest, ANonFiniteLossFailsAndKeepsTheLastFiniteWeights) {
  v1::TrainSpec spec = Spec("kl", 500);
  spec.set_lr(1e8);
  spec.set_score_lr(1e8);
  const v1::Job job = Train(spec);
  ASSERT_EQ(job.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(job.error().message(), HasSubstr("non-finite"));
  ASSERT_FALSE(job.sampler_id().empty());
  auto m = c_.GetSampler(job.sampler_id());
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->last_finite());
  auto draws = c_.Sample(job.sampler_id(), 10, 1);
  ASSERT_TRUE(draws.ok()) << draws.status();
}

}  // namespace
}  // namespace sampled::testing
