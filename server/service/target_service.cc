#include "core/targets/target_family.h"
#include "server/convert/convert.h"
#include "server/service/reactors.h"
#include "server/service/services.h"

namespace sampled::server {
namespace {

// UploadTarget: a header, then chunks appended to an ArrayAssembler as they arrive; the target is
// stored when the client half-closes. Any error finishes the call at once and stores nothing.
class UploadReactor final : public grpc::ServerReadReactor<v1::UploadTargetRequest> {
 public:
  UploadReactor(grpc::CallbackServerContext* ctx, Backend* backend, v1::Target* response)
      : ctx_(ctx), backend_(backend), response_(response) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The stream ended: a half-close stores the upload; a cancelled or broken call stores nothing.
      if (ctx_->IsCancelled()) return Fail(absl::CancelledError("the upload was cancelled"));
      if (assembler_ == nullptr) return Fail(absl::InvalidArgumentError("upload ended before its header"));
      absl::StatusOr<TargetEntry> t = backend_->FinishUpload(spec_, *assembler_);
      if (t.ok()) ToProto(*t, response_);
      assembler_.reset();
      Finish(ToGrpcStatus(t.status()));
      return;
    }
    if (assembler_ == nullptr) {
      if (!request_.has_header()) {
        return Fail(absl::InvalidArgumentError("the first upload message must be the header"));
      }
      absl::StatusOr<UploadSpec> spec = FromProto(request_.header());
      if (!spec.ok()) return Fail(spec.status());
      spec_ = *std::move(spec);
      absl::StatusOr<std::unique_ptr<ArrayAssembler>> a = backend_->BeginUpload(spec_);
      if (!a.ok()) return Fail(a.status());
      assembler_ = *std::move(a);
    } else {
      if (request_.has_header()) return Fail(absl::InvalidArgumentError("a second upload header arrived"));
      if (absl::Status s = assembler_->Append(request_.chunk()); !s.ok()) return Fail(s);
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  void Fail(const absl::Status& s) {
    assembler_.reset();
    Finish(ToGrpcStatus(s));
  }

  grpc::CallbackServerContext* ctx_;
  Backend* backend_;
  v1::Target* response_;
  v1::UploadTargetRequest request_;
  UploadSpec spec_;
  std::unique_ptr<ArrayAssembler> assembler_;
};

}  // namespace

grpc::ServerReadReactor<v1::UploadTargetRequest>* TargetServiceImpl::UploadTarget(CallbackServerContext* ctx,
                                                                                  v1::Target* response) {
  return new UploadReactor(ctx, backend_, response);
}

ServerUnaryReactor* TargetServiceImpl::DefineTarget(CallbackServerContext* ctx, const v1::DefineTargetRequest* request,
                                                    v1::Target* response) {
  absl::StatusOr<TargetEntry> t = backend_->DefineTarget(request->session_id(), request->name(), request->family(),
                                                         request->dim(), FromProto(request->params()),
                                                         request->sample_count(), request->seed(),
                                                         request->data_target_id());
  if (t.ok()) ToProto(*t, response);
  return FinishUnary(ctx, t.status());
}

ServerUnaryReactor* TargetServiceImpl::GetTarget(CallbackServerContext* ctx, const v1::GetTargetRequest* request,
                                                 v1::Target* response) {
  absl::StatusOr<TargetEntry> t = backend_->sessions().GetTarget(request->session_id(), request->target_id());
  if (t.ok()) ToProto(*t, response);
  return FinishUnary(ctx, t.status());
}

ServerUnaryReactor* TargetServiceImpl::ListTargets(CallbackServerContext* ctx, const v1::ListTargetsRequest* request,
                                                   v1::ListTargetsResponse* response) {
  absl::StatusOr<Page<TargetEntry>> page =
      backend_->sessions().ListTargets(request->session_id(), {request->page_size(), request->page_token()});
  if (page.ok()) {
    for (const TargetEntry& t : page->items) ToProto(t, response->add_targets());
    response->set_next_page_token(page->next_page_token);
  }
  return FinishUnary(ctx, page.status());
}

ServerUnaryReactor* TargetServiceImpl::DeleteTarget(CallbackServerContext* ctx, const v1::DeleteTargetRequest* request,
                                                    v1::DeleteTargetResponse* response) {
  return FinishUnary(ctx, backend_->sessions().DeleteTarget(request->session_id(), request->target_id()));
}

ServerUnaryReactor* TargetServiceImpl::ListFamilies(CallbackServerContext* ctx, const v1::ListFamiliesRequest* request,
                                                    v1::ListFamiliesResponse* response) {
  for (const TargetFamily* f : AnalyticFamilies()) ToProto(*f, response->add_families());
  return FinishUnary(ctx, absl::OkStatus());
}

}  // namespace sampled::server
