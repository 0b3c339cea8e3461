// A blocking C++ client for sampled: one method per RPC, arrays as core Points, streams handled inside
// (uploads chunked under the 4 MiB message limit, particles reassembled, progress delivered to a
// callback). Used by samplectl and by the integration tests.
//
// Thread-safe (gRPC stubs are); a per-call timeout applies to unary calls and uploads, not to WatchJob.
#ifndef SAMPLED_CLIENT_CPP_SAMPLED_CLIENT_H_
#define SAMPLED_CLIENT_CPP_SAMPLED_CLIENT_H_

#include <cstdint>
#include <optional>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/common/param_map.h"
#include "core/common/points.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "sampled/v1/evaluation.grpc.pb.h"
#include "sampled/v1/flows.grpc.pb.h"
#include "sampled/v1/jobs.grpc.pb.h"
#include "sampled/v1/sessions.grpc.pb.h"
#include "sampled/v1/targets.grpc.pb.h"
#include "sampled/v1/training.grpc.pb.h"

namespace sampled::client {

namespace v1 = ::sampled::v1;

// A grpc::Status as an absl::Status (same codes and message).
absl::Status FromGrpcStatus(const grpc::Status& status);

// Where Evaluate takes its samples from: exactly one of the four.
struct SampleSource {
  const Points* samples = nullptr;  // sent inline as chunks
  std::string samples_target_id;
  std::string job_id;
  std::string sampler_id;      // draws of a sampler: sampler_draws of them (0: 500), seeded by the call's seed
  int64_t sampler_draws = 0;
  bool best_checkpoint = false;  // the sampler's best checkpoint instead of its final weights
};

class SampledClient {
 public:
  explicit SampledClient(std::shared_ptr<grpc::Channel> channel);
  // An insecure channel to `address` ("host:port").
  static std::unique_ptr<SampledClient> Connect(const std::string& address);

  // Deadline of each call (zero: none).
  void set_timeout(absl::Duration timeout) { timeout_ = timeout; }
  // Create calls (sessions, targets, flows, training, imports) carry a request id and are retried this many
  // times on UNAVAILABLE or ABORTED, 0.1 s apart and doubling to 2 s; the server makes the object once.
  void set_retries(int retries) { retries_ = retries; }

  absl::StatusOr<v1::Session> CreateSession(const std::string& name);
  absl::StatusOr<v1::Session> GetSession(const std::string& session_id);
  // Every session, following page tokens.
  absl::StatusOr<std::vector<v1::Session>> ListSessions();
  absl::StatusOr<v1::DeleteSessionResponse> DeleteSession(const std::string& session_id);

  // Streams a TorchScript archive (torch.jit.save) in chunks of `chunk_bytes`: a model target of dimension
  // `dim` whose forward returns log q (or an energy when `energy`).
  absl::StatusOr<v1::Target> UploadModel(const std::string& session_id, const std::string& name,
                                         const std::string& archive, int64_t dim, bool energy = false,
                                         int64_t chunk_bytes = 1 << 20);
  // Streams `points` in chunks of about `chunk_bytes` (default 1 MiB), as `dtype`.
  absl::StatusOr<v1::Target> UploadTarget(const std::string& session_id, const std::string& name,
                                          const Points& points, DType dtype = DType::kFloat64,
                                          int64_t chunk_bytes = 1 << 20);
  // sample_count > 0 stores that many exact draws (seeded) as a sample target.
  absl::StatusOr<v1::Target> DefineTarget(const std::string& session_id, const std::string& name,
                                          const std::string& family, int64_t dim, const ParamMap& params,
                                          int64_t sample_count = 0, uint64_t seed = 0,
                                          const std::string& data_target_id = "");
  // full_params: parameters past 4096 values too (Target.omitted_params otherwise names them).
  absl::StatusOr<v1::Target> GetTarget(const std::string& session_id, const std::string& target_id,
                                       bool full_params = false);
  absl::StatusOr<std::vector<v1::Target>> ListTargets(const std::string& session_id);
  absl::Status DeleteTarget(const std::string& session_id, const std::string& target_id);
  absl::StatusOr<std::vector<v1::Family>> ListFamilies();

  absl::StatusOr<v1::Job> StartFlow(const std::string& session_id, const std::string& target_id,
                                    const v1::FlowSpec& spec);
  absl::StatusOr<v1::StepFlowResponse> StepFlow(const std::string& job_id, int64_t steps);
  // The particles and the step they are at.
  absl::StatusOr<Points> GetParticles(const std::string& job_id, int64_t* step = nullptr,
                                      DType dtype = DType::kFloat64);
  absl::StatusOr<std::vector<v1::Method>> ListMethods();

  absl::StatusOr<v1::Job> GetJob(const std::string& job_id);
  absl::StatusOr<std::vector<v1::Job>> ListJobs(const std::string& session_id);
  absl::StatusOr<v1::Job> CancelJob(const std::string& job_id);
  absl::Status DeleteJob(const std::string& job_id);
  // Calls on_event for every progress event until the job ends; returns the final job.
  absl::StatusOr<v1::Job> WatchJob(const std::string& job_id, const std::function<void(const v1::Job&)>& on_event);

  absl::StatusOr<v1::EvaluateResponse> Evaluate(const std::string& session_id, const std::string& target_id,
                                                const SampleSource& source, const std::vector<std::string>& metrics,
                                                uint64_t seed = 0);
  absl::StatusOr<std::vector<v1::MetricInfo>> ListMetrics();

  absl::StatusOr<v1::Job> StartTraining(const std::string& session_id, const std::string& target_id,
                                        const v1::TrainSpec& spec);
  absl::StatusOr<std::vector<v1::TrainMethod>> ListTrainMethods();
  absl::StatusOr<v1::JobHistory> GetJobHistory(const std::string& job_id);
  absl::StatusOr<std::vector<v1::Sampler>> ListSamplers(const std::string& session_id);
  absl::StatusOr<v1::Sampler> GetSampler(const std::string& sampler_id);
  absl::Status DeleteSampler(const std::string& sampler_id);
  // The sampler's file bytes, and a file's bytes into a session.
  absl::StatusOr<std::string> ExportSampler(const std::string& sampler_id);
  absl::StatusOr<v1::Sampler> ImportSampler(const std::string& session_id, const std::string& bytes);
  // n draws (reassembled from the stream's chunks, checked to arrive in order), as float64 values.
  absl::StatusOr<Points> Sample(const std::string& sampler_id, int64_t n, uint64_t seed, DType dtype = DType::kFloat64,
                                bool best = false, int64_t chunk_rows = 0, std::optional<int64_t> steps = std::nullopt,
                                bool ode = false);

  // grpc.health.v1 Check of `service` ("" for the server).
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> Health(const std::string& service = "");

 private:
  void Prepare(grpc::ClientContext* ctx) const;
  template <typename Stub, typename Request, typename Response>
  absl::StatusOr<Response> Unary(Stub* stub,
                                 grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                                 const Request& request) const;
  // Runs attempt(request_id) with one fresh request id until it does not end UNAVAILABLE or ABORTED, at
  // most 1 + retries_ times.
  template <typename Attempt>
  auto Create(Attempt attempt) const -> decltype(attempt(std::string()));
  absl::StatusOr<v1::Target> UploadTargetOnce(const std::string& session_id, const std::string& name,
                                              const Points& points, DType dtype, int64_t chunk_bytes,
                                              const std::string& request_id) const;

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::SessionService::Stub> sessions_;
  std::unique_ptr<v1::TargetService::Stub> targets_;
  std::unique_ptr<v1::FlowService::Stub> flows_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::EvaluationService::Stub> evaluation_;
  std::unique_ptr<v1::TrainingService::Stub> training_;
  std::unique_ptr<v1::SamplerService::Stub> samplers_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  absl::Duration timeout_ = absl::ZeroDuration();
  int retries_ = 6;
};

}  // namespace sampled::client

#endif  // SAMPLED_CLIENT_CPP_SAMPLED_CLIENT_H_
