#include "server/convert/convert.h"
#include "server/service/idempotent.h"
#include "server/service/reactors.h"
#include "server/service/services.h"

namespace sampled::server {

ServerUnaryReactor* TrainingServiceImpl::StartTraining(CallbackServerContext* ctx,
                                                       const v1::StartTrainingRequest* request, v1::Job* response) {
  absl::StatusOr<StartTrainingArgs> args = FromProto(*request);
  if (!args.ok()) return FinishUnary(ctx, args.status());
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  Done<JobSnapshot> done =
      FinishLater<JobSnapshot>(ctx, response, [](const JobSnapshot& j, v1::Job* out) { ToProto(j, out); });
  if (AnsweredByRequestId(backend_, request->session_id(), request->request_id(), "StartTraining", done)) {
    return reactor;
  }
  backend_->StartTraining(*std::move(args), std::move(done));
  return reactor;
}

ServerUnaryReactor* TrainingServiceImpl::ListTrainMethods(CallbackServerContext* ctx,
                                                          const v1::ListTrainMethodsRequest* request,
                                                          v1::ListTrainMethodsResponse* response) {
  for (const training::TrainMethod* m : training::TrainMethods()) ToProto(*m, response->add_methods());
  return FinishUnary(ctx, absl::OkStatus());
}

}  // namespace sampled::server
