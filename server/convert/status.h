// The one place an absl::Status becomes a grpc::Status.
#ifndef SAMPLED_SERVER_CONVERT_STATUS_H_
#define SAMPLED_SERVER_CONVERT_STATUS_H_

#include <string>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace sampled::server {

grpc::Status ToGrpcStatus(const absl::Status& status);
// "INVALID_ARGUMENT", "OK", ...
std::string GrpcCodeName(grpc::StatusCode code);

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_CONVERT_STATUS_H_
