// A gRPC server interceptor that records every RPC's method, status code and latency in ServerMetrics.
#ifndef SAMPLED_SERVER_METRICS_RPC_METRICS_INTERCEPTOR_H_
#define SAMPLED_SERVER_METRICS_RPC_METRICS_INTERCEPTOR_H_

#include <memory>

#include <grpcpp/support/server_interceptor.h>

#include "server/metrics/server_metrics.h"

namespace sampled::server {

// Thread-safe; `metrics` must outlive the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcMetricsInterceptorFactory(
    ServerMetrics* metrics);

// "/pkg.Service/Method" -> "Service/Method" for our and the standard services; "other" for anything else
// (labels must come from a bounded set).
std::string RpcMethodLabel(const char* full_method);

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_METRICS_RPC_METRICS_INTERCEPTOR_H_
