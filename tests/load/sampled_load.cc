// Load, soak and chaos runs against a real sampled binary on loopback (docs/performance.md, "Load, soak
// and chaos"). Bounded in time and count; every server it starts listens on 127.0.0.1 with port 0 and is
// stopped before it exits.
//
//   sampled_load load  --server BIN [--rate 200] [--seconds 60]
//       starts a large flow and a training job, then GetJob and 16-draw Sample calls at --rate per second
//       (async gRPC client, paced): p50/p99/max per call; fails on any error or p99 >= 50 ms
//   sampled_load soak  --server BIN [--minutes 10] [--warmup-minutes 2]
//       a mixed loop (uploads, flows, training, samples, deletes); the server's RSS every 5 s: the slope
//       after warm-up (%/min of the warm value) and the end against the warm value; fails past 1%/min or
//       15% + 64 MB
//   sampled_load chaos --server BIN [--rounds 5] [--state-dir DIR]
//       a flow, MALA and a training job on a --state-dir server, kill -9 while they run, restart, --rounds
//       times; every job must end succeeded with exactly the result of an uninterrupted run, and no
//       session or target may be lost
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cpp/sampled_client.h"
#include "sampled/v1/jobs.grpc.pb.h"
#include "sampled/v1/training.grpc.pb.h"

namespace sampled {
namespace {

using client::SampledClient;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "sampled_load: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T Must(absl::StatusOr<T> v, const std::string& what) {
  if (!v.ok()) Die(absl::StrCat(what, ": ", v.status().ToString()));
  return *std::move(v);
}

// A sampled process on 127.0.0.1:0.
class Server {
 public:
  Server(const std::string& binary, std::vector<std::string> flags) {
    int out[2];
    if (pipe(out) != 0) Die("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives the tool
      dup2(out[1], 1);
      close(out[0]);
      std::vector<std::string> args = {binary, "--listen", "127.0.0.1:0", "--metrics-listen", ""};
      args.insert(args.end(), flags.begin(), flags.end());
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
    close(out[1]);
    out_ = fdopen(out[0], "r");
    char line[4096];
    if (fgets(line, sizeof line, out_) == nullptr) Die("the server printed nothing");
    std::smatch m;
    const std::string first = line;
    if (!std::regex_search(first, m, std::regex("listening on ([0-9.]+):([0-9]+)"))) Die("unexpected: " + first);
    address_ = absl::StrCat(m[1].str(), ":", m[2].str());
    // The BLAS line, then the state line.
    for (int i = 0; i < 2 && fgets(line, sizeof line, out_) != nullptr; ++i) state_line_ = line;
  }
  ~Server() { Kill(); }

  const std::string& address() const { return address_; }
  const std::string& state_line() const { return state_line_; }
  pid_t pid() const { return pid_; }
  std::unique_ptr<SampledClient> Client() const {
    auto c = SampledClient::Connect(address_);
    c->set_timeout(absl::Seconds(120));
    return c;
  }
  void Kill(int sig = SIGKILL) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    if (out_ != nullptr) fclose(out_);
    out_ = nullptr;
  }
  // Resident set size in bytes (from /proc).
  int64_t Rss() const {
    std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
    std::string key;
    while (in >> key) {
      if (key == "VmRSS:") {
        int64_t kb = 0;
        in >> kb;
        return kb * 1024;
      }
    }
    return 0;
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  std::string address_, state_line_;
};

std::map<std::string, std::string> Flags(int argc, char** argv, int first) {
  std::map<std::string, std::string> f;
  for (int i = first; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) Die("expected --flag value, got " + k);
    f[k.substr(2)] = argv[i + 1];
  }
  return f;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

Points Gaussian(int64_t n, int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  Points p(n, d);
  for (int64_t i = 0; i < p.size(); ++i) p.data()[i] = normal(rng);
  return p;
}

v1::FlowSpec FlowOf(const std::string& method, int64_t particles, int64_t steps, uint64_t seed) {
  v1::FlowSpec s;
  s.set_method(method);
  s.set_particle_count(particles);
  s.set_steps(steps);
  s.set_seed(seed);
  return s;
}

v1::TrainSpec TrainOf(int64_t steps, int64_t batch, int64_t width, uint64_t seed) {
  v1::TrainSpec t;
  t.set_method("kl");
  t.set_steps(steps);
  t.set_batch(batch);
  t.add_hidden(width);
  t.add_hidden(width);
  t.set_seed(seed);
  return t;
}

// load -------------------------------------------------------------------------------------------------

// One async call in flight: its start time and how it completes.
struct Call {
  virtual ~Call() = default;
  // Called with the completion queue's ok; returns true when the call ended.
  virtual bool Proceed(bool ok) = 0;
  absl::Time start;
  bool sample = false;
  grpc::ClientContext ctx;
  grpc::Status status;
};

struct GetJobCall : Call {
  v1::GetJobRequest request;
  v1::Job response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::Job>> reader;
  bool Proceed(bool) override { return true; }
};

struct SampleCall : Call {
  enum { kStarting, kReading, kFinishing } phase = kStarting;
  v1::SampleRequest request;
  v1::SampleChunk chunk;
  std::unique_ptr<grpc::ClientAsyncReader<v1::SampleChunk>> reader;
  bool Proceed(bool ok) override {
    if (phase == kFinishing) return true;
    if (!ok) {  // the stream ended: collect the status
      phase = kFinishing;
      reader->Finish(&status, this);
      return false;
    }
    phase = kReading;
    reader->Read(&chunk, this);
    return false;
  }
};

int Load(const std::map<std::string, std::string>& flags) {
  const double rate = std::stod(flags.count("rate") ? flags.at("rate") : "200");
  const double seconds = std::stod(flags.count("seconds") ? flags.at("seconds") : "60");
  Server server(flags.at("server"), {"--workers", "2"});
  auto c = server.Client();
  const v1::Session session = Must(c->CreateSession("load"), "CreateSession");
  const v1::Target data = Must(c->UploadTarget(session.id(), "data", Gaussian(20000, 8, 1)), "UploadTarget");
  const v1::Target g = Must(c->DefineTarget(session.id(), "g", "gaussian", 8, {}), "DefineTarget");
  // A sampler for the Sample calls (trained briefly), then the background work: a large flow and a
  // training job that run through the whole measurement.
  const v1::Job small = Must(c->StartTraining(session.id(), g.id(), TrainOf(20, 256, 32, 1)), "StartTraining");
  Must(c->WatchJob(small.id(), [](const v1::Job&) {}), "WatchJob");
  const std::string sampler = Must(c->GetJob(small.id()), "GetJob").sampler_id();
  const v1::Job flow = Must(c->StartFlow(session.id(), data.id(), FlowOf("sd", 20000, 100000000, 2)), "StartFlow");
  const v1::Job train = Must(c->StartTraining(session.id(), g.id(), TrainOf(100000000, 5000, 400, 3)), "StartTraining");
  absl::SleepFor(absl::Seconds(2));
  for (const v1::Job& j : {flow, train}) {
    if (Must(c->GetJob(j.id()), "GetJob").state() != v1::JOB_STATE_RUNNING) Die("a background job is not running");
  }

  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  auto jobs = v1::JobService::NewStub(channel);
  auto samplers = v1::SamplerService::NewStub(channel);
  grpc::CompletionQueue cq;
  std::atomic<int64_t> in_flight{0};
  std::vector<double> get_ms, sample_ms;
  int64_t errors = 0;
  std::string first_error;
  std::thread drain([&] {
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
      auto* call = static_cast<Call*>(tag);
      if (!call->Proceed(ok)) continue;
      const double ms = absl::ToDoubleMilliseconds(absl::Now() - call->start);
      if (!call->status.ok()) {
        if (errors++ == 0) first_error = call->status.error_message();
      } else {
        (call->sample ? sample_ms : get_ms).push_back(ms);
      }
      delete call;
      --in_flight;
    }
  });
  const absl::Duration interval = absl::Seconds(1.0 / rate);
  const absl::Time begin = absl::Now();
  const int64_t total = static_cast<int64_t>(rate * seconds);
  for (int64_t i = 0; i < total; ++i) {
    // Paced by an absolute schedule: a slow call does not delay the next one (open-loop load).
    absl::SleepFor(std::max(absl::ZeroDuration(), begin + i * interval - absl::Now()));
    ++in_flight;
    if (i % 2 == 0) {
      auto* call = new GetJobCall();
      call->request.set_job_id(i % 4 == 0 ? flow.id() : train.id());
      call->start = absl::Now();
      call->ctx.set_deadline(absl::ToChronoTime(call->start + absl::Seconds(10)));
      call->reader = jobs->AsyncGetJob(&call->ctx, call->request, &cq);
      call->reader->Finish(&call->response, &call->status, call);
    } else {
      auto* call = new SampleCall();
      call->sample = true;
      call->request.set_sampler_id(sampler);
      call->request.set_n(16);
      call->request.set_seed(static_cast<uint64_t>(i));
      call->start = absl::Now();
      call->ctx.set_deadline(absl::ToChronoTime(call->start + absl::Seconds(10)));
      // Prepared, then started: the first completion may reach the drain thread before StartCall returns.
      call->reader = samplers->PrepareAsyncSample(&call->ctx, call->request, &cq);
      call->reader->StartCall(call);
    }
  }
  while (in_flight.load() > 0) absl::SleepFor(absl::Milliseconds(10));
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - begin);
  cq.Shutdown();
  drain.join();
  const v1::Job flow_end = Must(c->GetJob(flow.id()), "GetJob");
  const v1::Job train_end = Must(c->GetJob(train.id()), "GetJob");
  std::vector<double> all = get_ms;
  all.insert(all.end(), sample_ms.begin(), sample_ms.end());
  std::printf(
      "load: %lld calls in %.1f s (%.0f/s) beside an SD flow of 20000 particles in 8-D (step %lld) and a KL "
      "training run (batch 5000, 400x400; iteration %lld)\n",
      static_cast<long long>(total), elapsed, total / elapsed, static_cast<long long>(flow_end.step()),
      static_cast<long long>(train_end.step()));
  std::printf("  GetJob:     p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%zu)\n", Percentile(get_ms, 0.5),
              Percentile(get_ms, 0.99), Percentile(get_ms, 1.0), get_ms.size());
  std::printf("  Sample(16): p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%zu)\n", Percentile(sample_ms, 0.5),
              Percentile(sample_ms, 0.99), Percentile(sample_ms, 1.0), sample_ms.size());
  std::printf("  all:        p50 %.2f ms  p99 %.2f ms; errors %lld%s\n", Percentile(all, 0.5), Percentile(all, 0.99),
              static_cast<long long>(errors), errors ? (" (first: " + first_error + ")").c_str() : "");
  c->CancelJob(flow.id()).IgnoreError();
  c->CancelJob(train.id()).IgnoreError();
  const bool pass = errors == 0 && Percentile(all, 0.99) < 50;
  std::printf("load: %s\n", pass ? "PASS (no error, p99 < 50 ms)" : "FAIL");
  return pass ? 0 : 1;
}

// soak -------------------------------------------------------------------------------------------------

int Soak(const std::map<std::string, std::string>& flags) {
  const double minutes = std::stod(flags.count("minutes") ? flags.at("minutes") : "10");
  const double warm = std::stod(flags.count("warmup-minutes") ? flags.at("warmup-minutes") : "2");
  Server server(flags.at("server"), {"--workers", "2"});
  const absl::Time begin = absl::Now();
  const absl::Time end = begin + absl::Seconds(minutes * 60);
  std::atomic<int64_t> rounds{0}, failures{0};
  std::string first_failure;
  absl::Mutex mu;
  // Two clients loop over the mixed work, each in a session of its own, deleting what they made.
  auto worker = [&](int w) {
    auto c = server.Client();
    std::mt19937_64 rng(static_cast<uint64_t>(w));
    for (int64_t r = 0; absl::Now() < end; ++r) {
      const auto fail = [&](const absl::Status& s) {
        ++failures;
        absl::MutexLock lock(&mu);
        if (first_failure.empty()) first_failure = s.ToString();
      };
      absl::StatusOr<v1::Session> s = c->CreateSession(absl::StrCat("soak-", w, "-", r));
      if (!s.ok()) {
        fail(s.status());
        continue;
      }
      const int64_t n = 2000 + static_cast<int64_t>(rng() % 8000);
      absl::StatusOr<v1::Target> data = c->UploadTarget(s->id(), "data", Gaussian(n, 4, rng()));
      absl::StatusOr<v1::Target> g = c->DefineTarget(s->id(), "g", "gaussian", 4, {});
      if (!data.ok() || !g.ok()) {
        fail(!data.ok() ? data.status() : g.status());
        continue;
      }
      absl::StatusOr<v1::Job> flow = c->StartFlow(s->id(), data->id(), FlowOf("sd", 500, 200, rng()));
      absl::StatusOr<v1::Job> mala = c->StartFlow(s->id(), g->id(), FlowOf("mala", 500, 300, rng()));
      absl::StatusOr<v1::Job> train = c->StartTraining(s->id(), g->id(), TrainOf(30, 256, 64, rng()));
      for (const absl::StatusOr<v1::Job>* j : {&flow, &mala, &train}) {
        if (!j->ok()) {
          fail(j->status());
          continue;
        }
        absl::StatusOr<v1::Job> ended = c->WatchJob((**j).id(), [](const v1::Job&) {});
        if (!ended.ok() || ended->state() != v1::JOB_STATE_SUCCEEDED) fail(ended.ok() ? absl::InternalError(ended->error().message()) : ended.status());
      }
      if (flow.ok()) {
        if (absl::Status st = c->GetParticles(flow->id()).status(); !st.ok()) fail(st);
        if (absl::Status st = c->DeleteJob(flow->id()); !st.ok()) fail(st);
      }
      if (train.ok()) {
        absl::StatusOr<v1::Job> t = c->GetJob(train->id());
        if (t.ok() && !t->sampler_id().empty()) {
          if (absl::Status st = c->Sample(t->sampler_id(), 20000, r).status(); !st.ok()) fail(st);
          if (absl::Status st = c->DeleteSampler(t->sampler_id()); !st.ok()) fail(st);
        }
      }
      if (absl::Status st = c->DeleteTarget(s->id(), data->id()); !st.ok()) fail(st);
      if (absl::Status st = c->DeleteSession(s->id()).status(); !st.ok()) fail(st);
      ++rounds;
    }
  };
  std::thread a(worker, 1), b(worker, 2);
  // RSS every 5 s.
  std::vector<std::pair<double, double>> samples;  // (minutes, MB)
  while (absl::Now() < end) {
    absl::SleepFor(absl::Seconds(5));
    samples.emplace_back(absl::ToDoubleMinutes(absl::Now() - begin), server.Rss() / 1e6);
  }
  a.join();
  b.join();
  // Least-squares slope of RSS after warm-up; the warm value is the mean of the first minute after it.
  double sx = 0, sy = 0, sxx = 0, sxy = 0, warm_sum = 0;
  int k = 0, warm_n = 0;
  for (const auto& [t, mb] : samples) {
    if (t < warm) continue;
    sx += t, sy += mb, sxx += t * t, sxy += t * mb, ++k;
    if (t < warm + 1) warm_sum += mb, ++warm_n;
  }
  if (k < 3 || warm_n == 0) Die("the soak is too short for its warm-up");
  const double slope = (k * sxy - sx * sy) / (k * sxx - sx * sx);
  const double warm_mb = warm_sum / warm_n;
  const double end_mb = samples.back().second;
  const double slope_pct = 100 * slope / warm_mb;
  std::printf("soak: %.1f min, %lld rounds (each: a session, an upload of 2000-10000 x 4, SD 500 x 200 steps, MALA "
              "500 x 300, KL training 30 iterations, particles, 20000 draws, deletes), %lld failures%s\n",
              minutes, static_cast<long long>(rounds.load()), static_cast<long long>(failures.load()),
              failures ? (" (first: " + first_failure + ")").c_str() : "");
  std::printf("  RSS: start %.1f MB, warm (%.0f-%.0f min) %.1f MB, end %.1f MB, peak %.1f MB; slope after warm-up "
              "%.3f MB/min = %.3f%%/min of the warm value\n",
              samples.front().second, warm, warm + 1, warm_mb, end_mb,
              std::max_element(samples.begin(), samples.end(), [](auto& x, auto& y) { return x.second < y.second; })->second,
              slope, slope_pct);
  const bool pass = failures == 0 && slope_pct < 1.0 && end_mb <= warm_mb * 1.15 + 64;
  std::printf("soak: %s\n", pass ? "PASS (slope < 1%/min, end within 15% + 64 MB of warm)" : "FAIL");
  return pass ? 0 : 1;
}

// chaos ------------------------------------------------------------------------------------------------

struct Results {
  Points sd, mala, draws;
};

// The three jobs: a flow on data, MALA on a density, a training run. Deterministic.
std::vector<std::string> StartThree(SampledClient& c, const std::string& session, const std::string& data,
                                    const std::string& g) {
  return {Must(c.StartFlow(session, data, FlowOf("sd", 1000, 3000, 11)), "StartFlow").id(),
          Must(c.StartFlow(session, g, FlowOf("mala", 2000, 40000, 12)), "StartFlow").id(),
          Must(c.StartTraining(session, g, TrainOf(1500, 512, 64, 13)), "StartTraining").id()};
}

Results Collect(SampledClient& c, const std::vector<std::string>& jobs) {
  Results r;
  for (const std::string& id : jobs) {
    const v1::Job j = Must(c.WatchJob(id, [](const v1::Job&) {}), "WatchJob");
    if (j.state() != v1::JOB_STATE_SUCCEEDED) Die(absl::StrCat("job ", id, " ended ", j.state(), ": ", j.error().message()));
  }
  r.sd = Must(c.GetParticles(jobs[0]), "GetParticles");
  r.mala = Must(c.GetParticles(jobs[1]), "GetParticles");
  r.draws = Must(c.Sample(Must(c.GetJob(jobs[2]), "GetJob").sampler_id(), 1000, 1), "Sample");
  return r;
}

int Chaos(const std::map<std::string, std::string>& flags) {
  const int rounds = std::stoi(flags.count("rounds") ? flags.at("rounds") : "5");
  char tmpl[] = "/tmp/sampled_chaos_XXXXXX";
  const std::string dir = flags.count("state-dir") ? flags.at("state-dir") : std::string(mkdtemp(tmpl)) + "/state";
  const std::vector<std::string> common = {"--workers", "3", "--torch-threads", "2"};
  const Points data = Gaussian(2000, 3, 5);
  const absl::Time t0 = absl::Now();
  Results expected;
  {
    Server reference(flags.at("server"), common);
    auto c = reference.Client();
    const std::string s = Must(c->CreateSession("reference"), "CreateSession").id();
    const std::string d = Must(c->UploadTarget(s, "d", data), "UploadTarget").id();
    const std::string g = Must(c->DefineTarget(s, "g", "gaussian", 3, {}), "DefineTarget").id();
    expected = Collect(*c, StartThree(*c, s, d, g));
  }
  const double uninterrupted = absl::ToDoubleSeconds(absl::Now() - t0);
  std::vector<std::string> flags_dir = common;
  flags_dir.insert(flags_dir.end(), {"--state-dir", dir, "--checkpoint-every", "2s"});
  std::string session, target_d, target_g;
  std::vector<std::string> jobs;
  std::mt19937_64 rng(42);
  std::vector<std::string> kills;
  for (int round = 0; round <= rounds; ++round) {
    Server server(flags.at("server"), flags_dir);
    auto c = server.Client();
    if (round == 0) {
      session = Must(c->CreateSession("chaos"), "CreateSession").id();
      target_d = Must(c->UploadTarget(session, "d", data), "UploadTarget").id();
      target_g = Must(c->DefineTarget(session, "g", "gaussian", 3, {}), "DefineTarget").id();
      jobs = StartThree(*c, session, target_d, target_g);
    } else {
      // Nothing lost: the session, both targets, the three jobs.
      Must(c->GetSession(session), "the session after a restart");
      for (const std::string& t : {target_d, target_g}) Must(c->GetTarget(session, t), "a target after a restart");
      for (const std::string& j : jobs) Must(c->GetJob(j), "a job after a restart");
    }
    if (round == rounds) {
      const Results got = Collect(*c, jobs);
      const bool same = got.sd == expected.sd && got.mala == expected.mala && got.draws == expected.draws;
      std::printf("chaos: %d kill -9 rounds (%s); the uninterrupted run took %.1f s\n", rounds,
                  absl::StrJoin(kills, "; ").c_str(), uninterrupted);
      std::printf("  after each restart the session, both targets and the three jobs were there; every job ended "
                  "succeeded; results %s an uninterrupted run's (SD 1000 x 3000 steps, MALA 2000 x 40000, KL "
                  "1500 iterations: particles and 1000 draws compared exactly)\n",
                  same ? "bit-for-bit equal to" : "DIFFERENT from");
      std::printf("chaos: %s\n", same ? "PASS" : "FAIL");
      return same ? 0 : 1;
    }
    // Kill at a random moment while the jobs run: 1.5-4 s in.
    absl::SleepFor(absl::Milliseconds(1500 + static_cast<int64_t>(rng() % 2500)));
    std::string steps;
    for (const std::string& j : jobs) {
      const v1::Job s = Must(c->GetJob(j), "GetJob");
      absl::StrAppend(&steps, steps.empty() ? "" : "/", s.step(), s.state() == v1::JOB_STATE_RUNNING ? "" : "*");
    }
    kills.push_back(absl::StrCat("round ", round + 1, " at steps ", steps));
    server.Kill(SIGKILL);
  }
  return 1;
}

}  // namespace
}  // namespace sampled

int main(int argc, char** argv) {
  if (argc < 2) sampled::Die("usage: sampled_load load|soak|chaos --server BIN [flags]");
  const std::string mode = argv[1];
  const auto flags = sampled::Flags(argc, argv, 2);
  if (!flags.count("server")) sampled::Die("--server BIN is required");
  if (mode == "load") return sampled::Load(flags);
  if (mode == "soak") return sampled::Soak(flags);
  if (mode == "chaos") return sampled::Chaos(flags);
  sampled::Die("unknown mode " + mode);
}
