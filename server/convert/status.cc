#include "server/convert/status.h"

#include "absl/strings/str_cat.h"

namespace sampled::server {

// absl::StatusCode and grpc::StatusCode share the canonical numbering (google.rpc.Code).
grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

std::string GrpcCodeName(grpc::StatusCode code) {
  if (code == grpc::StatusCode::OK) return "OK";
  const std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  // absl spells them "INVALID_ARGUMENT" etc.; unknown numbers print as a number.
  return name.empty() ? absl::StrCat("CODE_", static_cast<int>(code)) : name;
}

}  // namespace sampled::server
