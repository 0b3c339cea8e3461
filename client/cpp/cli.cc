#include "client/cpp/cli.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "client/cpp/sampled_client.h"
#include "core/io/array_file.h"

namespace sampled::client {
namespace {

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

const char kUsageText[] = R"(usage: samplectl [--server HOST:PORT] [--timeout SECONDS] [--json] COMMAND ...

  session create [--name N]                 print the new session's id
  session list | session get ID | session delete ID
  target upload --session S --name N --file F [--dtype float32|float64]
  target define --session S --name N --family F [--dim D] [--param KEY=V1,V2,... ...]
                [--sample N [--seed S]]       N exact draws stored as a sample target
                [--data T]                    blr: the data target (features, then 0/1 labels last)
  target fit-gmm --session S --name N --data T [--components K | --max-components K]
                [--covariance full|diagonal|spherical] [--max-points N] [--seed S] [--param KEY=V ...]
                                            a Gaussian mixture fitted by EM to data target T (K by BIC
                                            when not given), stored as a density target
  target upload-model --session S --name N --file MODEL.pt --dim D [--energy]
                                            a TorchScript module, x [n, D] -> log q [n] (--energy: E, log q = -E)
  target list --session S | target get --session S ID | target delete --session S ID
  target families                           density families and their parameters
  flow start --session S --target T --method M [--particles N | --init-file F]
             [--init-mean V] [--init-std V] [--steps K] [--schedule-steps K] [--step-size ETA]
             [--optimizer sgd|adagrad] [--noise SPEC] [--bandwidth SPEC] [--median-pairs P]
             [--batch B] [--dtype float32|float64] [--seed S] [--eval-every K] [--eval-metrics a,b]
             [--METHOD-OPTION VALUE ...] [--watch]
             M: sd svgd langevin mala hmc mmd mmd-gaussian wgf king ntking stein-king; method options
             such as --stats rbf+pairs --pairs 0-1,2-5 --basis 100 --leapfrog 10 (see flow methods)
  flow step --job J [--steps K]             run K more steps of a stopped flow
  flow methods                              methods, their parameters and options
  job watch J | job status J | job list --session S | job cancel J | job delete J
  job history J [--out F.csv]                a training job's losses and metrics
  train start --session S --target T --method kl|fisher [--steps N] [--latent D] [--hidden 400,400,400]
              [--activation elu|gelu|silu|tanh|leaky-relu] [--score-hidden ...] [--score-activation A]
              [--score-steps K] [--score-loss ssm|sliced|dsm] [--dsm-sigma S] [--batch B] [--lr LR]
              [--score-lr LR] [--seed S] [--eval-every K] [--eval-draws N] [--from-sampler M] [--watch]
  train start --session S --target DATA --method sd-generator [--generator mlp|linear] [--latent D]
              [--hidden ...] [--eta E] [--noise RULE|nearest-mean:F] [--bandwidth RULE] [--optimizer sgd|adam]
              [--lr LR] [--steps-per-batch K] [--init-std S] [--batch B] [--steps N] [--seed S] [--watch]
  train start --session S --target DATA --method ndsm|ndsm-cv|dsm [--hidden 32,32,32,32,32,32,32]
              [--activation gelu] [--batch 250] [--lr LR] [--gmm-components K] [--gmm-covariance full|diag|spherical]
              [--noise-steps 50] [--dt 0.00998] [--dt-last 1e-3] [--times 5] [--cv-every 20] [--cv-eps E]
              [--sample-steps 1000] [--score-form residual|plain] [--steps N] [--seed S] [--watch]
  train start --session S --target DATA --method ingd [--stats gaussian|rbf|rbf+pairs] [--basis 100]
              [--feature-bandwidth RULE] [--pairs 0-1,...] [--epsilon 0.1] [--inner-steps 100] [--lr 1e-2]
              [--ridge 1e-3] [--hidden 67] [--activation elu] [--batch 1000] [--steps N] [--seed S] [--watch]
  train methods                             training methods and their parameters
  sampler list --session S | sampler get ID | sampler delete ID
  sampler export ID --out F | sampler import --session S --file F
  sample --sampler M -n N --out F [--seed S] [--dtype float32|float64] [--checkpoint final|best]
         [--steps K] [--dynamics sde|ode]             score models: reverse steps and dynamics;
                                                      drift chains: the first K drifts (time K x epsilon)
  particles --job J --out F [--dtype float32|float64]     F: .npy or .csv
  eval --session S --target T (--file F | --samples-target T2 | --job J | --sampler M [-n N]) [--metrics a,b]
       [--seed S]
  metrics                                   the metrics eval knows
  health [--service NAME]

--server defaults to $SAMPLED_SERVER or 127.0.0.1:50051. Vector values are comma-separated.
)";

// Parsed command line: the command words, then flags (repeatable) and positional arguments.
struct Args {
  std::vector<std::string> words;
  std::multimap<std::string, std::string> flags;
  std::set<std::string> used;

  bool Has(const std::string& name) {
    used.insert(name);
    return flags.count(name) > 0;
  }
  std::string Get(const std::string& name, const std::string& fallback = "") {
    used.insert(name);
    auto it = flags.find(name);
    return it == flags.end() ? fallback : it->second;
  }
  std::vector<std::string> GetAll(const std::string& name) {
    used.insert(name);
    std::vector<std::string> out;
    for (auto [it, end] = flags.equal_range(name); it != end; ++it) out.push_back(it->second);
    return out;
  }
};

const std::set<std::string> kBooleanFlags = {"json", "help", "watch", "energy"};

absl::Status Usage(const std::string& message) { return absl::InvalidArgumentError(message); }

absl::StatusOr<Args> Parse(const std::vector<std::string>& argv) {
  Args a;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& t = argv[i];
    if (t == "-n") {  // the one short flag: sample -n N
      if (i + 1 >= argv.size()) return Usage("-n needs a value");
      a.flags.emplace("n", argv[++i]);
      continue;
    }
    if (t.size() > 2 && t[0] == '-' && t[1] == '-') {
      std::string name = t.substr(2), value;
      const size_t eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      } else if (kBooleanFlags.count(name)) {
        value = "true";
      } else {
        // A flag's value never starts with "--": `--session --method sd` is a missing session, not a
        // session named "--method" (give --name=--odd for such a value).
        if (i + 1 >= argv.size() || absl::StartsWith(argv[i + 1], "--")) {
          return Usage(absl::StrCat("--", name, " needs a value"));
        }
        value = argv[++i];
      }
      a.flags.emplace(name, value);
    } else {
      a.words.push_back(t);
    }
  }
  return a;
}

class Cli {
 public:
  Cli(Args args, std::ostream& out, std::ostream& err) : a_(std::move(args)), out_(out), err_(err) {}

  int Run() {
    json_ = a_.Has("json");
    const bool help = a_.Has("help");
    std::string server = a_.Get("server");
    if (server.empty()) {
      const char* env = std::getenv("SAMPLED_SERVER");
      server = env != nullptr && *env != '\0' ? env : "127.0.0.1:50051";
    }
    client_ = SampledClient::Connect(server);
    if (a_.Has("timeout")) {
      double seconds;
      if (!absl::SimpleAtod(a_.Get("timeout"), &seconds) || seconds < 0) return UsageError("--timeout takes seconds >= 0");
      client_->set_timeout(absl::Seconds(seconds));
    }
    if (help || a_.words.empty()) {
      out_ << kUsageText;
      return help ? kOk : kUsage;
    }
    const std::string cmd = a_.words[0];
    const std::string sub = a_.words.size() > 1 ? a_.words[1] : "";
    absl::Status s;
    if (cmd == "session") {
      s = Session(sub);
    } else if (cmd == "target") {
      s = Target(sub);
    } else if (cmd == "flow") {
      s = Flow(sub);
    } else if (cmd == "job") {
      s = JobCommand(sub);
    } else if (cmd == "train") {
      s = Train(sub);
    } else if (cmd == "sampler") {
      s = SamplerCommand(sub);
    } else if (cmd == "sample") {
      s = SampleCommand();
    } else if (cmd == "particles") {
      s = Particles();
    } else if (cmd == "eval") {
      s = Eval();
    } else if (cmd == "metrics") {
      s = Metrics();
    } else if (cmd == "health") {
      s = Health();
    } else {
      return UsageError(absl::StrCat("unknown command '", cmd, "'"));
    }
    if (s.ok() && exit_override_ != kOk) return exit_override_;
    if (absl::IsInvalidArgument(s) && usage_error_) return UsageError(std::string(s.message()));
    if (!s.ok()) {
      err_ << "samplectl: " << absl::StatusCodeToString(s.code()) << ": " << s.message() << "\n";
      return kFailed;
    }
    return kOk;
  }

 private:
  int UsageError(const std::string& message) {
    err_ << "samplectl: " << message << "\n" << kUsageText;
    return kUsage;
  }
  absl::Status BadUsage(const std::string& message) {
    usage_error_ = true;
    return absl::InvalidArgumentError(message);
  }
  // Refuses flags the command does not know (global flags are always known).
  absl::Status CheckFlags() {
    for (const auto& [name, value] : a_.flags) {
      if (a_.used.count(name) == 0) return BadUsage(absl::StrCat("unknown flag --", name, " for this command"));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Required(const std::string& name) {
    std::string v = a_.Get(name);
    if (v.empty()) return BadUsage(absl::StrCat("--", name, " is required"));
    return v;
  }
  absl::StatusOr<std::string> Positional(size_t index, const std::string& what) {
    if (a_.words.size() <= index) return BadUsage(absl::StrCat("missing ", what));
    return a_.words[index];
  }
  absl::StatusOr<int64_t> IntFlag(const std::string& name, int64_t fallback) {
    if (!a_.Has(name)) return fallback;
    int64_t v;
    if (!absl::SimpleAtoi(a_.Get(name), &v)) return BadUsage(absl::StrCat("--", name, " takes an integer"));
    return v;
  }
  absl::StatusOr<double> DoubleFlag(const std::string& name) {
    double v;
    if (!absl::SimpleAtod(a_.Get(name), &v)) return BadUsage(absl::StrCat("--", name, " takes a number"));
    return v;
  }
  absl::StatusOr<std::vector<double>> Vector(const std::string& text, const std::string& what) {
    std::vector<double> out;
    for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
      double v;
      if (!absl::SimpleAtod(part, &v)) return BadUsage(absl::StrCat(what, ": '", part, "' is not a number"));
      out.push_back(v);
    }
    return out;
  }
  // Every --param KEY=V1,V2,... given.
  absl::StatusOr<ParamMap> ParamFlags() {
    ParamMap params;
    for (const std::string& p : a_.GetAll("param")) {
      const size_t eq = p.find('=');
      if (eq == std::string::npos || eq == 0) return BadUsage(absl::StrCat("--param '", p, "' is not KEY=VALUES"));
      absl::StatusOr<std::vector<double>> values = Vector(p.substr(eq + 1), absl::StrCat("--param ", p.substr(0, eq)));
      if (!values.ok()) return values.status();
      params[p.substr(0, eq)] = *values;
    }
    return params;
  }
  absl::StatusOr<DType> DTypeFlag(const std::string& name, DType fallback) {
    if (!a_.Has(name)) return fallback;
    const std::string v = a_.Get(name);
    if (v == "float32") return DType::kFloat32;
    if (v == "float64") return DType::kFloat64;
    return BadUsage(absl::StrCat("--", name, " is float32 or float64"));
  }

  template <typename Message>
  void PrintJson(const Message& m) {
    std::string s;
    google::protobuf::util::JsonPrintOptions o;
    o.add_whitespace = false;
    o.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(m, &s, o);
    out_ << s << "\n";
  }
  template <typename Message>
  void PrintJsonList(const std::vector<Message>& items) {
    out_ << "[";
    for (size_t i = 0; i < items.size(); ++i) {
      std::string s;
      google::protobuf::util::JsonPrintOptions o;
      o.preserve_proto_field_names = true;
      (void)google::protobuf::util::MessageToJsonString(items[i], &s, o);
      out_ << (i ? "," : "") << s;
    }
    out_ << "]\n";
  }

  static std::string FormatMetrics(const google::protobuf::Map<std::string, double>& m) {
    std::vector<std::string> parts;
    for (const auto& [k, v] : std::map<std::string, double>(m.begin(), m.end())) {
      parts.push_back(absl::StrFormat("%s=%.4g", k, v));
    }
    return absl::StrJoin(parts, " ");
  }
  static std::string StateName(v1::JobState s) {
    std::string n = v1::JobState_Name(s);
    absl::string_view v = n;
    absl::ConsumePrefix(&v, "JOB_STATE_");
    return absl::AsciiStrToLower(v);
  }
  static std::string JobLine(const v1::Job& j) {
    std::string line = absl::StrFormat("%s  %-9s  %s  step %d/%d", j.id(), StateName(j.state()), j.method(), j.step(),
                                       j.total_steps());
    if (j.has_training()) {
      absl::StrAppendFormat(&line, "  score_loss=%.4g sampler_loss=%.4g", j.training().score_loss(),
                            j.training().sampler_loss());
    }
    if (!j.metrics().empty()) absl::StrAppend(&line, "  ", FormatMetrics(j.metrics()));
    if (!j.sampler_id().empty()) absl::StrAppend(&line, "  sampler ", j.sampler_id());
    if (j.has_error() && !j.error().message().empty()) {
      absl::StrAppend(&line, "  ", j.error().code_name(), ": ", j.error().message());
    }
    return line;
  }

  // session ------------------------------------------------------------------------------------------
  absl::Status Session(const std::string& sub) {
    if (sub == "create") {
      const std::string name = a_.Get("name");
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      absl::StatusOr<v1::Session> s = client_->CreateSession(name);
      if (!s.ok()) return s.status();
      json_ ? PrintJson(*s) : void(out_ << s->id() << "\n");
      return absl::OkStatus();
    }
    if (sub == "list") {
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      absl::StatusOr<std::vector<v1::Session>> all = client_->ListSessions();
      if (!all.ok()) return all.status();
      if (json_) {
        PrintJsonList(*all);
      } else {
        for (const auto& s : *all) {
          out_ << absl::StrFormat("%s  %-16s  targets %d  jobs %d  bytes %d\n", s.id(), s.name().empty() ? "-" : s.name(),
                                  s.target_count(), s.job_count(), s.bytes_held());
        }
      }
      return absl::OkStatus();
    }
    if (sub == "get" || sub == "delete") {
      absl::StatusOr<std::string> id = Positional(2, "session id");
      if (!id.ok()) return id.status();
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      if (sub == "get") {
        absl::StatusOr<v1::Session> s = client_->GetSession(*id);
        if (!s.ok()) return s.status();
        json_ ? PrintJson(*s) : void(out_ << s->DebugString());
        return absl::OkStatus();
      }
      absl::StatusOr<v1::DeleteSessionResponse> r = client_->DeleteSession(*id);
      if (!r.ok()) return r.status();
      json_ ? PrintJson(*r) : void(out_ << "deleted " << *id << " (cancelled " << r->cancelled_jobs() << " jobs)\n");
      return absl::OkStatus();
    }
    return BadUsage("session takes create, list, get or delete");
  }

  // target -------------------------------------------------------------------------------------------
  absl::Status Target(const std::string& sub) {
    if (sub == "upload") {
      absl::StatusOr<std::string> session = Required("session"), name = Required("name"), file = Required("file");
      for (auto* v : {&session, &name, &file}) {
        if (!v->ok()) return v->status();
      }
      absl::StatusOr<LoadedArray> array = ReadArrayFile(*file);
      if (!array.ok()) return array.status();
      absl::StatusOr<DType> dtype = DTypeFlag("dtype", array->dtype);
      if (!dtype.ok()) return dtype.status();
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      absl::StatusOr<v1::Target> t = client_->UploadTarget(*session, *name, array->points, *dtype);
      if (!t.ok()) return t.status();
      json_ ? PrintJson(*t) : void(out_ << t->id() << "\n");
      return absl::OkStatus();
    }
    if (sub == "fit-gmm") {
      // The gmm family (core/targets/gmm_target.cc) with its parameters as flags.
      absl::StatusOr<std::string> session = Required("session"), name = Required("name"), data = Required("data");
      for (auto* v : {&session, &name, &data}) {
        if (!v->ok()) return v->status();
      }
      absl::StatusOr<ParamMap> params = ParamFlags();
      if (!params.ok()) return params.status();
      for (const char* key : {"components", "max-components", "max-points", "seed"}) {
        if (!a_.Has(key)) continue;
        absl::StatusOr<int64_t> v = IntFlag(key, 0);
        if (!v.ok()) return v.status();
        (*params)[absl::StrReplaceAll(key, {{"-", "_"}})] = {static_cast<double>(*v)};
      }
      if (a_.Has("covariance")) {
        const std::string c = a_.Get("covariance");
        if (c == "diagonal" || c == "diag") {
          (*params)["diagonal"] = {1};
        } else if (c == "spherical") {
          (*params)["spherical"] = {1};
        } else if (c != "full") {
          return BadUsage(absl::StrCat("--covariance is full, diagonal or spherical, got '", c, "'"));
        }
      }
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      absl::StatusOr<v1::Target> t = client_->DefineTarget(*session, *name, "gmm", 0, *params, 0, 0, *data);
      if (!t.ok()) return t.status();
      if (json_) {
        PrintJson(*t);
      } else {
        const auto w = t->params().find("weights");
        out_ << t->id() << "  " << (w == t->params().end() ? 0 : w->second.values_size()) << " components in "
             << t->dim() << "-D\n";
      }
      return absl::OkStatus();
    }
    if (sub == "define") {
      absl::StatusOr<std::string> session = Required("session"), name = Required("name"), family = Required("family");
      for (auto* v : {&session, &name, &family}) {
        if (!v->ok()) return v->status();
      }
      absl::StatusOr<int64_t> dim = IntFlag("dim", 0), sample = IntFlag("sample", 0), seed = IntFlag("seed", 0);
      for (auto* v : {&dim, &sample, &seed}) {
        if (!v->ok()) return v->status();
      }
      absl::StatusOr<ParamMap> params_or = ParamFlags();
      if (!params_or.ok()) return params_or.status();
      const ParamMap& params = *params_or;
      const std::string data = a_.Get("data");
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      absl::StatusOr<v1::Target> t = client_->DefineTarget(*session, *name, *family, *dim, params, *sample,
                                                           static_cast<uint64_t>(*seed), data);
      if (!t.ok()) return t.status();
      json_ ? PrintJson(*t) : void(out_ << t->id() << "\n");
      return absl::OkStatus();
    }
    if (sub == "list") {
      absl::StatusOr<std::string> session = Required("session");
      if (!session.ok()) return session.status();
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      absl::StatusOr<std::vector<v1::Target>> all = client_->ListTargets(*session);
      if (!all.ok()) return all.status();
      if (json_) {
        PrintJsonList(*all);
      } else {
        for (const auto& t : *all) {
          out_ << absl::StrFormat("%s  %-16s  %-10s  dim %d  points %d\n", t.id(), t.name(), t.family(), t.dim(),
                                  t.point_count());
        }
      }
      return absl::OkStatus();
    }
    if (sub == "get" || sub == "delete") {
      absl::StatusOr<std::string> session = Required("session");
      if (!session.ok()) return session.status();
      absl::StatusOr<std::string> id = Positional(2, "target id");
      if (!id.ok()) return id.status();
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      if (sub == "get") {
        absl::StatusOr<v1::Target> t = client_->GetTarget(*session, *id);
        if (!t.ok()) return t.status();
        json_ ? PrintJson(*t) : void(out_ << t->DebugString());
        return absl::OkStatus();
      }
      if (absl::Status s = client_->DeleteTarget(*session, *id); !s.ok()) return s;
      if (!json_) out_ << "deleted " << *id << "\n";
      return absl::OkStatus();
    }
    if (sub == "upload-model") {
      absl::StatusOr<std::string> session = Required("session"), name = Required("name"), file = Required("file");
      for (auto* v : {&session, &name, &file}) {
        if (!v->ok()) return v->status();
      }
      absl::StatusOr<int64_t> dim = IntFlag("dim", 0);
      if (!dim.ok()) return dim.status();
      if (*dim < 1) return BadUsage("--dim (the module's input width, >= 1) is required");
      const bool energy = a_.Has("energy");
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      std::ifstream f(*file, std::ios::binary);
      if (!f) return absl::NotFoundError(absl::StrCat("cannot read ", *file));
      std::stringstream ss;
      ss << f.rdbuf();
      absl::StatusOr<v1::Target> t = client_->UploadModel(*session, *name, ss.str(), *dim, energy);
      if (!t.ok()) return t.status();
      json_ ? PrintJson(*t) : void(out_ << t->id() << "\n");
      return absl::OkStatus();
    }
    if (sub == "families") {
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      absl::StatusOr<std::vector<v1::Family>> all = client_->ListFamilies();
      if (!all.ok()) return all.status();
      if (json_) return PrintJsonList(*all), absl::OkStatus();
      for (const auto& f : *all) {
        if (f.needs_data()) {
          out_ << f.name() << " (over a data target: --data T): " << f.summary() << "\n";
        } else if (f.uploaded()) {
          out_ << f.name() << " (uploaded: target upload-model): " << f.summary() << "\n";
        } else {
          out_ << f.name() << " (default dim " << f.default_dim() << "): " << f.summary() << "\n";
        }
        for (const auto& p : f.params()) out_ << "    " << p.name() << ": " << p.doc() << "\n";
      }
      return absl::OkStatus();
    }
    return BadUsage("target takes upload, define, fit-gmm, upload-model, list, get, delete or families");
  }

  // flow ---------------------------------------------------------------------------------------------
  absl::Status Flow(const std::string& sub) {
    if (sub == "start") return FlowStart();
    if (sub == "step") {
      absl::StatusOr<std::string> job = Required("job");
      if (!job.ok()) return job.status();
      absl::StatusOr<int64_t> steps = IntFlag("steps", 1);
      if (!steps.ok()) return steps.status();
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      absl::StatusOr<v1::StepFlowResponse> r = client_->StepFlow(*job, *steps);
      if (!r.ok()) return r.status();
      if (json_) {
        PrintJson(*r);
        if (r->job().state() == v1::JOB_STATE_FAILED) {
          return absl::Status(static_cast<absl::StatusCode>(r->job().error().code()), r->job().error().message());
        }
        return absl::OkStatus();
      }
      if (r->stats_omitted() > 0) out_ << "(statistics of the first " << r->stats_omitted() << " steps omitted)\n";
      for (const v1::StepStats& s : r->stats()) {
        std::string line = absl::StrFormat("step %d  mean move %.4g  max move %.4g", s.step(), s.mean_displacement(),
                                           s.max_displacement());
        if (s.has_bandwidth()) absl::StrAppendFormat(&line, "  bandwidth %.4g", s.bandwidth());
        if (s.has_noise()) absl::StrAppendFormat(&line, "  noise %.4g", s.noise());
        if (s.has_acceptance_rate()) absl::StrAppendFormat(&line, "  accept %.3f", s.acceptance_rate());
        absl::StrAppendFormat(&line, "  %.3g ms", 1e3 * s.seconds());
        out_ << line << "\n";
      }
      out_ << JobLine(r->job()) << "\n";
      // A step that failed ended the run: its statistics are printed above, the exit status says so.
      if (r->job().state() == v1::JOB_STATE_FAILED) {
        return absl::Status(static_cast<absl::StatusCode>(r->job().error().code()), r->job().error().message());
      }
      return absl::OkStatus();
    }
    if (sub == "methods") {
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      absl::StatusOr<std::vector<v1::Method>> all = client_->ListMethods();
      if (!all.ok()) return all.status();
      if (json_) return PrintJsonList(*all), absl::OkStatus();
      for (const auto& m : *all) {
        out_ << m.name() << ": " << m.summary() << "\n";
        if (m.field_docs().empty()) out_ << "    parameters: " << absl::StrJoin(m.fields(), ", ") << "\n";
        for (const auto& f : m.field_docs()) {
          std::string flag = f.name();
          std::replace(flag.begin(), flag.end(), '_', '-');
          if (flag == "batch-size") flag = "batch";
          out_ << "    --" << flag << ": " << f.doc() << "\n";
        }
        for (const auto& o : m.options()) out_ << "    --" << o.name() << ": " << o.doc() << "\n";
      }
      return absl::OkStatus();
    }
    return BadUsage("flow takes start, step or methods");
  }

  absl::Status FlowStart() {
    absl::StatusOr<std::string> session = Required("session"), target = Required("target"), method = Required("method");
    for (auto* v : {&session, &target, &method}) {
      if (!v->ok()) return v->status();
    }
    v1::FlowSpec spec;
    spec.set_method(*method);
    absl::StatusOr<int64_t> particles = IntFlag("particles", -1), steps = IntFlag("steps", 1000),
                            schedule = IntFlag("schedule-steps", 0), eval_every = IntFlag("eval-every", 0);
    for (auto* v : {&particles, &steps, &schedule, &eval_every}) {
      if (!v->ok()) return v->status();
    }
    const std::string init_file = a_.Get("init-file");
    if (!init_file.empty() && a_.Has("particles")) return BadUsage("give --particles or --init-file, not both");
    if (a_.Has("particles") && *particles < 1) {
      return BadUsage(absl::StrCat("--particles must be >= 1, got ", *particles));
    }
    spec.set_particle_count(init_file.empty() ? (a_.Has("particles") ? *particles : 1000) : 0);
    spec.set_steps(*steps);
    spec.set_schedule_steps(*schedule);
    spec.set_eval_every(*eval_every);
    if (a_.Has("init-mean")) {
      absl::StatusOr<std::vector<double>> m = Vector(a_.Get("init-mean"), "--init-mean");
      if (!m.ok()) return m.status();
      spec.mutable_init_mean()->Assign(m->begin(), m->end());
    }
    struct DoubleField {
      const char* flag;
      std::function<void(double)> set;
    };
    for (const DoubleField& f : {DoubleField{"init-std", [&](double v) { spec.set_init_std(v); }},
                                 DoubleField{"step-size", [&](double v) { spec.set_step_size(v); }}}) {
      if (!a_.Has(f.flag)) continue;
      absl::StatusOr<double> v = DoubleFlag(f.flag);
      if (!v.ok()) return v.status();
      f.set(*v);
    }
    if (a_.Has("optimizer")) spec.set_optimizer(a_.Get("optimizer"));
    if (a_.Has("noise")) spec.set_noise(a_.Get("noise"));
    if (a_.Has("bandwidth")) spec.set_bandwidth(a_.Get("bandwidth"));
    if (a_.Has("batch")) {
      absl::StatusOr<int64_t> b = IntFlag("batch", 0);
      if (!b.ok()) return b.status();
      spec.set_batch_size(*b);
    }
    if (a_.Has("median-pairs")) {
      absl::StatusOr<int64_t> pairs = IntFlag("median-pairs", 0);
      if (!pairs.ok()) return pairs.status();
      spec.set_median_pairs(*pairs);
    }
    if (a_.Has("dtype")) {
      absl::StatusOr<DType> t = DTypeFlag("dtype", DType::kFloat32);
      if (!t.ok()) return t.status();
      spec.set_dtype(*t == DType::kFloat32 ? v1::DTYPE_FLOAT32 : v1::DTYPE_FLOAT64);
    }
    if (a_.Has("seed")) {
      absl::StatusOr<int64_t> seed = IntFlag("seed", 0);
      if (!seed.ok()) return seed.status();
      spec.set_seed(static_cast<uint64_t>(*seed));
    }
    if (a_.Has("eval-metrics")) {
      for (absl::string_view m : absl::StrSplit(a_.Get("eval-metrics"), ',', absl::SkipWhitespace())) {
        spec.add_eval_metrics(std::string(m));
      }
    }
    const bool watch = a_.Has("watch");
    // Every other flag is a method option (--leapfrog 10 -> options["leapfrog"] = "10"); the server refuses
    // options the method does not have.
    for (const auto& [name, value] : a_.flags) {
      if (a_.used.count(name) || name == "server" || name == "timeout") continue;
      std::string key = name;
      std::replace(key.begin(), key.end(), '-', '_');
      (*spec.mutable_options())[key] = value;
    }
    if (!init_file.empty()) {
      absl::StatusOr<LoadedArray> init = ReadArrayFile(init_file);
      if (!init.ok()) return init.status();
      const std::string name = absl::StrCat("init:", init_file.substr(init_file.find_last_of('/') + 1), ":",
                                            absl::ToUnixMillis(absl::Now()));
      absl::StatusOr<v1::Target> t = client_->UploadTarget(*session, name, init->points, init->dtype);
      if (!t.ok()) return t.status();
      spec.set_init_target_id(t->id());
      spec.set_particle_count(0);
    }
    absl::StatusOr<v1::Job> job = client_->StartFlow(*session, *target, spec);
    // The flow holds its own copy of the initial particles: the upload that carried them goes, whether
    // the flow started or not.
    if (!spec.init_target_id().empty()) (void)client_->DeleteTarget(*session, spec.init_target_id());
    if (!job.ok()) return job.status();
    if (!watch) {
      json_ ? PrintJson(*job) : void(out_ << job->id() << "\n");
      return absl::OkStatus();
    }
    if (!json_) out_ << job->id() << "\n";
    return Watch(job->id());
  }

  // job ----------------------------------------------------------------------------------------------
  absl::Status JobCommand(const std::string& sub) {
    if (sub == "list") {
      absl::StatusOr<std::string> session = Required("session");
      if (!session.ok()) return session.status();
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      absl::StatusOr<std::vector<v1::Job>> all = client_->ListJobs(*session);
      if (!all.ok()) return all.status();
      if (json_) return PrintJsonList(*all), absl::OkStatus();
      for (const auto& j : *all) out_ << JobLine(j) << "\n";
      return absl::OkStatus();
    }
    absl::StatusOr<std::string> id = Positional(2, "job id");
    if (!id.ok()) return id.status();
    if (sub == "history") return History(*id);
    if (absl::Status s = CheckFlags(); !s.ok()) return s;
    if (sub == "watch") return Watch(*id);
    if (sub == "status" || sub == "cancel") {
      absl::StatusOr<v1::Job> j = sub == "status" ? client_->GetJob(*id) : client_->CancelJob(*id);
      if (!j.ok()) return j.status();
      json_ ? PrintJson(*j) : void(out_ << JobLine(*j) << "\n");
      return absl::OkStatus();
    }
    if (sub == "delete") {
      if (absl::Status s = client_->DeleteJob(*id); !s.ok()) return s;
      out_ << "deleted " << *id << "\n";
      return absl::OkStatus();
    }
    return BadUsage("job takes watch, status, list, cancel, delete or history");
  }

  absl::Status History(const std::string& id) {
    const std::string out_file = a_.Get("out");
    if (absl::Status s = CheckFlags(); !s.ok()) return s;
    absl::StatusOr<v1::JobHistory> h = client_->GetJobHistory(id);
    if (!h.ok()) return h.status();
    if (json_) return PrintJson(*h), absl::OkStatus();
    std::set<std::string> names;
    for (const auto& r : h->rows()) {
      for (const auto& [k, v] : r.metrics()) names.insert(k);
    }
    std::string csv = "step,score_loss,sampler_loss,sampler_grad_norm,seconds";
    for (const auto& n : names) absl::StrAppend(&csv, ",", n);
    csv += "\n";
    for (const auto& r : h->rows()) {
      absl::StrAppendFormat(&csv, "%d,%.9g,%.9g,%.9g,%.6g", r.step(), r.score_loss(), r.sampler_loss(),
                            r.sampler_grad_norm(), r.seconds());
      for (const auto& n : names) {
        auto it = r.metrics().find(n);
        csv += it == r.metrics().end() ? "," : absl::StrFormat(",%.9g", it->second);
      }
      csv += "\n";
    }
    if (out_file.empty()) {
      out_ << csv;
      return absl::OkStatus();
    }
    std::ofstream f(out_file);
    f << csv;
    if (!f) return absl::UnavailableError(absl::StrCat("cannot write ", out_file));
    out_ << "wrote " << h->rows_size() << " rows to " << out_file << "\n";
    return absl::OkStatus();
  }

  // train --------------------------------------------------------------------------------------------
  absl::StatusOr<std::vector<int64_t>> Widths(const std::string& name) {
    std::vector<int64_t> out;
    for (absl::string_view part : absl::StrSplit(a_.Get(name), ',', absl::SkipWhitespace())) {
      int64_t v;
      if (!absl::SimpleAtoi(part, &v)) return BadUsage(absl::StrCat("--", name, ": '", part, "' is not a width"));
      out.push_back(v);
    }
    return out;
  }

  absl::Status Train(const std::string& sub) {
    if (sub == "methods") {
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      absl::StatusOr<std::vector<v1::TrainMethod>> all = client_->ListTrainMethods();
      if (!all.ok()) return all.status();
      if (json_) return PrintJsonList(*all), absl::OkStatus();
      for (const auto& m : *all) {
        out_ << m.name() << ": " << m.summary() << "\n";
        for (const auto& p : m.parameters()) {
          out_ << "  --" << absl::StrReplaceAll(p.name(), {{"_", "-"}}) << ": " << p.doc() << "\n";
        }
      }
      return absl::OkStatus();
    }
    if (sub != "start") return BadUsage("train takes start or methods");
    absl::StatusOr<std::string> session = Required("session"), target = Required("target"), method = Required("method");
    for (auto* v : {&session, &target, &method}) {
      if (!v->ok()) return v->status();
    }
    v1::TrainSpec spec;
    spec.set_method(*method);
    absl::StatusOr<int64_t> steps = IntFlag("steps", 1000), eval_every = IntFlag("eval-every", 0),
                            eval_draws = IntFlag("eval-draws", 0), seed = IntFlag("seed", 0);
    for (auto* v : {&steps, &eval_every, &eval_draws, &seed}) {
      if (!v->ok()) return v->status();
    }
    spec.set_steps(*steps);
    spec.set_eval_every(*eval_every);
    spec.set_eval_draws(*eval_draws);
    spec.set_seed(static_cast<uint64_t>(*seed));
    struct IntField {
      const char* flag;
      std::function<void(int64_t)> set;
    };
    for (const IntField& f : {IntField{"latent", [&](int64_t v) { spec.set_latent(v); }},
                              IntField{"score-steps", [&](int64_t v) { spec.set_score_steps(v); }},
                              IntField{"batch", [&](int64_t v) { spec.set_batch(v); }},
                              IntField{"steps-per-batch", [&](int64_t v) { spec.set_steps_per_batch(v); }},
                              IntField{"gmm-components", [&](int64_t v) { spec.set_gmm_components(v); }},
                              IntField{"noise-steps", [&](int64_t v) { spec.set_noise_steps(v); }},
                              IntField{"times", [&](int64_t v) { spec.set_times(v); }},
                              IntField{"cv-every", [&](int64_t v) { spec.set_cv_every(v); }},
                              IntField{"sample-steps", [&](int64_t v) { spec.set_sample_steps(v); }},
                              IntField{"basis", [&](int64_t v) { spec.set_basis(v); }},
                              IntField{"inner-steps", [&](int64_t v) { spec.set_inner_steps(v); }}}) {
      if (!a_.Has(f.flag)) continue;
      absl::StatusOr<int64_t> v = IntFlag(f.flag, 0);
      if (!v.ok()) return v.status();
      f.set(*v);
    }
    struct DoubleField {
      const char* flag;
      std::function<void(double)> set;
    };
    for (const DoubleField& f : {DoubleField{"lr", [&](double v) { spec.set_lr(v); }},
                                 DoubleField{"score-lr", [&](double v) { spec.set_score_lr(v); }},
                                 DoubleField{"dsm-sigma", [&](double v) { spec.set_dsm_sigma(v); }},
                                 DoubleField{"eta", [&](double v) { spec.set_eta(v); }},
                                 DoubleField{"init-std", [&](double v) { spec.set_init_std(v); }},
                                 DoubleField{"dt", [&](double v) { spec.set_dt(v); }},
                                 DoubleField{"dt-last", [&](double v) { spec.set_dt_last(v); }},
                                 DoubleField{"cv-eps", [&](double v) { spec.set_cv_eps(v); }},
                                 DoubleField{"epsilon", [&](double v) { spec.set_epsilon(v); }},
                                 DoubleField{"ridge", [&](double v) { spec.set_ridge(v); }}}) {
      if (!a_.Has(f.flag)) continue;
      absl::StatusOr<double> v = DoubleFlag(f.flag);
      if (!v.ok()) return v.status();
      f.set(*v);
    }
    for (const char* name : {"hidden", "score-hidden"}) {
      if (!a_.Has(name)) continue;
      absl::StatusOr<std::vector<int64_t>> w = Widths(name);
      if (!w.ok()) return w.status();
      auto* field = std::string(name) == "hidden" ? spec.mutable_hidden() : spec.mutable_score_hidden();
      field->Assign(w->begin(), w->end());
    }
    if (a_.Has("activation")) spec.set_activation(a_.Get("activation"));
    if (a_.Has("score-activation")) spec.set_score_activation(a_.Get("score-activation"));
    if (a_.Has("score-loss")) spec.set_score_loss(a_.Get("score-loss"));
    if (a_.Has("generator")) spec.set_generator(a_.Get("generator"));
    if (a_.Has("noise")) spec.set_noise(a_.Get("noise"));
    if (a_.Has("bandwidth")) spec.set_bandwidth(a_.Get("bandwidth"));
    if (a_.Has("optimizer")) spec.set_optimizer(a_.Get("optimizer"));
    if (a_.Has("gmm-covariance")) spec.set_gmm_covariance(a_.Get("gmm-covariance"));
    if (a_.Has("score-form")) spec.set_score_form(a_.Get("score-form"));
    if (a_.Has("stats")) spec.set_stats(a_.Get("stats"));
    if (a_.Has("pairs")) spec.set_pairs(a_.Get("pairs"));
    if (a_.Has("feature-bandwidth")) spec.set_feature_bandwidth(a_.Get("feature-bandwidth"));
    spec.set_from_sampler_id(a_.Get("from-sampler"));
    const bool watch = a_.Has("watch");
    if (absl::Status s = CheckFlags(); !s.ok()) return s;
    absl::StatusOr<v1::Job> job = client_->StartTraining(*session, *target, spec);
    if (!job.ok()) return job.status();
    if (!watch) {
      json_ ? PrintJson(*job) : void(out_ << job->id() << "\n");
      return absl::OkStatus();
    }
    if (!json_) out_ << job->id() << "\n";
    return Watch(job->id());
  }

  // sampler, sample ----------------------------------------------------------------------------------
  static std::string SamplerLine(const v1::Sampler& m) {
    std::string line = absl::StrFormat("%s  %-6s  target %s  steps %d  %s %s", m.id(), m.method(), m.target_id(),
                                       m.steps(), absl::StrJoin(m.hidden(), "x"), m.activation());
    if (!m.final_metrics().empty()) absl::StrAppend(&line, "  final ", FormatMetrics(m.final_metrics()));
    if (m.best_step() >= 0) absl::StrAppend(&line, "  best@", m.best_step(), " ", FormatMetrics(m.best_metrics()));
    if (m.kind() == "score-model") absl::StrAppend(&line, "  score model (", m.dynamics(), ", ", m.default_steps(), " steps)");
    if (m.kind() == "drift-chain") {
      absl::StrAppend(&line, "  drift chain (", m.default_steps(), " drifts, epsilon ", m.epsilon(), ")");
    }
    if (m.last_finite()) absl::StrAppend(&line, "  (last finite weights of a failed run)");
    return line;
  }

  absl::Status SamplerCommand(const std::string& sub) {
    if (sub == "list") {
      absl::StatusOr<std::string> session = Required("session");
      if (!session.ok()) return session.status();
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      absl::StatusOr<std::vector<v1::Sampler>> all = client_->ListSamplers(*session);
      if (!all.ok()) return all.status();
      if (json_) return PrintJsonList(*all), absl::OkStatus();
      for (const auto& m : *all) out_ << SamplerLine(m) << "\n";
      return absl::OkStatus();
    }
    if (sub == "get" || sub == "delete") {
      absl::StatusOr<std::string> id = Positional(2, "sampler id");
      if (!id.ok()) return id.status();
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      if (sub == "delete") {
        if (absl::Status s = client_->DeleteSampler(*id); !s.ok()) return s;
        out_ << "deleted " << *id << "\n";
        return absl::OkStatus();
      }
      absl::StatusOr<v1::Sampler> m = client_->GetSampler(*id);
      if (!m.ok()) return m.status();
      json_ ? PrintJson(*m) : void(out_ << SamplerLine(*m) << "\n" << m->provenance_json() << "\n");
      return absl::OkStatus();
    }
    if (sub == "export") {
      absl::StatusOr<std::string> id = Positional(2, "sampler id");
      absl::StatusOr<std::string> out = Required("out");
      for (auto* v : {&id, &out}) {
        if (!v->ok()) return v->status();
      }
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      absl::StatusOr<std::string> bytes = client_->ExportSampler(*id);
      if (!bytes.ok()) return bytes.status();
      std::ofstream f(*out, std::ios::binary);
      f << *bytes;
      if (!f) return absl::UnavailableError(absl::StrCat("cannot write ", *out));
      out_ << "wrote " << bytes->size() << " bytes to " << *out << "\n";
      return absl::OkStatus();
    }
    if (sub == "import") {
      absl::StatusOr<std::string> session = Required("session"), file = Required("file");
      for (auto* v : {&session, &file}) {
        if (!v->ok()) return v->status();
      }
      if (absl::Status s = CheckFlags(); !s.ok()) return s;
      std::ifstream f(*file, std::ios::binary);
      if (!f) return absl::NotFoundError(absl::StrCat("cannot read ", *file));
      std::stringstream ss;
      ss << f.rdbuf();
      absl::StatusOr<v1::Sampler> m = client_->ImportSampler(*session, ss.str());
      if (!m.ok()) return m.status();
      json_ ? PrintJson(*m) : void(out_ << m->id() << "\n");
      return absl::OkStatus();
    }
    return BadUsage("sampler takes list, get, delete, export or import");
  }

  absl::Status SampleCommand() {
    absl::StatusOr<std::string> sampler = Required("sampler"), out = Required("out");
    for (auto* v : {&sampler, &out}) {
      if (!v->ok()) return v->status();
    }
    if (!a_.Has("n")) return BadUsage("-n is required");
    absl::StatusOr<int64_t> n = IntFlag("n", 0), seed = IntFlag("seed", 0), steps = IntFlag("steps", 0);
    for (auto* v : {&n, &seed, &steps}) {
      if (!v->ok()) return v->status();
    }
    absl::StatusOr<DType> dtype = DTypeFlag("dtype", DType::kFloat64);
    if (!dtype.ok()) return dtype.status();
    const std::string checkpoint = a_.Get("checkpoint", "final");
    if (checkpoint != "final" && checkpoint != "best") return BadUsage("--checkpoint is final or best");
    const std::string dynamics = a_.Get("dynamics", "sde");
    if (dynamics != "sde" && dynamics != "ode") return BadUsage("--dynamics is sde or ode (score models)");
    if (absl::Status s = CheckFlags(); !s.ok()) return s;
    absl::StatusOr<Points> draws = client_->Sample(*sampler, *n, static_cast<uint64_t>(*seed), *dtype,
                                                   checkpoint == "best", 0,
                                                   a_.Has("steps") ? std::optional<int64_t>(*steps) : std::nullopt,
                                                   dynamics == "ode");
    if (!draws.ok()) return draws.status();
    if (absl::Status s = WriteArrayFile(*out, *draws, *dtype); !s.ok()) return s;
    if (!json_) out_ << "wrote " << draws->rows() << " x " << draws->cols() << " to " << *out << "\n";
    return absl::OkStatus();
  }

  // A live progress bar on a terminal; on a pipe, a line per second and at every state change.
  absl::Status Watch(const std::string& id) {
    const bool tty = &out_ == &std::cout && isatty(STDOUT_FILENO) && !json_;
    absl::Time last_line = absl::InfinitePast();
    v1::JobState last_state = v1::JOB_STATE_UNSPECIFIED;
    absl::StatusOr<v1::Job> final_job = client_->WatchJob(id, [&](const v1::Job& j) {
      if (json_) return PrintJson(j);
      const bool terminal = j.state() == v1::JOB_STATE_SUCCEEDED || j.state() == v1::JOB_STATE_FAILED ||
                            j.state() == v1::JOB_STATE_CANCELLED;
      const double frac = j.total_steps() > 0 ? static_cast<double>(j.step()) / j.total_steps() : 1.0;
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(std::round(frac * kWidth));
      std::string line = absl::StrFormat("%-9s [%s%s] %d/%d %3.0f%%  %.1f steps/s  ETA %.1fs", StateName(j.state()),
                                         std::string(filled, '#'), std::string(kWidth - filled, '-'), j.step(),
                                         j.total_steps(), 100 * frac, j.steps_per_second(), j.eta_seconds());
      if (j.has_training()) {
      absl::StrAppendFormat(&line, "  score_loss=%.4g sampler_loss=%.4g", j.training().score_loss(),
                            j.training().sampler_loss());
    }
    if (!j.metrics().empty()) absl::StrAppend(&line, "  ", FormatMetrics(j.metrics()));
    if (!j.sampler_id().empty()) absl::StrAppend(&line, "  sampler ", j.sampler_id());
      if (tty) {
        out_ << "\r\033[K" << line << std::flush;
        if (terminal) out_ << "\n";
      } else if (terminal || j.state() != last_state || absl::Now() - last_line >= absl::Seconds(1)) {
        out_ << line << "\n";
        last_line = absl::Now();
      }
      last_state = j.state();
    });
    if (!final_job.ok()) return final_job.status();
    if (!json_) out_ << JobLine(*final_job) << "\n";
    if (final_job->state() != v1::JOB_STATE_SUCCEEDED) exit_override_ = kFailed;
    return absl::OkStatus();
  }

  // particles, eval, metrics, health ------------------------------------------------------------------
  absl::Status Particles() {
    absl::StatusOr<std::string> job = Required("job"), file = Required("out");
    for (auto* v : {&job, &file}) {
      if (!v->ok()) return v->status();
    }
    absl::StatusOr<DType> dtype = DTypeFlag("dtype", DType::kFloat64);
    if (!dtype.ok()) return dtype.status();
    if (absl::Status s = CheckFlags(); !s.ok()) return s;
    int64_t step = 0;
    absl::StatusOr<Points> p = client_->GetParticles(*job, &step, *dtype);
    if (!p.ok()) return p.status();
    if (absl::Status s = WriteArrayFile(*file, *p, *dtype); !s.ok()) return s;
    if (!json_) out_ << "wrote " << p->rows() << " x " << p->cols() << " particles (step " << step << ") to " << *file << "\n";
    return absl::OkStatus();
  }

  absl::Status Eval() {
    absl::StatusOr<std::string> session = Required("session"), target = Required("target");
    for (auto* v : {&session, &target}) {
      if (!v->ok()) return v->status();
    }
    SampleSource source;
    source.samples_target_id = a_.Get("samples-target");
    source.job_id = a_.Get("job");
    source.sampler_id = a_.Get("sampler");
    const std::string file = a_.Get("file");
    absl::StatusOr<LoadedArray> array;
    if (!file.empty()) {
      array = ReadArrayFile(file);
      if (!array.ok()) return array.status();
      source.samples = &array->points;
    }
    if ((source.samples != nullptr) + !source.samples_target_id.empty() + !source.job_id.empty() +
            !source.sampler_id.empty() != 1) {
      return BadUsage("give exactly one of --file, --samples-target, --job and --sampler");
    }
    if (a_.Has("n")) {
      absl::StatusOr<int64_t> n = IntFlag("n", 0);
      if (!n.ok()) return n.status();
      source.sampler_draws = *n;
    }
    std::vector<std::string> metrics;
    for (absl::string_view m : absl::StrSplit(a_.Get("metrics"), ',', absl::SkipWhitespace())) metrics.emplace_back(m);
    absl::StatusOr<int64_t> seed = IntFlag("seed", 0);
    if (!seed.ok()) return seed.status();
    if (absl::Status s = CheckFlags(); !s.ok()) return s;
    absl::StatusOr<v1::EvaluateResponse> r = client_->Evaluate(*session, *target, source, metrics, *seed);
    if (!r.ok()) return r.status();
    if (json_) return PrintJson(*r), absl::OkStatus();
    for (const auto& [name, value] : std::map<std::string, double>(r->metrics().begin(), r->metrics().end())) {
      out_ << absl::StrFormat("%-7s %.6g\n", name, value);
    }
    return absl::OkStatus();
  }

  absl::Status Metrics() {
    if (absl::Status s = CheckFlags(); !s.ok()) return s;
    absl::StatusOr<std::vector<v1::MetricInfo>> all = client_->ListMetrics();
    if (!all.ok()) return all.status();
    if (json_) return PrintJsonList(*all), absl::OkStatus();
    for (const auto& m : *all) out_ << m.name() << ": " << m.description() << "\n";
    return absl::OkStatus();
  }

  absl::Status Health() {
    const std::string service = a_.Get("service");
    if (absl::Status s = CheckFlags(); !s.ok()) return s;
    auto status = client_->Health(service);
    if (!status.ok()) return status.status();
    const std::string name = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(*status);
    out_ << (json_ ? absl::StrCat("{\"status\":\"", name, "\"}") : name) << "\n";
    if (*status != grpc::health::v1::HealthCheckResponse::SERVING) exit_override_ = kFailed;
    return absl::OkStatus();
  }

  Args a_;
  std::ostream& out_;
  std::ostream& err_;
  std::unique_ptr<SampledClient> client_;
  bool json_ = false;
  bool usage_error_ = false;
  int exit_override_ = kOk;
};

}  // namespace

int RunSamplectl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<Args> parsed = Parse(args);
  if (!parsed.ok()) {
    err << "samplectl: " << parsed.status().message() << "\n" << kUsageText;
    return kUsage;
  }
  return Cli(*std::move(parsed), out, err).Run();
}

}  // namespace sampled::client
