#include <algorithm>

#include "core/io/array_codec.h"
#include "server/common/guarded.h"
#include "server/convert/convert.h"
#include "server/service/idempotent.h"
#include "server/service/reactors.h"
#include "server/service/services.h"

namespace sampled::server {
namespace {

constexpr int64_t kChunkBytes = 1 << 20;

// GetParticles: asks the backend for a copy of the particles (taken between two steps when the flow is
// running) and streams it in chunks of rows.
class ParticlesReactor final : public WriteReactorBase<ParticlesReactor, v1::ParticlesChunk> {
 public:
  ParticlesReactor(Backend* backend, const v1::GetParticlesRequest& request)
      : dtype_(FromProto(request.dtype())), chunk_rows_(request.chunk_rows()) {
    if (chunk_rows_ < 0 || !v1::DType_IsValid(request.dtype())) {
      absl::MutexLock lock(&mu_);
      FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "chunk_rows must be >= 0 and dtype known"));
      return;
    }
    backend->ReadParticles(request.job_id(), [handle = handle_](absl::StatusOr<ParticlesView> v) {
      // Runs on a worker, or here when the job is idle (the copy was made under a guard).
      handle->Run([&](ParticlesReactor* r) { r->OnParticles(std::move(v)); });
    });
  }

 private:
  void OnParticles(absl::StatusOr<ParticlesView> v) {
    absl::MutexLock lock(&mu_);
    if (!v.ok()) return FinishLocked(ToGrpcStatus(v.status()));
    view_ = *std::move(v);
    const int64_t dim = std::max<int64_t>(1, view_.particles.cols());
    if (chunk_rows_ == 0) chunk_rows_ = std::max<int64_t>(1, kChunkBytes / (dim * DTypeSize(dtype_)));
    WriteNextLocked();
  }

  void WriteNextLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    const int64_t total = view_.particles.rows();
    if (offset_ >= total && offset_ > 0) return FinishLocked(grpc::Status::OK);
    const int64_t rows = std::min(chunk_rows_, total - offset_);
    chunk_.Clear();
    chunk_.set_total_rows(total);
    chunk_.set_dim(static_cast<int32_t>(view_.particles.cols()));
    chunk_.set_step(view_.step);
    chunk_.set_dtype(ToProto(dtype_));
    chunk_.set_row_offset(offset_);
    chunk_.set_rows(rows);
    absl::Status encoded = Guarded("encoding the particles", [&] {
      chunk_.set_data(EncodeRows(view_.particles, offset_, rows, dtype_));
      return absl::OkStatus();
    });
    if (!encoded.ok()) return FinishLocked(ToGrpcStatus(encoded));
    offset_ += std::max<int64_t>(rows, 1);  // an empty set still sends one (empty) chunk
    StartWriteLocked(&chunk_);
  }

  DType dtype_;
  int64_t chunk_rows_;
  ParticlesView view_ ABSL_GUARDED_BY(mu_);
  int64_t offset_ ABSL_GUARDED_BY(mu_) = 0;
  v1::ParticlesChunk chunk_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

ServerUnaryReactor* FlowServiceImpl::StartFlow(CallbackServerContext* ctx, const v1::StartFlowRequest* request,
                                               v1::Job* response) {
  absl::StatusOr<StartFlowArgs> args = FromProto(*request);
  if (!args.ok()) return FinishUnary(ctx, args.status());
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  Done<JobSnapshot> done =
      FinishLater<JobSnapshot>(ctx, response, [](const JobSnapshot& j, v1::Job* out) { ToProto(j, out); });
  if (AnsweredByRequestId(backend_, request->session_id(), request->request_id(), "StartFlow", done)) return reactor;
  backend_->StartFlow(*std::move(args), std::move(done));
  return reactor;
}

ServerUnaryReactor* FlowServiceImpl::StepFlow(CallbackServerContext* ctx, const v1::StepFlowRequest* request,
                                              v1::StepFlowResponse* response) {
  // A client that gives up (cancel, deadline) stops the run at its next step or block.
  auto* reactor = new CancellableUnaryReactor();
  std::function<void()> cancel =
      backend_->StepFlow(request->job_id(), request->steps(), [reactor, response](absl::StatusOr<StepFlowResult> r) {
        absl::Status status = r.status();
        if (r.ok()) {
          status = Guarded("writing the response", [&] {
            ToProto(r->job, response->mutable_job());
            for (const TimedStepStats& s : r->stats) ToProto(s.stats, s.seconds, response->add_stats());
            response->set_stats_omitted(r->stats_omitted);
            return absl::OkStatus();
          });
        }
        reactor->Finish(ToGrpcStatus(status));
      });
  reactor->SetCanceller(std::move(cancel));
  return reactor;
}

grpc::ServerWriteReactor<v1::ParticlesChunk>* FlowServiceImpl::GetParticles(CallbackServerContext* ctx,
                                                                             const v1::GetParticlesRequest* request) {
  return new ParticlesReactor(backend_, *request);
}

ServerUnaryReactor* FlowServiceImpl::ListMethods(CallbackServerContext* ctx, const v1::ListMethodsRequest* request,
                                                 v1::ListMethodsResponse* response) {
  for (const FlowMethod* m : FlowMethods()) ToProto(*m, response->add_methods());
  return FinishUnary(ctx, absl::OkStatus());
}

}  // namespace sampled::server
