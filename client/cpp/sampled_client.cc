#include "client/cpp/sampled_client.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/io/array_codec.h"

namespace sampled::client {
namespace {

v1::DType ToProto(DType t) { return t == DType::kFloat32 ? v1::DTYPE_FLOAT32 : v1::DTYPE_FLOAT64; }

std::string NewRequestId() {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  return absl::StrCat(absl::Hex(random(), absl::kZeroPad16), absl::Hex(random(), absl::kZeroPad16));
}

}  // namespace

template <typename Attempt>
auto SampledClient::Create(Attempt attempt) const -> decltype(attempt(std::string())) {
  // One request id for every attempt: the server makes the object once (docs/api.md, "Idempotent calls").
  const std::string request_id = NewRequestId();
  absl::Duration delay = absl::Milliseconds(100);
  for (int tries = 0;; ++tries) {
    auto result = attempt(request_id);
    const absl::StatusCode code = result.status().code();
    if ((code != absl::StatusCode::kUnavailable && code != absl::StatusCode::kAborted) || tries >= retries_) {
      return result;
    }
    absl::SleepFor(delay);
    delay = std::min(2 * delay, absl::Seconds(2));
  }
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

SampledClient::SampledClient(std::shared_ptr<grpc::Channel> channel)
    : channel_(std::move(channel)),
      sessions_(v1::SessionService::NewStub(channel_)),
      targets_(v1::TargetService::NewStub(channel_)),
      flows_(v1::FlowService::NewStub(channel_)),
      jobs_(v1::JobService::NewStub(channel_)),
      evaluation_(v1::EvaluationService::NewStub(channel_)),
      training_(v1::TrainingService::NewStub(channel_)),
      samplers_(v1::SamplerService::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

std::unique_ptr<SampledClient> SampledClient::Connect(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // particle chunks are ~1 MiB; allow larger ones from other servers
  // Reconnect within 0.1-2 s (gRPC's default backoff grows to 120 s): a retried create call finds a
  // restarted server soon after it listens.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return std::make_unique<SampledClient>(grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
}

void SampledClient::Prepare(grpc::ClientContext* ctx) const {
  if (timeout_ > absl::ZeroDuration()) ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
}

template <typename Stub, typename Request, typename Response>
absl::StatusOr<Response> SampledClient::Unary(Stub* stub,
                                              grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                                           Response*),
                                              const Request& request) const {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  Response response;
  grpc::Status status = (stub->*method)(&ctx, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::Session> SampledClient::CreateSession(const std::string& name) {
  return Create([&](const std::string& request_id) {
    v1::CreateSessionRequest r;
    r.set_name(name);
    r.set_request_id(request_id);
    return Unary(sessions_.get(), &v1::SessionService::Stub::CreateSession, r);
  });
}

absl::StatusOr<v1::Session> SampledClient::GetSession(const std::string& session_id) {
  v1::GetSessionRequest r;
  r.set_session_id(session_id);
  return Unary(sessions_.get(), &v1::SessionService::Stub::GetSession, r);
}

absl::StatusOr<std::vector<v1::Session>> SampledClient::ListSessions() {
  std::vector<v1::Session> all;
  v1::ListSessionsRequest r;
  do {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::ListSessionsResponse page;
    grpc::Status s = sessions_->ListSessions(&ctx, r, &page);
    if (!s.ok()) return FromGrpcStatus(s);
    all.insert(all.end(), page.sessions().begin(), page.sessions().end());
    r.set_page_token(page.next_page_token());
  } while (!r.page_token().empty());
  return all;
}

absl::StatusOr<v1::DeleteSessionResponse> SampledClient::DeleteSession(const std::string& session_id) {
  v1::DeleteSessionRequest r;
  r.set_session_id(session_id);
  return Unary(sessions_.get(), &v1::SessionService::Stub::DeleteSession, r);
}

absl::StatusOr<v1::Target> SampledClient::UploadTarget(const std::string& session_id, const std::string& name,
                                                       const Points& points, DType dtype, int64_t chunk_bytes) {
  return Create([&](const std::string& request_id) {
    return UploadTargetOnce(session_id, name, points, dtype, chunk_bytes, request_id);
  });
}

absl::StatusOr<v1::Target> SampledClient::UploadTargetOnce(const std::string& session_id, const std::string& name,
                                                           const Points& points, DType dtype, int64_t chunk_bytes,
                                                           const std::string& request_id) const {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::Target target;
  std::unique_ptr<grpc::ClientWriter<v1::UploadTargetRequest>> writer = targets_->UploadTarget(&ctx, &target);
  v1::UploadTargetRequest header;
  v1::UploadTargetHeader* h = header.mutable_header();
  h->set_session_id(session_id);
  h->set_name(name);
  h->set_dtype(ToProto(dtype));
  h->set_dim(static_cast<int32_t>(points.cols()));
  h->set_expected_rows(points.rows());
  h->set_request_id(request_id);
  bool ok = writer->Write(header);
  const int64_t row_bytes = std::max<int64_t>(1, points.cols() * DTypeSize(dtype));
  const int64_t rows_per_chunk = std::max<int64_t>(1, chunk_bytes / row_bytes);
  for (int64_t row = 0; ok && row < points.rows(); row += rows_per_chunk) {
    v1::UploadTargetRequest chunk;
    chunk.set_chunk(EncodeRows(points, row, std::min(rows_per_chunk, points.rows() - row), dtype));
    ok = writer->Write(chunk);  // false: the server already finished the call (an error follows)
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return FromGrpcStatus(s);
  return target;
}

absl::StatusOr<v1::Target> SampledClient::UploadModel(const std::string& session_id, const std::string& name,
                                                      const std::string& archive, int64_t dim, bool energy,
                                                      int64_t chunk_bytes) {
  return Create([&](const std::string& request_id) -> absl::StatusOr<v1::Target> {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::Target target;
    std::unique_ptr<grpc::ClientWriter<v1::UploadModelRequest>> writer = targets_->UploadModel(&ctx, &target);
    v1::UploadModelRequest header;
    v1::UploadModelHeader* h = header.mutable_header();
    h->set_session_id(session_id);
    h->set_name(name);
    h->set_dim(static_cast<int32_t>(dim));
    h->set_energy(energy);
    h->set_expected_bytes(static_cast<int64_t>(archive.size()));
    h->set_request_id(request_id);
    bool ok = writer->Write(header);
    const size_t step = static_cast<size_t>(std::max<int64_t>(1, chunk_bytes));
    for (size_t at = 0; ok && at < archive.size(); at += step) {
      v1::UploadModelRequest chunk;
      chunk.set_chunk(archive.substr(at, step));
      ok = writer->Write(chunk);  // false: the server already finished the call (an error follows)
    }
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    if (!s.ok()) return FromGrpcStatus(s);
    return target;
  });
}

absl::StatusOr<v1::Target> SampledClient::DefineTarget(const std::string& session_id, const std::string& name,
                                                       const std::string& family, int64_t dim, const ParamMap& params,
                                                       int64_t sample_count, uint64_t seed,
                                                       const std::string& data_target_id) {
  v1::DefineTargetRequest r;
  r.set_data_target_id(data_target_id);
  r.set_sample_count(sample_count);
  r.set_seed(seed);
  r.set_session_id(session_id);
  r.set_name(name);
  r.set_family(family);
  r.set_dim(static_cast<int32_t>(dim));
  for (const auto& [key, values] : params)
    (*r.mutable_params())[key].mutable_values()->Assign(values.begin(), values.end());
  return Create([&](const std::string& request_id) {
    r.set_request_id(request_id);
    return Unary(targets_.get(), &v1::TargetService::Stub::DefineTarget, r);
  });
}

absl::StatusOr<v1::Target> SampledClient::GetTarget(const std::string& session_id, const std::string& target_id,
                                                    bool full_params) {
  v1::GetTargetRequest r;
  r.set_full_params(full_params);
  r.set_session_id(session_id);
  r.set_target_id(target_id);
  return Unary(targets_.get(), &v1::TargetService::Stub::GetTarget, r);
}

absl::StatusOr<std::vector<v1::Target>> SampledClient::ListTargets(const std::string& session_id) {
  std::vector<v1::Target> all;
  v1::ListTargetsRequest r;
  r.set_session_id(session_id);
  do {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::ListTargetsResponse page;
    grpc::Status s = targets_->ListTargets(&ctx, r, &page);
    if (!s.ok()) return FromGrpcStatus(s);
    all.insert(all.end(), page.targets().begin(), page.targets().end());
    r.set_page_token(page.next_page_token());
  } while (!r.page_token().empty());
  return all;
}

absl::Status SampledClient::DeleteTarget(const std::string& session_id, const std::string& target_id) {
  v1::DeleteTargetRequest r;
  r.set_session_id(session_id);
  r.set_target_id(target_id);
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::DeleteTargetResponse response;
  return FromGrpcStatus(targets_->DeleteTarget(&ctx, r, &response));
}

absl::StatusOr<std::vector<v1::Family>> SampledClient::ListFamilies() {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::ListFamiliesResponse response;
  grpc::Status s = targets_->ListFamilies(&ctx, v1::ListFamiliesRequest(), &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return std::vector<v1::Family>(response.families().begin(), response.families().end());
}

absl::StatusOr<v1::Job> SampledClient::StartFlow(const std::string& session_id, const std::string& target_id,
                                                 const v1::FlowSpec& spec) {
  v1::StartFlowRequest r;
  r.set_session_id(session_id);
  r.set_target_id(target_id);
  *r.mutable_spec() = spec;
  return Create([&](const std::string& request_id) {
    r.set_request_id(request_id);
    return Unary(flows_.get(), &v1::FlowService::Stub::StartFlow, r);
  });
}

absl::StatusOr<v1::StepFlowResponse> SampledClient::StepFlow(const std::string& job_id, int64_t steps) {
  v1::StepFlowRequest r;
  r.set_job_id(job_id);
  r.set_steps(steps);
  return Unary(flows_.get(), &v1::FlowService::Stub::StepFlow, r);
}

absl::StatusOr<Points> SampledClient::GetParticles(const std::string& job_id, int64_t* step, DType dtype) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::GetParticlesRequest r;
  r.set_job_id(job_id);
  r.set_dtype(ToProto(dtype));
  std::unique_ptr<grpc::ClientReader<v1::ParticlesChunk>> reader = flows_->GetParticles(&ctx, r);
  v1::ParticlesChunk chunk;
  std::unique_ptr<ArrayAssembler> assembler;
  int64_t total = 0;
  absl::Status append_status;
  while (reader->Read(&chunk)) {
    if (assembler == nullptr) {
      total = chunk.total_rows();
      assembler = std::make_unique<ArrayAssembler>(dtype, std::max(1, chunk.dim()), total);
      if (step != nullptr) *step = chunk.step();
    }
    if (append_status.ok()) append_status = assembler->Append(chunk.data());
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpcStatus(s);
  if (!append_status.ok()) return append_status;
  if (assembler == nullptr) return absl::InternalError("the server sent no particles");
  return assembler->Finish(total);
}

absl::StatusOr<std::vector<v1::Method>> SampledClient::ListMethods() {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::ListMethodsResponse response;
  grpc::Status s = flows_->ListMethods(&ctx, v1::ListMethodsRequest(), &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return std::vector<v1::Method>(response.methods().begin(), response.methods().end());
}

absl::StatusOr<v1::Job> SampledClient::GetJob(const std::string& job_id) {
  v1::GetJobRequest r;
  r.set_job_id(job_id);
  return Unary(jobs_.get(), &v1::JobService::Stub::GetJob, r);
}

absl::StatusOr<std::vector<v1::Job>> SampledClient::ListJobs(const std::string& session_id) {
  std::vector<v1::Job> all;
  v1::ListJobsRequest r;
  r.set_session_id(session_id);
  do {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::ListJobsResponse page;
    grpc::Status s = jobs_->ListJobs(&ctx, r, &page);
    if (!s.ok()) return FromGrpcStatus(s);
    all.insert(all.end(), page.jobs().begin(), page.jobs().end());
    r.set_page_token(page.next_page_token());
  } while (!r.page_token().empty());
  return all;
}

absl::StatusOr<v1::Job> SampledClient::CancelJob(const std::string& job_id) {
  v1::CancelJobRequest r;
  r.set_job_id(job_id);
  return Unary(jobs_.get(), &v1::JobService::Stub::CancelJob, r);
}

absl::Status SampledClient::DeleteJob(const std::string& job_id) {
  v1::DeleteJobRequest r;
  r.set_job_id(job_id);
  return Unary(jobs_.get(), &v1::JobService::Stub::DeleteJob, r).status();
}

absl::StatusOr<v1::Job> SampledClient::WatchJob(const std::string& job_id,
                                                const std::function<void(const v1::Job&)>& on_event) {
  grpc::ClientContext ctx;  // no deadline: a watch lasts as long as the job
  v1::WatchJobRequest r;
  r.set_job_id(job_id);
  std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader = jobs_->WatchJob(&ctx, r);
  v1::JobEvent event;
  v1::Job last;
  bool any = false;
  while (reader->Read(&event)) {
    last = event.job();
    any = true;
    if (on_event) on_event(last);
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpcStatus(s);
  if (!any) return absl::InternalError("the watch ended without an event");
  return last;
}

absl::StatusOr<v1::EvaluateResponse> SampledClient::Evaluate(const std::string& session_id,
                                                             const std::string& target_id, const SampleSource& source,
                                                             const std::vector<std::string>& metrics, uint64_t seed) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::EvaluateResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::EvaluateRequest>> writer = evaluation_->Evaluate(&ctx, &response);
  v1::EvaluateRequest header;
  v1::EvaluateHeader* h = header.mutable_header();
  h->set_session_id(session_id);
  h->set_target_id(target_id);
  for (const std::string& m : metrics) h->add_metrics(m);
  h->set_seed(seed);
  if (!source.samples_target_id.empty()) h->set_samples_target_id(source.samples_target_id);
  if (!source.job_id.empty()) h->set_job_id(source.job_id);
  if (!source.sampler_id.empty()) {
    h->set_sampler_id(source.sampler_id);
    h->set_sampler_draws(source.sampler_draws);
    h->set_best_checkpoint(source.best_checkpoint);
  }
  if (source.samples != nullptr) {
    h->set_dtype(v1::DTYPE_FLOAT64);
    h->set_dim(static_cast<int32_t>(source.samples->cols()));
  }
  bool ok = writer->Write(header);
  if (source.samples != nullptr) {
    const Points& p = *source.samples;
    const int64_t rows_per_chunk = std::max<int64_t>(1, (1 << 20) / std::max<int64_t>(1, p.cols() * 8));
    for (int64_t row = 0; ok && row < p.rows(); row += rows_per_chunk) {
      v1::EvaluateRequest chunk;
      chunk.set_chunk(EncodeRows(p, row, std::min(rows_per_chunk, p.rows() - row), DType::kFloat64));
      ok = writer->Write(chunk);
    }
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return FromGrpcStatus(s);
  return response;
}

absl::StatusOr<std::vector<v1::MetricInfo>> SampledClient::ListMetrics() {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::ListMetricsResponse response;
  grpc::Status s = evaluation_->ListMetrics(&ctx, v1::ListMetricsRequest(), &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return std::vector<v1::MetricInfo>(response.metrics().begin(), response.metrics().end());
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> SampledClient::Health(const std::string& service) {
  grpc::health::v1::HealthCheckRequest r;
  r.set_service(service);
  grpc::ClientContext ctx;
  Prepare(&ctx);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status s = health_->Check(&ctx, r, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response.status();
}

absl::StatusOr<v1::Job> SampledClient::StartTraining(const std::string& session_id, const std::string& target_id,
                                                     const v1::TrainSpec& spec) {
  v1::StartTrainingRequest r;
  r.set_session_id(session_id);
  r.set_target_id(target_id);
  *r.mutable_spec() = spec;
  return Create([&](const std::string& request_id) {
    r.set_request_id(request_id);
    return Unary(training_.get(), &v1::TrainingService::Stub::StartTraining, r);
  });
}

absl::StatusOr<std::vector<v1::TrainMethod>> SampledClient::ListTrainMethods() {
  absl::StatusOr<v1::ListTrainMethodsResponse> r =
      Unary(training_.get(), &v1::TrainingService::Stub::ListTrainMethods, v1::ListTrainMethodsRequest());
  if (!r.ok()) return r.status();
  return std::vector<v1::TrainMethod>(r->methods().begin(), r->methods().end());
}

absl::StatusOr<v1::JobHistory> SampledClient::GetJobHistory(const std::string& job_id) {
  v1::GetJobHistoryRequest r;
  r.set_job_id(job_id);
  return Unary(jobs_.get(), &v1::JobService::Stub::GetJobHistory, r);
}

absl::StatusOr<std::vector<v1::Sampler>> SampledClient::ListSamplers(const std::string& session_id) {
  v1::ListSamplersRequest r;
  r.set_session_id(session_id);
  absl::StatusOr<v1::ListSamplersResponse> out = Unary(samplers_.get(), &v1::SamplerService::Stub::ListSamplers, r);
  if (!out.ok()) return out.status();
  return std::vector<v1::Sampler>(out->samplers().begin(), out->samplers().end());
}

absl::StatusOr<v1::Sampler> SampledClient::GetSampler(const std::string& sampler_id) {
  v1::GetSamplerRequest r;
  r.set_sampler_id(sampler_id);
  return Unary(samplers_.get(), &v1::SamplerService::Stub::GetSampler, r);
}

absl::Status SampledClient::DeleteSampler(const std::string& sampler_id) {
  v1::DeleteSamplerRequest r;
  r.set_sampler_id(sampler_id);
  return Unary(samplers_.get(), &v1::SamplerService::Stub::DeleteSampler, r).status();
}

absl::StatusOr<Points> SampledClient::Sample(const std::string& sampler_id, int64_t n, uint64_t seed, DType dtype,
                                             bool best, int64_t chunk_rows, std::optional<int64_t> steps,
                                             bool ode) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::SampleRequest r;
  r.set_sampler_id(sampler_id);
  r.set_n(n);
  r.set_seed(seed);
  r.set_dtype(ToProto(dtype));
  r.set_checkpoint(best ? v1::CHECKPOINT_BEST : v1::CHECKPOINT_FINAL);
  r.set_chunk_rows(chunk_rows);
  if (steps.has_value()) r.set_steps(*steps);
  r.set_ode(ode);
  std::unique_ptr<grpc::ClientReader<v1::SampleChunk>> reader = samplers_->Sample(&ctx, r);
  v1::SampleChunk chunk;
  std::unique_ptr<ArrayAssembler> assembler;
  absl::Status append_status;
  int64_t expected_row = 0;
  while (reader->Read(&chunk)) {
    if (assembler == nullptr) assembler = std::make_unique<ArrayAssembler>(dtype, std::max(1, chunk.dim()), n, n);
    if (append_status.ok() && chunk.first_row() != expected_row) {
      append_status =
          absl::InternalError(absl::StrCat("chunk out of order: row ", chunk.first_row(), ", expected ", expected_row));
    }
    expected_row += chunk.rows();
    if (append_status.ok()) append_status = assembler->Append(chunk.data());
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpcStatus(s);
  if (!append_status.ok()) return append_status;
  if (assembler == nullptr) return absl::InternalError("the server sent no draws");
  return assembler->Finish(n);
}

absl::StatusOr<std::string> SampledClient::ExportSampler(const std::string& sampler_id) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::ExportSamplerRequest r;
  r.set_sampler_id(sampler_id);
  auto reader = samplers_->ExportSampler(&ctx, r);
  v1::SamplerFileChunk chunk;
  std::string out;
  while (reader->Read(&chunk)) out += chunk.data();
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpcStatus(s);
  return out;
}

absl::StatusOr<v1::Sampler> SampledClient::ImportSampler(const std::string& session_id, const std::string& bytes) {
  return Create([&](const std::string& request_id) -> absl::StatusOr<v1::Sampler> {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::Sampler response;
    auto writer = samplers_->ImportSampler(&ctx, &response);
    v1::ImportSamplerRequest r;
    r.set_session_id(session_id);
    r.set_request_id(request_id);
    bool ok = writer->Write(r);
    r.clear_request_id();
    constexpr size_t kChunk = 1 << 20;
    for (size_t off = 0; ok && off < bytes.size(); off += kChunk) {
      r.set_chunk(bytes.substr(off, kChunk));
      ok = writer->Write(r);
    }
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    if (!s.ok()) return FromGrpcStatus(s);
    return response;
  });
}

}  // namespace sampled::client
