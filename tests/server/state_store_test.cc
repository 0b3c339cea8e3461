// The state directory's parts: checksummed atomic files, named-field records, the SQLite store (schema
// version, lock, rows and their files) and the checkpoint clock.
#include "server/store/state_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/jobs/checkpoint.h"
#include "server/jobs/job.h"
#include "server/store/blob_file.h"
#include "server/store/durable_state.h"
#include "server/store/record.h"

namespace sampled::server {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/sampled_state_test_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadRaw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteRaw(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

TEST(BlobFileTest, RoundTripsAndDetectsDamage) {
  TempDir dir;
  const std::string path = dir.path() + "/x.array";
  ASSERT_TRUE(WriteBlobFile(path, {"hello ", "world"}).ok());
  absl::StatusOr<std::string> back = ReadBlobFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, "hello world");
  EXPECT_EQ(fs::directory_iterator(dir.path())->path().filename(), "x.array");  // no temporary left

  std::string raw = ReadRaw(path);
  raw[raw.size() - 2] ^= 0x01;
  WriteRaw(path, raw);
  back = ReadBlobFile(path);
  EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(back.status().message(), HasSubstr("checksum does not match"));

  WriteRaw(path, raw.substr(0, raw.size() - 3));
  back = ReadBlobFile(path);
  EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(back.status().message(), HasSubstr("truncated"));

  WriteRaw(path, "not a state file at all, but long enough");
  EXPECT_EQ(ReadBlobFile(path).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReadBlobFile(dir.path() + "/missing").status().code(), absl::StatusCode::kNotFound);
}

// A write that the disk refuses part way (here the file-size limit, as a full disk would) fails with
// RESOURCE_EXHAUSTED and leaves the previous file whole.
TEST(BlobFileTest, AFullDiskKeepsThePreviousFile) {
  TempDir dir;
  const std::string path = dir.path() + "/j.checkpoint";
  ASSERT_TRUE(WriteBlobFile(path, {"the previous checkpoint"}).ok());
  rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto* old_handler = signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 1 << 20;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string big(3 << 20, 'x');
  const absl::Status s = WriteBlobFile(path, {big});
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, old_handler);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  absl::StatusOr<std::string> back = ReadBlobFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, "the previous checkpoint");
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);  // the partial temporary was removed
}

TEST(RecordTest, FieldsRoundTripAndAbsentOnesTakeTheirDefaults) {
  Record r;
  r.Set("s", "text");
  r.SetInt("i", -42);
  r.SetDouble("d", 0.125);
  r.SetParams("p", {{"mean", {1, 2}}, {"rate", {0.5}}});
  r.SetStrings("v", {"a", "", "c"});
  r.SetMetrics("m", {{"mmd", 0.01}});
  r.SetTime("t", absl::FromUnixMicros(1234567));
  Record nested;
  nested.SetInt("x", 7);
  r.SetRecord("n", nested);
  absl::StatusOr<Record> back = Record::Decode(r.Encode());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->Get("s"), "text");
  EXPECT_EQ(back->GetInt("i"), -42);
  EXPECT_EQ(back->GetDouble("d"), 0.125);
  EXPECT_EQ(back->GetParams("p"), (ParamMap{{"mean", {1, 2}}, {"rate", {0.5}}}));
  EXPECT_EQ(back->GetStrings("v"), (std::vector<std::string>{"a", "", "c"}));
  EXPECT_EQ(back->GetMetrics("m").at("mmd"), 0.01);
  EXPECT_EQ(back->GetTime("t"), absl::FromUnixMicros(1234567));
  EXPECT_EQ(back->GetRecord("n").GetInt("x"), 7);
  // A field a later release adds is absent from an older record: its default.
  EXPECT_EQ(back->GetInt("added_later", 5), 5);
  EXPECT_FALSE(back->GetOptionalDouble("added_later").has_value());
  EXPECT_EQ(back->GetTime("added_later"), absl::InfinitePast());
  EXPECT_FALSE(Record::Decode("garbage").ok());
  EXPECT_FALSE(Record::Decode(r.Encode().substr(0, 20)).ok());
}

TEST(RecordTest, FlowSpecsAndSnapshotsRoundTrip) {
  FlowJobSpec spec;
  spec.config.method = "king";
  spec.config.schedule_steps = 300;
  spec.config.step_size = 0.5;
  spec.config.noise = "cosine:1:0.01";
  spec.config.batch_size = 128;
  spec.config.dtype = DType::kFloat64;
  spec.config.seed = 99;
  spec.config.options = {{"basis", "200"}, {"ridge", "1e-3"}};
  spec.steps = 300;
  spec.eval_every = 50;
  spec.eval_metrics = {"mmd", "cfd"};
  const FlowJobSpec back = DecodeFlowSpec(EncodeFlowSpec(spec));
  EXPECT_EQ(back.config.method, "king");
  EXPECT_EQ(back.config.schedule_steps, 300);
  EXPECT_EQ(back.config.step_size, 0.5);
  EXPECT_FALSE(back.config.optimizer.has_value());
  EXPECT_EQ(back.config.noise, "cosine:1:0.01");
  EXPECT_EQ(back.config.batch_size, 128);
  EXPECT_EQ(back.config.dtype, DType::kFloat64);
  EXPECT_FALSE(back.config.median_pairs.has_value());
  EXPECT_EQ(back.config.seed, 99u);
  EXPECT_EQ(back.config.options, spec.config.options);
  EXPECT_EQ(back.steps, 300);
  EXPECT_EQ(back.eval_metrics, spec.eval_metrics);

  training::TrainConfig tc;
  tc.method = "fisher";
  tc.hidden = std::vector<int64_t>{64, 32};
  tc.lr = 1e-3;
  tc.seed = 5;
  const training::TrainConfig tb = DecodeTrainConfig(EncodeTrainConfig(tc));
  EXPECT_EQ(tb.method, "fisher");
  EXPECT_EQ(tb.hidden, tc.hidden);
  EXPECT_FALSE(tb.score_hidden.has_value());
  EXPECT_EQ(tb.lr, 1e-3);
  EXPECT_FALSE(tb.batch.has_value());
  EXPECT_EQ(tb.seed, 5u);

  JobSnapshot s;
  s.kind = "training";
  s.state = JobState::kFailed;
  s.step = 17;
  s.total_steps = 100;
  s.error = absl::FailedPreconditionError("loss turned non-finite");
  s.metrics = {{"ksd", 0.2}};
  s.create_time = absl::FromUnixSeconds(1000);
  const JobSnapshot sb = DecodeSnapshot(EncodeSnapshot(s));
  EXPECT_EQ(sb.kind, "training");
  EXPECT_EQ(sb.state, JobState::kFailed);
  EXPECT_EQ(sb.step, 17);
  EXPECT_EQ(sb.error, s.error);
  EXPECT_EQ(sb.metrics, s.metrics);
  EXPECT_EQ(sb.create_time, s.create_time);
  EXPECT_EQ(sb.end_time, absl::InfinitePast());
}

TEST(StateStoreTest, RowsKeepTheirOrderAndTheirFilesGoWithThem) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<StateStore>> store = StateStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  StateStore& st = **store;
  EXPECT_EQ(st.schema_version(), kSchemaVersion);
  ASSERT_TRUE(st.Put({"s1", "session", "s1", "r1", ""}).ok());
  ASSERT_TRUE(st.Put({"t1", "target", "s1", "r2", ""}).ok());
  ASSERT_TRUE(st.Put({"s2", "session", "s2", "r3", ""}).ok());
  ASSERT_TRUE(st.Put({"t2", "target", "s2", "r4", ""}).ok());
  ASSERT_TRUE(st.Put({"t1", "target", "s1", "r2'", ""}).ok());  // replaced in place
  ASSERT_TRUE(st.PutState("t2", "state").ok());
  ASSERT_TRUE(WriteBlobFile(st.BlobPath("t1", "array"), {"a"}).ok());
  ASSERT_TRUE(WriteBlobFile(st.BlobPath("t2", "array"), {"b"}).ok());
  ASSERT_TRUE(WriteBlobFile(st.BlobPath("orphan", "array"), {"c"}).ok());
  absl::StatusOr<std::vector<StoredRow>> rows = st.List();
  ASSERT_TRUE(rows.ok());
  std::vector<std::string> order;
  for (const StoredRow& r : *rows) order.push_back(r.id + ":" + r.record + ":" + r.state);
  EXPECT_EQ(order, (std::vector<std::string>{"s1:r1:", "t1:r2':", "s2:r3:", "t2:r4:state"}));
  EXPECT_EQ(st.RemoveOrphanFiles(), 1);
  EXPECT_FALSE(fs::exists(st.BlobPath("orphan", "array")));

  ASSERT_TRUE(st.DeleteSession("s1").ok());
  EXPECT_FALSE(fs::exists(st.BlobPath("t1", "array")));
  EXPECT_TRUE(fs::exists(st.BlobPath("t2", "array")));
  ASSERT_TRUE(st.Delete("t2").ok());
  EXPECT_FALSE(fs::exists(st.BlobPath("t2", "array")));
  rows = st.List();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].id, "s2");
}

TEST(StateStoreTest, ADirectoryHasOneServerAndAKnownSchema) {
  TempDir dir;
  {
    absl::StatusOr<std::unique_ptr<StateStore>> first = StateStore::Open(dir.path());
    ASSERT_TRUE(first.ok());
    absl::StatusOr<std::unique_ptr<StateStore>> second = StateStore::Open(dir.path());
    EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(second.status().message(), HasSubstr("in use by another sampled"));
    ASSERT_TRUE((*first)->Put({"s1", "session", "s1", "r", ""}).ok());
  }
  // Released with the store; reopened, the rows are there.
  absl::StatusOr<std::unique_ptr<StateStore>> again = StateStore::Open(dir.path());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->List()->size(), 1u);
  again->reset();
  // A newer schema is refused, not guessed at.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path() + "/sampled.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=7", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  absl::StatusOr<std::unique_ptr<StateStore>> newer = StateStore::Open(dir.path());
  EXPECT_EQ(newer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(newer.status().message(), HasSubstr("schema version 7, newer than this build's"));
}

TEST(StateStoreTest, RequestIdsAreKeptForTheirTime) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<StateStore>> store = StateStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  const absl::Time t0 = absl::FromUnixSeconds(1'000'000);
  ASSERT_TRUE((*store)->PutRequest("s1", "req-1", {"StartFlow", "j1", t0}).ok());
  auto got = (*store)->GetRequest("s1", "req-1", t0 - absl::Hours(1));
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->object_id, "j1");
  EXPECT_FALSE((*store)->GetRequest("s2", "req-1", t0 - absl::Hours(1))->has_value());    // scoped
  EXPECT_FALSE((*store)->GetRequest("s1", "req-1", t0 + absl::Seconds(1))->has_value());  // expired
  ASSERT_TRUE((*store)->ExpireRequests(t0 + absl::Seconds(1)).ok());
  EXPECT_FALSE((*store)->GetRequest("s1", "req-1", absl::InfinitePast())->has_value());
}

// A store whose writes take `cost`.
class SlowStore : public JobStore {
 public:
  explicit SlowStore(absl::Duration cost) : cost_(cost) {}
  absl::Status SaveCheckpoint(const std::string&, std::string_view) override {
    absl::SleepFor(cost_);
    ++writes;
    return fail ? absl::ResourceExhaustedError("disk full") : absl::OkStatus();
  }
  void SaveSnapshot(const JobSnapshot&) override {}
  int writes = 0;
  bool fail = false;

 private:
  absl::Duration cost_;
};

TEST(CheckpointerTest, WritesCostAtMostTheirShareOfTheTime) {
  auto store = std::make_shared<SlowStore>(absl::Milliseconds(20));
  CheckpointPolicy policy;
  policy.every_steps = 1;  // asks for a checkpoint after every step
  // The step-0 checkpoint took 20 ms: a next one (20 ms) plus the end's (20 ms) fit in 5% of the job's
  // time only once 0.8 s have passed since its first step.
  Checkpointer c(store, "j", policy, /*saved_step=*/0, /*saved_cost=*/absl::Milliseconds(20));
  const auto bytes = [] { return std::string("state"); };
  for (int step = 1; step <= 100; ++step) c.AfterStep(step, bytes);  // faster than a write
  EXPECT_EQ(c.written(), 0);  // not 100
  absl::SleepFor(absl::Milliseconds(900));
  c.AfterStep(101, bytes);
  EXPECT_EQ(c.written(), 1);
  c.AfterStep(102, bytes);  // spent 20 ms: the next waits for 1.2 s
  EXPECT_EQ(c.written(), 1);
  // The end of a run always writes, unless its step is the last checkpoint's.
  const int64_t before = c.written();
  c.Now(101, bytes);
  EXPECT_EQ(c.written(), before);
  c.Now(102, bytes);
  EXPECT_EQ(c.written(), before + 1);
}

TEST(CheckpointerTest, AFailedWriteIsRetriedAndNotCounted) {
  auto store = std::make_shared<SlowStore>(absl::ZeroDuration());
  store->fail = true;
  CheckpointPolicy policy;
  policy.every_steps = 1;
  Checkpointer c(store, "j", policy, /*saved_step=*/0);
  c.AfterStep(1, [] { return std::string("x"); });
  EXPECT_EQ(store->writes, 1);
  EXPECT_EQ(c.written(), 0);
  store->fail = false;
  absl::SleepFor(absl::Milliseconds(50));  // past 20 x the failed write's (microseconds) cost
  c.AfterStep(2, [] { return std::string("x"); });
  EXPECT_EQ(c.written(), 1);
}

}  // namespace
}  // namespace sampled::server
