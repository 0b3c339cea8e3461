#include <algorithm>
#include <atomic>

#include "core/metrics/metric.h"
#include "server/common/charged_assembler.h"
#include "server/common/guarded.h"
#include "server/convert/convert.h"
#include "server/service/reactors.h"
#include "server/service/services.h"

namespace sampled::server {
namespace {

// Evaluate: a header naming the target and the samples (a target, a job, or chunks that follow), then
// the evaluation runs on a worker and finishes the call.
class EvaluateReactor final : public ReadReactor<v1::EvaluateRequest> {
 public:
  EvaluateReactor(grpc::CallbackServerContext* ctx, Backend* backend, v1::EvaluateResponse* response)
      : ctx_(ctx),
        backend_(backend),
        response_(response),
        handle_(std::make_shared<ReactorHandle<EvaluateReactor>>(this)) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    SAMPLED_REACTOR_CALLBACK();
    if (!ok) {
      if (ctx_->IsCancelled()) return Fail(absl::CancelledError("the evaluation was cancelled"));
      return Submit();
    }
    if (!have_header_) {
      if (!request_.has_header()) return Fail(absl::InvalidArgumentError("the first message must be the header"));
      const v1::EvaluateHeader& h = request_.header();
      absl::StatusOr<EvaluateArgs> args = FromProto(h);
      if (!args.ok()) return Fail(args.status());
      args_ = *std::move(args);
      have_header_ = true;
      inline_ = h.samples_case() == v1::EvaluateHeader::SAMPLES_NOT_SET;
      if (inline_) {
        if (h.dim() < 1 || h.dim() > backend_->limits().max_dim) {
          return Fail(absl::InvalidArgumentError("header: dim must be between 1 and the server's limit for inline samples"));
        }
        if (!v1::DType_IsValid(h.dtype()) || h.dtype() == v1::DTYPE_UNSPECIFIED) {
          return Fail(absl::InvalidArgumentError("header: dtype must be DTYPE_FLOAT32 or DTYPE_FLOAT64 for inline samples"));
        }
        // Inline samples are an array like an upload: bounded by rows and by values.
        const Limits& l = backend_->limits();
        const int64_t max_rows = std::min(l.max_points_per_target, l.max_array_values / h.dim());
        absl::StatusOr<std::unique_ptr<ChargedAssembler>> a = ChargedAssembler::Create(
            backend_->memory(), MemoryKind::kCalls, FromProto(h.dtype()), h.dim(), max_rows, 0, "the inline samples");
        if (!a.ok()) return Fail(a.status());
        assembler_ = *std::move(a);
      }
    } else {
      if (!inline_ || request_.has_header()) {
        return Fail(absl::InvalidArgumentError("unexpected message: chunks follow a header without a sample source"));
      }
      if (absl::Status s = assembler_->Append(request_.chunk()); !s.ok()) {
        return Fail(s);
      }
    }
    StartRead(&request_);
  }

  // A client that gives up (or a server shutting down) ends the call now, and an evaluation still running
  // stops at its next block.
  void OnCancel() override {
    SAMPLED_REACTOR_CALLBACK();
    stop_->store(true);
    Fail(absl::CancelledError("the evaluation was cancelled"));
  }

  void OnDone() override {
    SAMPLED_REACTOR_DONE();
    handle_->Detach();
    delete this;
  }

 private:
  void Submit() {
    if (!have_header_) return Fail(absl::InvalidArgumentError("the request ended before its header"));
    if (inline_) {
      absl::StatusOr<Points> samples =
          Guarded("receiving the samples", [&] { return assembler_->assembler().Finish(); });
      // The samples keep their charge (the buffer's, settled on their size) until they are measured.
      if (samples.ok()) {
        MemoryBudget::Charge& charge = assembler_->charge();
        (void)charge.Resize(std::min(charge.bytes(), PointsBytes(*samples)), "the inline samples");
        args_.samples_charge = std::make_shared<MemoryBudget::Charge>(std::move(charge));
      }
      assembler_.reset();
      if (!samples.ok()) return Fail(samples.status());
      args_.samples = *std::move(samples);
    }
    args_.stop = stop_;
    backend_->Evaluate(std::move(args_), [handle = handle_](absl::StatusOr<EvaluateResult> r) {
      handle->Run([&](EvaluateReactor* reactor) {
        absl::MutexLock lock(&reactor->mu_);
        if (reactor->finished_) return;
        if (r.ok()) {
          for (const auto& [name, value] : r->metrics) (*reactor->response_->mutable_metrics())[name] = value;
          reactor->response_->set_sample_count(r->sample_count);
        }
        reactor->finished_ = true;
        reactor->Finish(ToGrpcStatus(r.status()));
      });
    });
  }
  // Finishes once, whichever of the reader, the canceller and the evaluation gets here first.
  void Fail(const absl::Status& s) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    Finish(ToGrpcStatus(s));
  }

  grpc::CallbackServerContext* ctx_;
  Backend* backend_;
  v1::EvaluateResponse* response_;
  std::shared_ptr<ReactorHandle<EvaluateReactor>> handle_;
  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  v1::EvaluateRequest request_;
  EvaluateArgs args_;
  bool have_header_ = false;
  bool inline_ = false;
  std::unique_ptr<ChargedAssembler> assembler_;
  std::shared_ptr<std::atomic<bool>> stop_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace

grpc::ServerReadReactor<v1::EvaluateRequest>* EvaluationServiceImpl::Evaluate(CallbackServerContext* ctx,
                                                                               v1::EvaluateResponse* response) {
  return new EvaluateReactor(ctx, backend_, response);
}

ServerUnaryReactor* EvaluationServiceImpl::ListMetrics(CallbackServerContext* ctx, const v1::ListMetricsRequest* request,
                                                       v1::ListMetricsResponse* response) {
  for (const Metric* m : AllMetrics()) ToProto(*m, response->add_metrics());
  return FinishUnary(ctx, absl::OkStatus());
}

}  // namespace sampled::server
