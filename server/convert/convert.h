// Conversions between the sampled.v1 protos and the backend's core types: the only file that knows both.
// FromProto functions validate what the proto cannot express and return INVALID_ARGUMENT naming the field.
#ifndef SAMPLED_SERVER_CONVERT_CONVERT_H_
#define SAMPLED_SERVER_CONVERT_CONVERT_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/common/points.h"
#include "core/flows/flow.h"
#include "core/metrics/metric.h"
#include "core/targets/target.h"
#include "core/targets/target_family.h"
#include "google/protobuf/timestamp.pb.h"
#include "sampled/v1/evaluation.pb.h"
#include "sampled/v1/flows.pb.h"
#include "sampled/v1/jobs.pb.h"
#include "sampled/v1/sessions.pb.h"
#include "sampled/v1/targets.pb.h"
#include "sampled/v1/training.pb.h"
#include "server/backend.h"

namespace sampled::server {

namespace v1 = ::sampled::v1;

// UNSPECIFIED maps to float64.
DType FromProto(v1::DType t);
v1::DType ToProto(DType t);

ParamMap FromProto(const google::protobuf::Map<std::string, v1::Values>& params);
void ToProto(const ParamMap& params, google::protobuf::Map<std::string, v1::Values>* out);

void ToProto(absl::Time t, google::protobuf::Timestamp* out);

absl::StatusOr<UploadSpec> FromProto(const v1::UploadTargetHeader& header);
absl::StatusOr<StartFlowArgs> FromProto(const v1::StartFlowRequest& request);
// Everything but the inline samples (which arrive as chunks).
absl::StatusOr<EvaluateArgs> FromProto(const v1::EvaluateHeader& header);

void ToProto(const SessionView& s, v1::Session* out);
// Parameters with more values than this are left out of Target messages unless asked for
// (Target.omitted_params names them).
constexpr int64_t kMaxParamValuesInMessage = 4096;
void ToProto(const TargetEntry& t, v1::Target* out, bool full_params = false);
void ToProto(const JobSnapshot& j, v1::Job* out);
void ToProto(const StepStats& s, double seconds, v1::StepStats* out);
void ToProto(const TargetFamily& f, v1::Family* out);
void ToProto(const FlowMethod& m, v1::Method* out);
void ToProto(const Metric& m, v1::MetricInfo* out);

v1::JobState ToProto(JobState s);

absl::StatusOr<StartTrainingArgs> FromProto(const v1::StartTrainingRequest& request);
void ToProto(const SamplerEntry& e, v1::Sampler* out);
void ToProto(const training::TrainMethod& m, v1::TrainMethod* out);
void ToProto(const HistoryRow& r, v1::HistoryRow* out);

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_CONVERT_CONVERT_H_
