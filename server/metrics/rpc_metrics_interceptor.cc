#include "server/metrics/rpc_metrics_interceptor.h"

#include <string>

#include <google/protobuf/descriptor.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "server/convert/status.h"

namespace sampled::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(ServerMetrics* metrics, std::string method)
      : metrics_(metrics), method_(std::move(method)), start_(absl::Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      metrics_->RecordRpc(method_, GrpcCodeName(status.error_code()),
                          absl::ToDoubleSeconds(absl::Now() - start_));
    }
    methods->Proceed();
  }

 private:
  ServerMetrics* metrics_;
  std::string method_;
  absl::Time start_;
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(ServerMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    // gRPC takes ownership of the interceptor.
    return new RpcMetricsInterceptor(metrics_, RpcMethodLabel(info->method()));
  }

 private:
  ServerMetrics* metrics_;
};

}  // namespace

std::string RpcMethodLabel(const char* full_method) {
  if (full_method == nullptr) return "other";
  absl::string_view m = full_method;
  if (!absl::ConsumePrefix(&m, "/")) return "other";
  const size_t slash = m.find('/');
  if (slash == absl::string_view::npos) return "other";
  // The standard services gRPC implements itself (their descriptors may not be linked in).
  static const char* const kStandard[] = {"grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch",
                                          "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"};
  for (const char* known : kStandard) {
    if (m == known) return std::string(m.substr(m.rfind('.', m.find('/')) + 1));
  }
  // Only methods of a service compiled into this binary: a label never carries arbitrary client text.
  const std::string dotted = absl::StrCat(m.substr(0, slash), ".", m.substr(slash + 1));
  if (google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(dotted) == nullptr) return "other";
  const absl::string_view service = m.substr(0, slash);
  const size_t dot = service.rfind('.');
  return absl::StrCat(service.substr(dot == absl::string_view::npos ? 0 : dot + 1), m.substr(slash));
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcMetricsInterceptorFactory(
    ServerMetrics* metrics) {
  return std::make_unique<Factory>(metrics);
}

}  // namespace sampled::server
