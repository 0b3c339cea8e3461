#include "server/sampled_server.h"

#include <thread>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "core/common/torch_runtime.h"
#include "server/metrics/rpc_metrics_interceptor.h"
#include "server/service/services.h"

namespace sampled::server {
namespace {

constexpr absl::Duration kRpcDrain = absl::Seconds(5);

const char* const kServiceNames[] = {"sampled.v1.SessionService", "sampled.v1.TargetService",
                                     "sampled.v1.FlowService", "sampled.v1.JobService",
                                     "sampled.v1.EvaluationService", "sampled.v1.TrainingService",
                                     "sampled.v1.SamplerService"};

}  // namespace

absl::StatusOr<std::unique_ptr<SampledServer>> SampledServer::Start(const ServerOptions& options) {
  if (options.workers < 1) return absl::InvalidArgumentError(absl::StrCat("workers must be >= 1, got ", options.workers));
  if (options.torch_threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("torch threads must be >= 0, got ", options.torch_threads));
  }
  std::unique_ptr<SampledServer> s(new SampledServer());
  s->options_ = options;
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  // Every job gets every core unless told otherwise: one job alone (the usual case, and the only one with
  // --workers 1) then uses the whole machine; jobs that run at once share the cores (their OpenMP teams
  // take blocks of work dynamically, and the bounded spin of main.cc keeps waiting threads off the cores).
  s->compute_threads_ = options.torch_threads > 0 ? options.torch_threads : cores;
  ConfigureComputeThreads(s->compute_threads_);

  s->backend_ = std::make_unique<Backend>(options);
  // The state directory is read back before the server listens: a client never sees a half-restored one.
  if (absl::Status st = s->backend_->OpenState(); !st.ok()) return st;
  s->services_.push_back(std::make_unique<SessionServiceImpl>(s->backend_.get()));
  s->services_.push_back(std::make_unique<TargetServiceImpl>(s->backend_.get()));
  s->services_.push_back(std::make_unique<FlowServiceImpl>(s->backend_.get()));
  s->services_.push_back(std::make_unique<JobServiceImpl>(s->backend_.get()));
  s->services_.push_back(std::make_unique<EvaluationServiceImpl>(s->backend_.get()));
  s->services_.push_back(std::make_unique<TrainingServiceImpl>(s->backend_.get()));
  s->services_.push_back(std::make_unique<SamplerServiceImpl>(s->backend_.get()));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &s->port_);
  for (auto& service : s->services_) builder.RegisterService(service.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(MakeRpcMetricsInterceptorFactory(&s->backend_->metrics()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on '", options.listen, "' (in use, or not host:port?)"));
  }
  grpc::HealthCheckServiceInterface* health = s->server_->GetHealthCheckService();
  health->SetServingStatus(true);
  for (const char* name : kServiceNames) health->SetServingStatus(name, true);

  if (!options.metrics_listen.empty()) {
    Backend* backend = s->backend_.get();
    absl::StatusOr<std::unique_ptr<HttpExposer>> exposer =
        HttpExposer::Start(options.metrics_listen, [backend] { return backend->metrics().Serialize(); });
    if (!exposer.ok()) {
      s->server_->Shutdown();
      return exposer.status();
    }
    s->exposer_ = *std::move(exposer);
  }
  return s;
}

SampledServer::~SampledServer() { Shutdown(); }

void SampledServer::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_started_) {
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shutdown_done_; };
      mu_.Await(absl::Condition(&done));
      return;
    }
    shutdown_started_ = true;
  }
  if (server_ != nullptr) {
    server_->GetHealthCheckService()->Shutdown();  // NOT_SERVING from now on
    backend_->Shutdown();                          // refuse work, cancel jobs, wait for workers
    server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoSeconds(kRpcDrain));
  }
  if (exposer_ != nullptr) exposer_->Stop();
  absl::MutexLock lock(&mu_);
  shutdown_done_ = true;
}

void SampledServer::Wait() {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shutdown_done_; };
  mu_.Await(absl::Condition(&done));
}

}  // namespace sampled::server
