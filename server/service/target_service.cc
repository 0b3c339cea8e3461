#include "absl/strings/str_cat.h"
#include "core/targets/target_family.h"
#include "server/common/charged_assembler.h"
#include "server/common/guarded.h"
#include "server/convert/convert.h"
#include "server/service/idempotent.h"
#include "server/service/reactors.h"
#include "server/service/services.h"

namespace sampled::server {
namespace {

// UploadTarget: a header, then chunks appended to an ArrayAssembler as they arrive; the target is
// stored when the client half-closes. Any error finishes the call at once and stores nothing.
class UploadReactor final : public ReadReactor<v1::UploadTargetRequest> {
 public:
  UploadReactor(grpc::CallbackServerContext* ctx, Backend* backend, v1::Target* response)
      : ctx_(ctx), backend_(backend), response_(response) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    SAMPLED_REACTOR_CALLBACK();
    if (!ok) {
      // The stream ended: a half-close stores the upload; a cancelled or broken call stores nothing.
      if (ctx_->IsCancelled()) return Fail(absl::CancelledError("the upload was cancelled"));
      if (assembler_ == nullptr) return Fail(absl::InvalidArgumentError("upload ended before its header"));
      // Checked (every value finite) and stored on a call worker; the reactor lives until Finish.
      backend_->FinishUpload(spec_, std::move(assembler_), [ctx = ctx_] { return ctx->IsCancelled(); },
                             std::move(done_));
      return;
    }
    if (assembler_ == nullptr) {
      if (!request_.has_header()) {
        return Fail(absl::InvalidArgumentError("the first upload message must be the header"));
      }
      absl::StatusOr<UploadSpec> spec = FromProto(request_.header());
      if (!spec.ok()) return Fail(spec.status());
      spec_ = *std::move(spec);
      // A repeated request id is answered at its header, with the target the first upload stored.
      done_ = [this](absl::StatusOr<TargetEntry> t) {
        absl::Status status = t.status();
        if (t.ok()) status = Guarded("writing the response", [&] {
          ToProto(*t, response_);
          return absl::OkStatus();
        });
        Finish(ToGrpcStatus(status));
      };
      if (AnsweredByRequestId(backend_, spec_.session_id, request_.header().request_id(), "UploadTarget", done_)) {
        return;
      }
      absl::StatusOr<std::unique_ptr<ChargedAssembler>> a =
          Guarded("starting the upload", [&] { return backend_->BeginUpload(spec_); });
      if (!a.ok()) return Fail(a.status());
      assembler_ = *std::move(a);
    } else {
      if (request_.has_header()) return Fail(absl::InvalidArgumentError("a second upload header arrived"));
      // The buffer grows with the upload: an allocation failure refuses it, never the process.
      if (absl::Status s = assembler_->Append(request_.chunk()); !s.ok()) {
        return Fail(s);
      }
    }
    StartRead(&request_);
  }

  void OnDone() override { SAMPLED_REACTOR_DONE(); delete this; }

 private:
  void Fail(const absl::Status& s) {
    assembler_.reset();
    done_ = nullptr;  // frees its request id
    Finish(ToGrpcStatus(s));
  }

  grpc::CallbackServerContext* ctx_;
  Backend* backend_;
  v1::Target* response_;
  v1::UploadTargetRequest request_;
  UploadSpec spec_;
  std::unique_ptr<ChargedAssembler> assembler_;
  Done<TargetEntry> done_;  // answers the call (and records its request id)
};

// UploadModel: a header (checked at once: a server without --allow-torchscript refuses before any bytes
// are sent), then the archive's bytes, bounded by --max-model-bytes; loaded, checked and stored at the
// half-close, on a sample worker.
class ModelUploadReactor final : public ReadReactor<v1::UploadModelRequest> {
 public:
  ModelUploadReactor(grpc::CallbackServerContext* ctx, Backend* backend, v1::Target* response)
      : ctx_(ctx), backend_(backend), response_(response) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    SAMPLED_REACTOR_CALLBACK();
    if (!ok) {
      if (ctx_->IsCancelled()) return Fail(absl::CancelledError("the upload was cancelled"));
      if (!have_header_) return Fail(absl::InvalidArgumentError("model upload ended before its header"));
      // The reactor (and ctx_) live until Finish, which only the callback calls.
      backend_->FinishModelUpload(spec_, std::move(bytes_), [ctx = ctx_] { return ctx->IsCancelled(); },
                                  std::move(done_));
      return;
    }
    if (!have_header_) {
      if (!request_.has_header()) return Fail(absl::InvalidArgumentError("the first upload message must be the header"));
      const v1::UploadModelHeader& h = request_.header();
      spec_ = {h.session_id(), h.name(), h.dim(), h.energy(), h.expected_bytes()};
      done_ = [this](absl::StatusOr<TargetEntry> t) {
        if (t.ok()) ToProto(*t, response_);
        Finish(ToGrpcStatus(t.status()));
      };
      if (AnsweredByRequestId(backend_, spec_.session_id, h.request_id(), "UploadModel", done_)) return;
      if (absl::Status s = backend_->BeginModelUpload(spec_); !s.ok()) return Fail(s);
      have_header_ = true;
    } else {
      if (request_.has_header()) return Fail(absl::InvalidArgumentError("a second upload header arrived"));
      if (static_cast<int64_t>(bytes_.size() + request_.chunk().size()) > backend_->max_model_bytes()) {
        return Fail(absl::ResourceExhaustedError(absl::StrCat(
            "the model is past the server's limit of ", backend_->max_model_bytes(), " bytes (--max-model-bytes)")));
      }
      try {
        bytes_ += request_.chunk();
      } catch (const std::bad_alloc&) {
        return Fail(absl::ResourceExhaustedError("out of memory while receiving the model"));
      }
    }
    StartRead(&request_);
  }

  void OnDone() override { SAMPLED_REACTOR_DONE(); delete this; }

 private:
  void Fail(const absl::Status& s) {
    bytes_.clear();
    done_ = nullptr;  // frees its request id
    Finish(ToGrpcStatus(s));
  }

  grpc::CallbackServerContext* ctx_;
  Backend* backend_;
  v1::Target* response_;
  v1::UploadModelRequest request_;
  Backend::ModelSpec spec_;
  bool have_header_ = false;
  std::string bytes_;
  Done<TargetEntry> done_;  // answers the call (and records its request id)
};

}  // namespace

grpc::ServerReadReactor<v1::UploadTargetRequest>* TargetServiceImpl::UploadTarget(CallbackServerContext* ctx,
                                                                                  v1::Target* response) {
  return new UploadReactor(ctx, backend_, response);
}

grpc::ServerReadReactor<v1::UploadModelRequest>* TargetServiceImpl::UploadModel(CallbackServerContext* ctx,
                                                                                v1::Target* response) {
  return new ModelUploadReactor(ctx, backend_, response);
}

ServerUnaryReactor* TargetServiceImpl::DefineTarget(CallbackServerContext* ctx, const v1::DefineTargetRequest* request,
                                                    v1::Target* response) {
  DefineTargetArgs args;
  args.session_id = request->session_id();
  args.name = request->name();
  args.family = request->family();
  args.dim = request->dim();
  args.sample_count = request->sample_count();
  args.seed = request->seed();
  args.data_target_id = request->data_target_id();
  absl::Status parsed = Guarded("reading the parameters", [&] {
    args.params = FromProto(request->params());
    return absl::OkStatus();
  });
  if (!parsed.ok()) return FinishUnary(ctx, parsed);
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  Done<TargetEntry> done =
      FinishLater<TargetEntry>(ctx, response, [](const TargetEntry& t, v1::Target* out) { ToProto(t, out); });
  if (AnsweredByRequestId(backend_, request->session_id(), request->request_id(), "DefineTarget", done)) {
    return reactor;
  }
  backend_->DefineTarget(std::move(args), std::move(done));
  return reactor;
}

ServerUnaryReactor* TargetServiceImpl::GetTarget(CallbackServerContext* ctx, const v1::GetTargetRequest* request,
                                                 v1::Target* response) {
  absl::StatusOr<TargetEntry> t = backend_->sessions().GetTarget(request->session_id(), request->target_id());
  absl::Status status = t.status();
  if (t.ok()) status = Guarded("writing the target", [&] {
    ToProto(*t, response, request->full_params());
    return absl::OkStatus();
  });
  return FinishUnary(ctx, status);
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
  return FinishUnary(ctx, backend_->DeleteTarget(request->session_id(), request->target_id()));
}

ServerUnaryReactor* TargetServiceImpl::ListFamilies(CallbackServerContext* ctx, const v1::ListFamiliesRequest* request,
                                                    v1::ListFamiliesResponse* response) {
  for (const TargetFamily* f : AnalyticFamilies()) ToProto(*f, response->add_families());
  return FinishUnary(ctx, absl::OkStatus());
}

}  // namespace sampled::server
