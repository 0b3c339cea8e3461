#include "server/convert/convert.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "server/convert/status.h"

namespace sampled::server {

DType FromProto(v1::DType t) { return t == v1::DTYPE_FLOAT32 ? DType::kFloat32 : DType::kFloat64; }
v1::DType ToProto(DType t) { return t == DType::kFloat32 ? v1::DTYPE_FLOAT32 : v1::DTYPE_FLOAT64; }

ParamMap FromProto(const google::protobuf::Map<std::string, v1::Values>& params) {
  ParamMap out;
  for (const auto& [key, values] : params) out[key] = {values.values().begin(), values.values().end()};
  return out;
}

void ToProto(const ParamMap& params, google::protobuf::Map<std::string, v1::Values>* out) {
  for (const auto& [key, values] : params) {
    v1::Values& v = (*out)[key];
    v.mutable_values()->Assign(values.begin(), values.end());
  }
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  if (t == absl::InfinitePast()) return;
  const int64_t nanos = absl::ToUnixNanos(t);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

namespace {

absl::Status CheckDType(v1::DType t, const char* field) {
  if (!v1::DType_IsValid(t)) return absl::InvalidArgumentError(absl::StrCat(field, ": unknown dtype ", static_cast<int>(t)));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<UploadSpec> FromProto(const v1::UploadTargetHeader& header) {
  if (header.dtype() == v1::DTYPE_UNSPECIFIED) {
    return absl::InvalidArgumentError("upload header: dtype must be DTYPE_FLOAT32 or DTYPE_FLOAT64");
  }
  if (absl::Status s = CheckDType(header.dtype(), "upload header"); !s.ok()) return s;
  UploadSpec spec;
  spec.session_id = header.session_id();
  spec.name = header.name();
  spec.dtype = FromProto(header.dtype());
  spec.dim = header.dim();
  spec.expected_rows = header.expected_rows();
  return spec;
}

absl::StatusOr<StartFlowArgs> FromProto(const v1::StartFlowRequest& request) {
  const v1::FlowSpec& s = request.spec();
  if (absl::Status st = CheckDType(s.dtype(), "spec.dtype"); !st.ok()) return st;
  if (s.method().empty()) return absl::InvalidArgumentError("spec.method is required (e.g. sd, svgd, langevin)");
  if (s.particle_count() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("spec.particle_count must be >= 0, got ", s.particle_count()));
  }
  if (s.particle_count() == 0 && s.init_target_id().empty()) {
    return absl::InvalidArgumentError("give spec.particle_count (> 0) or spec.init_target_id");
  }
  if (s.schedule_steps() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("spec.schedule_steps must be >= 0, got ", s.schedule_steps()));
  }
  StartFlowArgs a;
  a.session_id = request.session_id();
  a.target_id = request.target_id();
  a.particle_count = s.particle_count();
  a.init_mean.assign(s.init_mean().begin(), s.init_mean().end());
  if (s.has_init_std()) a.init_std = s.init_std();
  a.init_target_id = s.init_target_id();
  FlowConfig& c = a.spec.config;
  c.method = s.method();
  c.schedule_steps = s.schedule_steps();
  if (s.has_step_size()) c.step_size = s.step_size();
  if (s.has_optimizer()) c.optimizer = s.optimizer();
  if (s.has_noise()) c.noise = s.noise();
  if (s.has_bandwidth()) c.bandwidth = s.bandwidth();
  if (s.has_batch_size()) c.batch_size = s.batch_size();
  if (s.dtype() != v1::DTYPE_UNSPECIFIED) c.dtype = FromProto(s.dtype());
  if (s.has_median_pairs()) c.median_pairs = s.median_pairs();
  c.seed = s.seed();
  c.options = {s.options().begin(), s.options().end()};
  a.spec.steps = s.steps();
  a.spec.eval_every = s.eval_every();
  a.spec.eval_metrics.assign(s.eval_metrics().begin(), s.eval_metrics().end());
  return a;
}

absl::StatusOr<EvaluateArgs> FromProto(const v1::EvaluateHeader& header) {
  EvaluateArgs a;
  a.session_id = header.session_id();
  a.target_id = header.target_id();
  a.metrics.assign(header.metrics().begin(), header.metrics().end());
  a.options.seed = header.seed();
  if (header.has_bandwidth()) {
    if (!(header.bandwidth() > 0 && std::isfinite(header.bandwidth()))) {
      return absl::InvalidArgumentError(absl::StrCat("bandwidth must be a finite number > 0, got ", header.bandwidth()));
    }
    a.options.bandwidth = header.bandwidth();
  }
  if (header.reference_size() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("reference_size must be >= 0, got ", header.reference_size()));
  }
  a.options.reference_size = header.reference_size();
  a.samples_target_id = header.samples_target_id();
  a.job_id = header.job_id();
  a.sampler_id = header.sampler_id();
  if (header.sampler_draws() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("sampler_draws must be >= 0, got ", header.sampler_draws()));
  }
  a.sampler_draws = header.sampler_draws();
  a.best_checkpoint = header.best_checkpoint();
  return a;
}

void ToProto(const SessionView& s, v1::Session* out) {
  out->set_id(s.info.id);
  out->set_name(s.info.name);
  ToProto(s.info.create_time, out->mutable_create_time());
  out->set_target_count(static_cast<int32_t>(s.info.target_count));
  out->set_job_count(static_cast<int32_t>(s.job_count));
  out->set_bytes_held(s.bytes_held);
}

void ToProto(const TargetEntry& t, v1::Target* out, bool full_params) {
  out->set_id(t.id);
  out->set_session_id(t.session_id);
  out->set_name(t.name);
  const Points* samples = t.target->samples();
  out->set_kind(samples != nullptr ? v1::TARGET_KIND_SAMPLES : v1::TARGET_KIND_DENSITY);
  out->set_dim(static_cast<int32_t>(t.target->dim()));
  out->set_point_count(samples != nullptr ? samples->rows() : 0);
  out->set_family(t.target->family());
  for (const auto& [name, values] : t.target->params()) {
    if (!full_params && static_cast<int64_t>(values.size()) > kMaxParamValuesInMessage) {
      out->add_omitted_params(name);
      continue;
    }
    (*out->mutable_params())[name].mutable_values()->Assign(values.begin(), values.end());
  }
  out->set_can_sample(t.target->can_sample());
  out->set_bytes(t.target->bytes());
  ToProto(t.create_time, out->mutable_create_time());
  out->set_data_target_id(t.data_target_id);
}

v1::JobState ToProto(JobState s) {
  switch (s) {
    case JobState::kQueued: return v1::JOB_STATE_QUEUED;
    case JobState::kRunning: return v1::JOB_STATE_RUNNING;
    case JobState::kSucceeded: return v1::JOB_STATE_SUCCEEDED;
    case JobState::kFailed: return v1::JOB_STATE_FAILED;
    case JobState::kCancelled: return v1::JOB_STATE_CANCELLED;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}

void ToProto(const StepStats& s, double seconds, v1::StepStats* out) {
  out->set_step(s.step);
  out->set_mean_displacement(s.mean_displacement);
  out->set_max_displacement(s.max_displacement);
  if (!std::isnan(s.bandwidth)) out->set_bandwidth(s.bandwidth);
  if (!std::isnan(s.noise)) out->set_noise(s.noise);
  if (!std::isnan(s.acceptance_rate)) out->set_acceptance_rate(s.acceptance_rate);
  if (!std::isnan(s.step_size)) out->set_step_size(s.step_size);
  out->set_seconds(seconds);
}

void ToProto(const JobSnapshot& j, v1::Job* out) {
  out->set_id(j.id);
  out->set_session_id(j.session_id);
  out->set_kind(j.kind);
  out->set_state(ToProto(j.state));
  out->set_step(j.step);
  out->set_total_steps(j.total_steps);
  out->set_steps_per_second(j.steps_per_second);
  out->set_eta_seconds(j.eta_seconds);
  if (j.last_stats.has_value()) ToProto(*j.last_stats, j.last_step_seconds, out->mutable_last_stats());
  if (j.last_training.has_value()) {
    v1::TrainingProgress* t = out->mutable_training();
    t->set_step(j.last_training->step);
    t->set_score_loss(j.last_training->score_loss);
    t->set_sampler_loss(j.last_training->sampler_loss);
    t->set_sampler_grad_norm(j.last_training->sampler_grad_norm);
    t->set_seconds(j.last_step_seconds);
  }
  out->set_sampler_id(j.sampler_id);
  for (const auto& [name, value] : j.metrics) (*out->mutable_metrics())[name] = value;
  out->set_metrics_step(j.metrics_step);
  out->set_metrics_error(j.metrics_error);
  if (j.state == JobState::kFailed || j.state == JobState::kCancelled) {
    out->mutable_error()->set_code(static_cast<int32_t>(j.error.code()));
    out->mutable_error()->set_code_name(GrpcCodeName(static_cast<grpc::StatusCode>(j.error.code())));
    out->mutable_error()->set_message(std::string(j.error.message()));
  }
  // Unset times stay absent (calling mutable_* would create them).
  if (j.create_time != absl::InfinitePast()) ToProto(j.create_time, out->mutable_create_time());
  if (j.start_time != absl::InfinitePast()) ToProto(j.start_time, out->mutable_start_time());
  if (j.end_time != absl::InfinitePast()) ToProto(j.end_time, out->mutable_end_time());
  out->set_target_id(j.target_id);
  out->set_method(j.method);
  out->set_particle_count(j.particle_count);
  out->set_dim(static_cast<int32_t>(j.dim));
}

void ToProto(const TargetFamily& f, v1::Family* out) {
  out->set_name(f.name);
  out->set_summary(f.summary);
  out->set_default_dim(static_cast<int32_t>(f.default_dim));
  out->set_needs_data(f.needs_data());
  out->set_uploaded(f.uploaded);
  for (const ParamDoc& p : f.params) {
    v1::ParameterDoc* d = out->add_params();
    d->set_name(p.key);
    d->set_doc(p.doc);
  }
}

void ToProto(const FlowMethod& m, v1::Method* out) {
  out->set_name(m.name);
  out->set_summary(m.summary);
  out->set_needs_samples(m.needs_samples);
  out->set_needs_density(m.needs_density);
  for (FlowField f : m.fields) {
    out->add_fields(FlowFieldName(f));
    v1::ParameterDoc* d = out->add_field_docs();
    d->set_name(FlowFieldName(f));
    d->set_doc(FlowFieldDoc(f));
  }
  for (const OptionDoc& o : m.options) {
    v1::ParameterDoc* d = out->add_options();
    d->set_name(o.name);
    d->set_doc(o.doc);
  }
}

void ToProto(const Metric& m, v1::MetricInfo* out) {
  out->set_name(m.name());
  out->set_description(m.description());
}

absl::StatusOr<StartTrainingArgs> FromProto(const v1::StartTrainingRequest& request) {
  StartTrainingArgs a;
  a.session_id = request.session_id();
  a.target_id = request.target_id();
  const v1::TrainSpec& s = request.spec();
  if (s.method().empty()) return absl::InvalidArgumentError("spec.method is required (kl, fisher or sd-generator)");
  training::TrainConfig& c = a.config;
  c.method = s.method();
  if (s.has_latent()) c.latent = s.latent();
  if (s.hidden_size() > 0) c.hidden = std::vector<int64_t>(s.hidden().begin(), s.hidden().end());
  if (s.has_activation()) c.activation = s.activation();
  if (s.score_hidden_size() > 0) c.score_hidden = std::vector<int64_t>(s.score_hidden().begin(), s.score_hidden().end());
  if (s.has_score_activation()) c.score_activation = s.score_activation();
  if (s.has_score_steps()) c.score_steps = s.score_steps();
  if (s.has_score_loss()) c.score_loss = s.score_loss();
  if (s.has_dsm_sigma()) c.dsm_sigma = s.dsm_sigma();
  if (s.has_batch()) c.batch = s.batch();
  if (s.has_lr()) c.lr = s.lr();
  if (s.has_score_lr()) c.score_lr = s.score_lr();
  if (s.has_generator()) c.generator = s.generator();
  if (s.has_eta()) c.eta = s.eta();
  if (s.has_noise()) c.noise = s.noise();
  if (s.has_bandwidth()) c.bandwidth = s.bandwidth();
  if (s.has_optimizer()) c.optimizer = s.optimizer();
  if (s.has_steps_per_batch()) c.steps_per_batch = s.steps_per_batch();
  if (s.has_init_std()) c.init_std = s.init_std();
  if (s.has_gmm_components()) c.gmm_components = s.gmm_components();
  if (s.has_noise_steps()) c.noise_steps = s.noise_steps();
  if (s.has_times()) c.times = s.times();
  if (s.has_cv_every()) c.cv_every = s.cv_every();
  if (s.has_sample_steps()) c.sample_steps = s.sample_steps();
  if (s.has_gmm_covariance()) c.gmm_covariance = s.gmm_covariance();
  if (s.has_score_form()) c.score_form = s.score_form();
  if (s.has_dt()) c.dt = s.dt();
  if (s.has_dt_last()) c.dt_last = s.dt_last();
  if (s.has_cv_eps()) c.cv_eps = s.cv_eps();
  if (s.has_stats()) c.stats = s.stats();
  if (s.has_basis()) c.basis = s.basis();
  if (s.has_pairs()) c.pairs = s.pairs();
  if (s.has_feature_bandwidth()) c.feature_bandwidth = s.feature_bandwidth();
  if (s.has_epsilon()) c.epsilon = s.epsilon();
  if (s.has_inner_steps()) c.inner_steps = s.inner_steps();
  if (s.has_ridge()) c.ridge = s.ridge();
  c.seed = s.seed();
  a.steps = s.steps();
  a.eval_every = s.eval_every();
  a.eval_draws = s.eval_draws();
  a.from_sampler_id = s.from_sampler_id();
  return a;
}

void ToProto(const SamplerEntry& e, v1::Sampler* out) {
  out->set_id(e.id);
  out->set_session_id(e.session_id);
  out->set_method(e.method);
  out->set_target_id(e.target_id);
  out->set_job_id(e.job_id);
  out->set_dim(static_cast<int32_t>(e.model->shape.out));
  out->set_latent(static_cast<int32_t>(e.model->shape.in));
  for (int64_t h : e.model->shape.hidden) out->add_hidden(h);
  out->set_activation(training::ActivationName(e.model->shape.activation));
  out->set_steps(e.steps);
  for (const auto& [k, v] : e.final_metrics) (*out->mutable_final_metrics())[k] = v;
  for (const auto& [k, v] : e.best_metrics) (*out->mutable_best_metrics())[k] = v;
  out->set_best_step(e.model->best_params.empty() ? -1 : e.best_step);
  out->set_last_finite(e.model->last_finite);
  out->set_provenance_json(e.model->provenance_json);
  out->set_bytes(e.model->bytes());
  if (const auto& m = e.model->score_model) {
    out->set_kind("score-model");
    out->set_dynamics(training::NoisingDynamicsName(m->dynamics));
    out->set_default_steps(m->default_steps);
  } else if (const auto& c = e.model->drift) {
    out->set_kind("drift-chain");
    out->set_default_steps(training::DriftSteps(e.model->shape, e.model->final_params));
    out->set_epsilon(c->epsilon);
  } else {
    out->set_kind("generator");
  }
}

void ToProto(const training::TrainMethod& m, v1::TrainMethod* out) {
  out->set_name(m.name);
  out->set_summary(m.summary);
  for (const auto& [name, doc] : training::TrainFieldDocs(m)) {
    v1::ParameterDoc* d = out->add_parameters();
    d->set_name(name);
    d->set_doc(doc);
  }
}

void ToProto(const HistoryRow& r, v1::HistoryRow* out) {
  out->set_step(r.step);
  out->set_score_loss(r.score_loss);
  out->set_sampler_loss(r.sampler_loss);
  out->set_sampler_grad_norm(r.sampler_grad_norm);
  out->set_seconds(r.seconds);
  for (const auto& [k, v] : r.metrics) (*out->mutable_metrics())[k] = v;
}

}  // namespace sampled::server
