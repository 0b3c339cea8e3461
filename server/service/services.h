// The gRPC services: thin handlers on the callback API. Each RPC converts its request (convert.h), calls
// one Backend method and converts the result; nothing here computes or waits on compute.
#ifndef SAMPLED_SERVER_SERVICE_SERVICES_H_
#define SAMPLED_SERVER_SERVICE_SERVICES_H_

#include "sampled/v1/evaluation.grpc.pb.h"
#include "sampled/v1/flows.grpc.pb.h"
#include "sampled/v1/jobs.grpc.pb.h"
#include "sampled/v1/sessions.grpc.pb.h"
#include "sampled/v1/targets.grpc.pb.h"
#include "sampled/v1/training.grpc.pb.h"
#include "server/backend.h"

namespace sampled::server {

namespace v1 = ::sampled::v1;
using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;

class SessionServiceImpl final : public v1::SessionService::CallbackService {
 public:
  explicit SessionServiceImpl(Backend* backend) : backend_(backend) {}
  ServerUnaryReactor* CreateSession(CallbackServerContext* ctx, const v1::CreateSessionRequest* request,
                                    v1::Session* response) override;
  ServerUnaryReactor* GetSession(CallbackServerContext* ctx, const v1::GetSessionRequest* request,
                                 v1::Session* response) override;
  ServerUnaryReactor* ListSessions(CallbackServerContext* ctx, const v1::ListSessionsRequest* request,
                                   v1::ListSessionsResponse* response) override;
  ServerUnaryReactor* DeleteSession(CallbackServerContext* ctx, const v1::DeleteSessionRequest* request,
                                    v1::DeleteSessionResponse* response) override;

 private:
  Backend* backend_;
};

class TargetServiceImpl final : public v1::TargetService::CallbackService {
 public:
  explicit TargetServiceImpl(Backend* backend) : backend_(backend) {}
  grpc::ServerReadReactor<v1::UploadTargetRequest>* UploadTarget(CallbackServerContext* ctx,
                                                                 v1::Target* response) override;
  grpc::ServerReadReactor<v1::UploadModelRequest>* UploadModel(CallbackServerContext* ctx,
                                                               v1::Target* response) override;
  ServerUnaryReactor* DefineTarget(CallbackServerContext* ctx, const v1::DefineTargetRequest* request,
                                   v1::Target* response) override;
  ServerUnaryReactor* GetTarget(CallbackServerContext* ctx, const v1::GetTargetRequest* request,
                                v1::Target* response) override;
  ServerUnaryReactor* ListTargets(CallbackServerContext* ctx, const v1::ListTargetsRequest* request,
                                  v1::ListTargetsResponse* response) override;
  ServerUnaryReactor* DeleteTarget(CallbackServerContext* ctx, const v1::DeleteTargetRequest* request,
                                   v1::DeleteTargetResponse* response) override;
  ServerUnaryReactor* ListFamilies(CallbackServerContext* ctx, const v1::ListFamiliesRequest* request,
                                   v1::ListFamiliesResponse* response) override;

 private:
  Backend* backend_;
};

class FlowServiceImpl final : public v1::FlowService::CallbackService {
 public:
  explicit FlowServiceImpl(Backend* backend) : backend_(backend) {}
  ServerUnaryReactor* StartFlow(CallbackServerContext* ctx, const v1::StartFlowRequest* request,
                                v1::Job* response) override;
  ServerUnaryReactor* StepFlow(CallbackServerContext* ctx, const v1::StepFlowRequest* request,
                               v1::StepFlowResponse* response) override;
  grpc::ServerWriteReactor<v1::ParticlesChunk>* GetParticles(CallbackServerContext* ctx,
                                                              const v1::GetParticlesRequest* request) override;
  ServerUnaryReactor* ListMethods(CallbackServerContext* ctx, const v1::ListMethodsRequest* request,
                                  v1::ListMethodsResponse* response) override;

 private:
  Backend* backend_;
};

class JobServiceImpl final : public v1::JobService::CallbackService {
 public:
  explicit JobServiceImpl(Backend* backend) : backend_(backend) {}
  ServerUnaryReactor* GetJob(CallbackServerContext* ctx, const v1::GetJobRequest* request,
                             v1::Job* response) override;
  ServerUnaryReactor* ListJobs(CallbackServerContext* ctx, const v1::ListJobsRequest* request,
                               v1::ListJobsResponse* response) override;
  ServerUnaryReactor* CancelJob(CallbackServerContext* ctx, const v1::CancelJobRequest* request,
                                v1::Job* response) override;
  ServerUnaryReactor* DeleteJob(CallbackServerContext* ctx, const v1::DeleteJobRequest* request,
                                v1::DeleteJobResponse* response) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(CallbackServerContext* ctx,
                                                  const v1::WatchJobRequest* request) override;
  ServerUnaryReactor* GetJobHistory(CallbackServerContext* ctx, const v1::GetJobHistoryRequest* request,
                                    v1::JobHistory* response) override;

 private:
  Backend* backend_;
};

class EvaluationServiceImpl final : public v1::EvaluationService::CallbackService {
 public:
  explicit EvaluationServiceImpl(Backend* backend) : backend_(backend) {}
  grpc::ServerReadReactor<v1::EvaluateRequest>* Evaluate(CallbackServerContext* ctx,
                                                         v1::EvaluateResponse* response) override;
  ServerUnaryReactor* ListMetrics(CallbackServerContext* ctx, const v1::ListMetricsRequest* request,
                                  v1::ListMetricsResponse* response) override;

 private:
  Backend* backend_;
};

class TrainingServiceImpl final : public v1::TrainingService::CallbackService {
 public:
  explicit TrainingServiceImpl(Backend* backend) : backend_(backend) {}
  ServerUnaryReactor* StartTraining(CallbackServerContext* ctx, const v1::StartTrainingRequest* request,
                                    v1::Job* response) override;
  ServerUnaryReactor* ListTrainMethods(CallbackServerContext* ctx, const v1::ListTrainMethodsRequest* request,
                                       v1::ListTrainMethodsResponse* response) override;

 private:
  Backend* backend_;
};

class SamplerServiceImpl final : public v1::SamplerService::CallbackService {
 public:
  explicit SamplerServiceImpl(Backend* backend) : backend_(backend) {}
  ServerUnaryReactor* ListSamplers(CallbackServerContext* ctx, const v1::ListSamplersRequest* request,
                                   v1::ListSamplersResponse* response) override;
  ServerUnaryReactor* GetSampler(CallbackServerContext* ctx, const v1::GetSamplerRequest* request,
                                 v1::Sampler* response) override;
  ServerUnaryReactor* DeleteSampler(CallbackServerContext* ctx, const v1::DeleteSamplerRequest* request,
                                    v1::DeleteSamplerResponse* response) override;
  grpc::ServerWriteReactor<v1::SampleChunk>* Sample(CallbackServerContext* ctx,
                                                     const v1::SampleRequest* request) override;
  grpc::ServerWriteReactor<v1::SamplerFileChunk>* ExportSampler(CallbackServerContext* ctx,
                                                                const v1::ExportSamplerRequest* request) override;
  grpc::ServerReadReactor<v1::ImportSamplerRequest>* ImportSampler(CallbackServerContext* ctx,
                                                                   v1::Sampler* response) override;

 private:
  Backend* backend_;
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_SERVICE_SERVICES_H_
