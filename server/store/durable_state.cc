#include "server/store/durable_state.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "core/common/byte_codec.h"
#include "core/training/sampler.h"
#include "server/store/blob_file.h"

namespace sampled::server {
namespace {
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "array files hold the host's doubles: little-endian");

template <typename T>
void SetOptional(Record& r, const std::string& key, const std::optional<T>& v) {
  if (!v.has_value()) return;
  if constexpr (std::is_same_v<T, std::string>) {
    r.Set(key, *v);
  } else if constexpr (std::is_same_v<T, double>) {
    r.SetDouble(key, *v);
  } else {
    r.SetInt(key, static_cast<int64_t>(*v));
  }
}
}  // namespace

// Records -------------------------------------------------------------------------------------------------

TargetRecipe DataRecipe() {
  TargetRecipe r;
  r.kind = "data";
  return r;
}

TargetRecipe DensityRecipe(std::string family, int64_t dim, ParamMap params, std::string data_target_id) {
  TargetRecipe r;
  r.kind = "density";
  r.family = std::move(family);
  r.dim = dim;
  r.params = std::move(params);
  r.data_target_id = std::move(data_target_id);
  return r;
}

TargetRecipe TorchScriptRecipe(int64_t dim, bool energy) {
  TargetRecipe r;
  r.kind = "torchscript";
  r.dim = dim;
  r.energy = energy;
  return r;
}

Record EncodeFlowSpec(const FlowJobSpec& spec) {
  const FlowConfig& c = spec.config;
  Record r;
  r.Set("method", c.method);
  r.SetInt("schedule_steps", c.schedule_steps);
  SetOptional(r, "step_size", c.step_size);
  SetOptional(r, "optimizer", c.optimizer);
  SetOptional(r, "noise", c.noise);
  SetOptional(r, "bandwidth", c.bandwidth);
  SetOptional(r, "batch_size", c.batch_size);
  if (c.dtype.has_value()) r.SetInt("dtype", *c.dtype == DType::kFloat32 ? 32 : 64);
  SetOptional(r, "median_pairs", c.median_pairs);
  r.SetInt("seed", static_cast<int64_t>(c.seed));
  std::vector<std::string> options;
  for (const auto& [k, v] : c.options) options.push_back(k), options.push_back(v);
  r.SetStrings("options", options);
  r.SetInt("steps", spec.steps);
  r.SetInt("eval_every", spec.eval_every);
  r.SetStrings("eval_metrics", spec.eval_metrics);
  return r;
}

FlowJobSpec DecodeFlowSpec(const Record& r) {
  FlowJobSpec spec;
  FlowConfig& c = spec.config;
  c.method = r.Get("method");
  c.schedule_steps = r.GetInt("schedule_steps");
  c.step_size = r.GetOptionalDouble("step_size");
  c.optimizer = r.GetOptional("optimizer");
  c.noise = r.GetOptional("noise");
  c.bandwidth = r.GetOptional("bandwidth");
  c.batch_size = r.GetOptionalInt("batch_size");
  if (r.Has("dtype")) c.dtype = r.GetInt("dtype") == 32 ? DType::kFloat32 : DType::kFloat64;
  c.median_pairs = r.GetOptionalInt("median_pairs");
  c.seed = static_cast<uint64_t>(r.GetInt("seed"));
  const std::vector<std::string> options = r.GetStrings("options");
  for (size_t i = 0; i + 1 < options.size(); i += 2) c.options[options[i]] = options[i + 1];
  spec.steps = r.GetInt("steps");
  spec.eval_every = r.GetInt("eval_every");
  spec.eval_metrics = r.GetStrings("eval_metrics");
  return spec;
}

Record EncodeTrainConfig(const training::TrainConfig& c) {
  Record r;
  r.Set("method", c.method);
  SetOptional(r, "latent", c.latent);
  if (c.hidden.has_value()) r.SetParams("hidden", {{"w", std::vector<double>(c.hidden->begin(), c.hidden->end())}});
  SetOptional(r, "activation", c.activation);
  if (c.score_hidden.has_value()) {
    r.SetParams("score_hidden", {{"w", std::vector<double>(c.score_hidden->begin(), c.score_hidden->end())}});
  }
  SetOptional(r, "score_activation", c.score_activation);
  SetOptional(r, "score_steps", c.score_steps);
  SetOptional(r, "score_loss", c.score_loss);
  SetOptional(r, "dsm_sigma", c.dsm_sigma);
  SetOptional(r, "batch", c.batch);
  SetOptional(r, "lr", c.lr);
  SetOptional(r, "score_lr", c.score_lr);
  SetOptional(r, "generator", c.generator);
  SetOptional(r, "eta", c.eta);
  SetOptional(r, "noise", c.noise);
  SetOptional(r, "bandwidth", c.bandwidth);
  SetOptional(r, "optimizer", c.optimizer);
  SetOptional(r, "steps_per_batch", c.steps_per_batch);
  SetOptional(r, "init_std", c.init_std);
  SetOptional(r, "gmm_components", c.gmm_components);
  SetOptional(r, "noise_steps", c.noise_steps);
  SetOptional(r, "times", c.times);
  SetOptional(r, "cv_every", c.cv_every);
  SetOptional(r, "sample_steps", c.sample_steps);
  SetOptional(r, "gmm_covariance", c.gmm_covariance);
  SetOptional(r, "score_form", c.score_form);
  SetOptional(r, "dt", c.dt);
  SetOptional(r, "dt_last", c.dt_last);
  SetOptional(r, "cv_eps", c.cv_eps);
  SetOptional(r, "stats", c.stats);
  SetOptional(r, "basis", c.basis);
  SetOptional(r, "pairs", c.pairs);
  SetOptional(r, "feature_bandwidth", c.feature_bandwidth);
  SetOptional(r, "epsilon", c.epsilon);
  SetOptional(r, "inner_steps", c.inner_steps);
  SetOptional(r, "ridge", c.ridge);
  r.SetInt("seed", static_cast<int64_t>(c.seed));
  return r;
}

training::TrainConfig DecodeTrainConfig(const Record& r) {
  training::TrainConfig c;
  const auto widths = [&](const std::string& key) -> std::optional<std::vector<int64_t>> {
    if (!r.Has(key)) return std::nullopt;
    const ParamMap p = r.GetParams(key);
    std::vector<int64_t> out;
    if (auto it = p.find("w"); it != p.end()) {
      for (double v : it->second) out.push_back(static_cast<int64_t>(v));
    }
    return out;
  };
  c.method = r.Get("method");
  c.latent = r.GetOptionalInt("latent");
  c.hidden = widths("hidden");
  c.activation = r.GetOptional("activation");
  c.score_hidden = widths("score_hidden");
  c.score_activation = r.GetOptional("score_activation");
  c.score_steps = r.GetOptionalInt("score_steps");
  c.score_loss = r.GetOptional("score_loss");
  c.dsm_sigma = r.GetOptionalDouble("dsm_sigma");
  c.batch = r.GetOptionalInt("batch");
  c.lr = r.GetOptionalDouble("lr");
  c.score_lr = r.GetOptionalDouble("score_lr");
  c.generator = r.GetOptional("generator");
  c.eta = r.GetOptionalDouble("eta");
  c.noise = r.GetOptional("noise");
  c.bandwidth = r.GetOptional("bandwidth");
  c.optimizer = r.GetOptional("optimizer");
  c.steps_per_batch = r.GetOptionalInt("steps_per_batch");
  c.init_std = r.GetOptionalDouble("init_std");
  c.gmm_components = r.GetOptionalInt("gmm_components");
  c.noise_steps = r.GetOptionalInt("noise_steps");
  c.times = r.GetOptionalInt("times");
  c.cv_every = r.GetOptionalInt("cv_every");
  c.sample_steps = r.GetOptionalInt("sample_steps");
  c.gmm_covariance = r.GetOptional("gmm_covariance");
  c.score_form = r.GetOptional("score_form");
  c.dt = r.GetOptionalDouble("dt");
  c.dt_last = r.GetOptionalDouble("dt_last");
  c.cv_eps = r.GetOptionalDouble("cv_eps");
  c.stats = r.GetOptional("stats");
  c.basis = r.GetOptionalInt("basis");
  c.pairs = r.GetOptional("pairs");
  c.feature_bandwidth = r.GetOptional("feature_bandwidth");
  c.epsilon = r.GetOptionalDouble("epsilon");
  c.inner_steps = r.GetOptionalInt("inner_steps");
  c.ridge = r.GetOptionalDouble("ridge");
  c.seed = static_cast<uint64_t>(r.GetInt("seed"));
  return c;
}

Record EncodeSnapshot(const JobSnapshot& s) {
  Record r;
  r.Set("kind", s.kind);
  r.Set("target_id", s.target_id);
  r.Set("method", s.method);
  r.SetInt("state", static_cast<int64_t>(s.state));
  r.SetInt("step", s.step);
  r.SetInt("total_steps", s.total_steps);
  r.Set("sampler_id", s.sampler_id);
  r.SetMetrics("metrics", s.metrics);
  r.SetInt("metrics_step", s.metrics_step);
  r.Set("metrics_error", s.metrics_error);
  r.SetInt("error_code", static_cast<int64_t>(s.error.code()));
  r.Set("error_message", std::string(s.error.message()));
  r.SetTime("create_time", s.create_time);
  r.SetTime("start_time", s.start_time);
  r.SetTime("end_time", s.end_time);
  r.SetInt("particle_count", s.particle_count);
  r.SetInt("dim", s.dim);
  return r;
}

JobSnapshot DecodeSnapshot(const Record& r) {
  JobSnapshot s;
  s.kind = r.Get("kind");
  s.target_id = r.Get("target_id");
  s.method = r.Get("method");
  const int64_t state = r.GetInt("state");
  s.state = state >= 0 && state <= static_cast<int64_t>(JobState::kCancelled) ? static_cast<JobState>(state)
                                                                              : JobState::kFailed;
  s.step = r.GetInt("step");
  s.total_steps = r.GetInt("total_steps");
  s.sampler_id = r.Get("sampler_id");
  s.metrics = r.GetMetrics("metrics");
  s.metrics_step = r.GetInt("metrics_step");
  s.metrics_error = r.Get("metrics_error");
  s.error = absl::Status(static_cast<absl::StatusCode>(r.GetInt("error_code")), r.Get("error_message"));
  s.create_time = r.GetTime("create_time");
  s.start_time = r.GetTime("start_time");
  s.end_time = r.GetTime("end_time");
  s.particle_count = r.GetInt("particle_count");
  s.dim = r.GetInt("dim");
  return s;
}

std::vector<std::string_view> ArrayPayload(const Points& points, std::string* header) {
  header->clear();
  ByteWriter w(header);
  w.U64(static_cast<uint64_t>(points.rows()));
  w.U64(static_cast<uint64_t>(points.cols()));
  return {*header, std::string_view(reinterpret_cast<const char*>(points.data()),
                                    static_cast<size_t>(points.size()) * sizeof(double))};
}

absl::StatusOr<Points> ParseArrayPayload(std::string_view bytes) {
  ByteReader r(bytes);
  Points m;
  if (!r.Matrix(&m) || !r.Done()) return absl::DataLossError("the array file does not hold a whole array");
  return m;
}

// The store ----------------------------------------------------------------------------------------------

absl::StatusOr<std::shared_ptr<DurableState>> DurableState::Open(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<StateStore>> store = StateStore::Open(dir);
  if (!store.ok()) return store.status();
  return std::shared_ptr<DurableState>(new DurableState(*std::move(store)));
}

absl::Status DurableState::SaveSession(const SessionInfo& info) {
  Record r;
  r.Set("name", info.name);
  r.SetTime("create_time", info.create_time);
  return store_->Put({info.id, "session", info.id, r.Encode(), ""});
}

SessionInfo DurableState::DecodeSession(const StoredRow& row, const Record& r) {
  SessionInfo info;
  info.id = row.id;
  info.name = r.Get("name");
  info.create_time = r.GetTime("create_time");
  return info;
}

absl::Status DurableState::SaveTarget(const TargetEntry& entry, const TargetRecipe& recipe,
                                      const std::vector<std::string_view>& payload) {
  Record r;
  r.Set("name", entry.name);
  r.SetTime("create_time", entry.create_time);
  r.Set("kind", recipe.kind);
  r.Set("family", recipe.family);
  r.SetInt("dim", recipe.dim);
  r.SetParams("params", recipe.params);
  r.Set("data_target_id", recipe.data_target_id);
  r.SetInt("energy", recipe.energy);
  return SaveWithFile({entry.id, "target", entry.session_id, r.Encode(), ""},
                      recipe.kind == "torchscript" ? "model" : "array", payload);
}

absl::Status DurableState::SaveWithFile(const StoredRow& row, const std::string& suffix,
                                        const std::vector<std::string_view>& payload) {
  // The file first: a row never refers to a file that is not there (a crash between the two leaves an
  // unreferenced file, removed at the next start).
  if (!payload.empty()) {
    if (absl::Status s = WriteBlobFile(store_->BlobPath(row.id, suffix), payload); !s.ok()) return s;
  }
  absl::Status s = store_->Put(row);
  if (!s.ok()) store_->Delete(row.id).IgnoreError();
  return s;
}

TargetRecipe DurableState::DecodeRecipe(const Record& r) {
  TargetRecipe t;
  t.kind = r.Get("kind");
  t.family = r.Get("family");
  t.dim = r.GetInt("dim");
  t.params = r.GetParams("params");
  t.data_target_id = r.Get("data_target_id");
  t.energy = r.GetInt("energy") != 0;
  return t;
}

absl::StatusOr<std::string> DurableState::ReadTargetFile(const std::string& target_id) const {
  absl::StatusOr<std::string> data = ReadBlobFile(store_->BlobPath(target_id, "array"));
  if (data.ok() || !absl::IsNotFound(data.status())) return data;
  return ReadBlobFile(store_->BlobPath(target_id, "model"));
}

absl::Status DurableState::SaveSampler(const SamplerEntry& entry) {
  const std::string file = training::EncodeSamplerFile(*entry.model);
  Record r;
  r.Set("job_id", entry.job_id);
  r.Set("target_id", entry.target_id);
  r.Set("method", entry.method);
  r.SetInt("steps", entry.steps);
  r.SetMetrics("final_metrics", entry.final_metrics);
  r.SetMetrics("best_metrics", entry.best_metrics);
  r.SetInt("best_step", entry.best_step);
  r.SetTime("create_time", entry.create_time);
  return SaveWithFile({entry.id, "sampler", entry.session_id, r.Encode(), ""}, "sampler", {file});
}

SamplerEntry DurableState::DecodeSampler(const StoredRow& row, const Record& r) {
  SamplerEntry e;
  e.id = row.id;
  e.session_id = row.session_id;
  e.job_id = r.Get("job_id");
  e.target_id = r.Get("target_id");
  e.method = r.Get("method");
  e.steps = r.GetInt("steps");
  e.final_metrics = r.GetMetrics("final_metrics");
  e.best_metrics = r.GetMetrics("best_metrics");
  e.best_step = r.GetInt("best_step", -1);
  e.create_time = r.GetTime("create_time");
  return e;
}

absl::StatusOr<std::string> DurableState::ReadSamplerFile(const std::string& sampler_id) const {
  return ReadBlobFile(store_->BlobPath(sampler_id, "sampler"));
}

absl::Status DurableState::SaveJob(const JobSnapshot& snapshot, const Record& spec, std::string_view checkpoint) {
  return SaveWithFile({snapshot.id, "job", snapshot.session_id, spec.Encode(), EncodeSnapshot(snapshot).Encode()},
                      "checkpoint", {checkpoint});
}

absl::Status DurableState::SaveCheckpoint(const std::string& job_id, std::string_view bytes) {
  return WriteBlobFile(store_->BlobPath(job_id, "checkpoint"), {bytes});
}

absl::Status DurableState::RetireTarget(const std::string& target_id) {
  Record state;
  state.SetInt("retired", 1);
  return store_->PutState(target_id, state.Encode());
}

bool DurableState::IsRetired(const StoredRow& row) {
  if (row.kind != "target" || row.state.empty()) return false;
  absl::StatusOr<Record> state = Record::Decode(row.state);
  return state.ok() && state->GetInt("retired") == 1;
}

void DurableState::SaveSnapshot(const JobSnapshot& snapshot) {
  if (absl::Status s = store_->PutState(snapshot.id, EncodeSnapshot(snapshot).Encode()); !s.ok()) {
    std::cerr << "sampled: recording job " << snapshot.id << " failed: " << s << "\n";
  }
}

absl::StatusOr<std::string> DurableState::ReadCheckpoint(const std::string& job_id) const {
  return ReadBlobFile(store_->BlobPath(job_id, "checkpoint"));
}

}  // namespace sampled::server
