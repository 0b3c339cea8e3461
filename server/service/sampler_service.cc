#include <algorithm>
#include <cstring>
#include <deque>

#include "absl/strings/str_cat.h"

#include "server/convert/convert.h"
#include "server/service/idempotent.h"
#include "server/service/reactors.h"
#include "server/service/services.h"

namespace sampled::server {
namespace {

constexpr int64_t kChunkBytes = 1 << 20;

// Sample: draws are computed a segment of blocks at a time on the sample workers (one segment ahead of
// the writes, so computing and sending overlap and at most two segments are held), and written in chunks
// of rows. A client that cancels or whose deadline passes stops the work before the next segment.
class SampleReactor final : public WriteReactorBase<SampleReactor, v1::SampleChunk> {
 public:
  SampleReactor(Backend* backend, const v1::SampleRequest& request) : backend_(backend), start_(absl::Now()) {
    absl::MutexLock lock(&mu_);
    if (!v1::DType_IsValid(request.dtype()) || !v1::Checkpoint_IsValid(request.checkpoint()) ||
        request.chunk_rows() < 0) {
      FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "dtype and checkpoint must be known values and chunk_rows >= 0"));
      return;
    }
    dtype_ = FromProto(request.dtype());
    SampleArgs args;
    args.sampler_id = request.sampler_id();
    args.n = request.n();
    args.seed = request.seed();
    args.best = request.checkpoint() == v1::CHECKPOINT_BEST;
    if (request.has_steps()) args.steps = request.steps();
    args.ode = request.ode();
    absl::StatusOr<std::shared_ptr<SampleStream>> stream = backend->BeginSample(args);
    if (!stream.ok()) {
      FinishLocked(ToGrpcStatus(stream.status()));
      return;
    }
    stream_ = *std::move(stream);
    chunk_rows_ = request.chunk_rows() > 0
                      ? request.chunk_rows()
                      : std::max<int64_t>(1, kChunkBytes / (stream_->dim * static_cast<int64_t>(DTypeSize(dtype_))));
    RequestLocked();
  }

 private:
  struct Segment {
    int64_t first_row = 0;
    PointsF draws;
  };

  // Asks for the next segment when none is being computed and none waits to be written.
  void RequestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || computing_ || !ready_.empty() || next_block_ >= stream_->blocks) return;
    computing_ = true;
    const int64_t first = next_block_, blocks = std::min(stream_->segment_blocks, stream_->blocks - next_block_);
    next_block_ += blocks;
    absl::Status queued =
        backend_->SampleSegment(stream_, first, blocks, [handle = handle_, first](absl::StatusOr<PointsF> draws) {
          handle->Run([&](SampleReactor* r) { r->OnSegment(first, std::move(draws)); });
        });
    if (!queued.ok()) {
      computing_ = false;
      FinishLocked(ToGrpcStatus(queued));
    }
  }

  void OnSegment(int64_t first_block, absl::StatusOr<PointsF> draws) {
    absl::MutexLock lock(&mu_);
    computing_ = false;
    if (!draws.ok()) return FinishLocked(ToGrpcStatus(draws.status()));
    ready_.push_back({first_block * training::kDrawBlockRows, *std::move(draws)});
    if (!writing_) WriteNextLocked();
  }

  void WriteNextLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    if (offset_ >= current_.draws.rows()) {
      if (ready_.empty()) {
        if (next_block_ >= stream_->blocks && !computing_) FinishLocked(grpc::Status::OK);
        return;  // the next segment is on its way
      }
      current_ = std::move(ready_.front());
      ready_.pop_front();
      offset_ = 0;
      RequestLocked();  // compute the next segment while this one is written
    }
    const int64_t rows = std::min(chunk_rows_, current_.draws.rows() - offset_);
    const int64_t d = current_.draws.cols();
    chunk_.Clear();
    chunk_.set_first_row(current_.first_row + offset_);
    chunk_.set_rows(rows);
    chunk_.set_dim(static_cast<int32_t>(d));
    chunk_.set_dtype(ToProto(dtype_));
    std::string* data = chunk_.mutable_data();
    const float* src = current_.draws.data() + offset_ * d;
    if (dtype_ == DType::kFloat32) {
      data->assign(reinterpret_cast<const char*>(src), rows * d * sizeof(float));
    } else {
      data->resize(rows * d * sizeof(double));
      char* dst = data->data();
      for (int64_t i = 0; i < rows * d; ++i) {
        const double v = src[i];
        std::memcpy(dst + i * sizeof(double), &v, sizeof(double));
      }
    }
    offset_ += rows;
    sent_ += rows;
    StartWriteLocked(&chunk_);
  }

  void OnFinishLocked(const grpc::Status& s) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stream_ != nullptr) stream_->cancelled.store(true);
    backend_->metrics().RecordSample(GrpcCodeName(s.error_code()), sent_, absl::ToDoubleSeconds(absl::Now() - start_));
  }

  Backend* const backend_;
  const absl::Time start_;
  DType dtype_ = DType::kFloat64;
  int64_t chunk_rows_ = 1;
  std::shared_ptr<SampleStream> stream_;
  int64_t next_block_ ABSL_GUARDED_BY(mu_) = 0;
  bool computing_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Segment> ready_ ABSL_GUARDED_BY(mu_);
  Segment current_ ABSL_GUARDED_BY(mu_);
  int64_t offset_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  v1::SampleChunk chunk_ ABSL_GUARDED_BY(mu_);
};

// ExportSampler: the file is encoded on a sample worker, then streamed in chunks of 1 MiB.
class ExportReactor final : public WriteReactorBase<ExportReactor, v1::SamplerFileChunk> {
 public:
  ExportReactor(Backend* backend, const std::string& sampler_id) {
    backend->ExportSampler(sampler_id, [handle = handle_](absl::StatusOr<std::string> bytes) {
      handle->Run([&](ExportReactor* r) { r->OnBytes(std::move(bytes)); });
    });
  }

 private:
  void OnBytes(absl::StatusOr<std::string> bytes) {
    absl::MutexLock lock(&mu_);
    if (!bytes.ok()) return FinishLocked(ToGrpcStatus(bytes.status()));
    bytes_ = *std::move(bytes);
    WriteNextLocked();
  }
  void WriteNextLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    if (offset_ >= bytes_.size()) return FinishLocked(grpc::Status::OK);
    const size_t n = std::min<size_t>(kChunkBytes, bytes_.size() - offset_);
    chunk_.set_data(bytes_.substr(offset_, n));
    offset_ += n;
    StartWriteLocked(&chunk_);
  }

  std::string bytes_ ABSL_GUARDED_BY(mu_);
  size_t offset_ ABSL_GUARDED_BY(mu_) = 0;
  v1::SamplerFileChunk chunk_ ABSL_GUARDED_BY(mu_);
};

// ImportSampler: the session first, then the file's bytes (bounded); decoded and stored at the half-close.
class ImportReactor final : public ReadReactor<v1::ImportSamplerRequest> {
 public:
  ImportReactor(grpc::CallbackServerContext* ctx, Backend* backend, v1::Sampler* response)
      : ctx_(ctx), backend_(backend), response_(response) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    SAMPLED_REACTOR_CALLBACK();
    if (!ok) {
      if (ctx_->IsCancelled()) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the import was cancelled"));
      if (session_id_.empty()) {
        return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "import ended before naming its session"));
      }
      backend_->ImportSampler(session_id_, std::move(bytes_), std::move(done_));
      return;
    }
    if (session_id_.empty()) {
      if (request_.part_case() != v1::ImportSamplerRequest::kSessionId || request_.session_id().empty()) {
        return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first import message must name the session"));
      }
      session_id_ = request_.session_id();
      done_ = [this](absl::StatusOr<SamplerEntry> e) {
        if (e.ok()) ToProto(*e, response_);
        Finish(ToGrpcStatus(e.status()));
      };
      if (AnsweredByRequestId(backend_, session_id_, request_.request_id(), "ImportSampler", done_)) return;
    } else {
      if (request_.part_case() != v1::ImportSamplerRequest::kChunk) {
        return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a second session message arrived"));
      }
      if (static_cast<int64_t>(bytes_.size() + request_.chunk().size()) > backend_->max_sampler_file_bytes()) {
        return Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   absl::StrCat("the sampler file is past the server's limit of ",
                                                backend_->max_sampler_file_bytes(), " bytes")));
      }
      bytes_ += request_.chunk();
    }
    StartRead(&request_);
  }
  void OnDone() override { SAMPLED_REACTOR_DONE(); delete this; }

 private:
  grpc::CallbackServerContext* ctx_;
  Backend* backend_;
  v1::Sampler* response_;
  v1::ImportSamplerRequest request_;
  std::string session_id_;
  std::string bytes_;
  Done<SamplerEntry> done_;  // answers the call (and records its request id)
};

}  // namespace

grpc::ServerWriteReactor<v1::SamplerFileChunk>* SamplerServiceImpl::ExportSampler(
    CallbackServerContext* ctx, const v1::ExportSamplerRequest* request) {
  return new ExportReactor(backend_, request->sampler_id());
}

grpc::ServerReadReactor<v1::ImportSamplerRequest>* SamplerServiceImpl::ImportSampler(CallbackServerContext* ctx,
                                                                                      v1::Sampler* response) {
  return new ImportReactor(ctx, backend_, response);
}

ServerUnaryReactor* SamplerServiceImpl::ListSamplers(CallbackServerContext* ctx,
                                                     const v1::ListSamplersRequest* request,
                                                     v1::ListSamplersResponse* response) {
  absl::StatusOr<std::vector<SamplerEntry>> list = backend_->ListSamplers(request->session_id());
  if (list.ok()) {
    for (const SamplerEntry& e : *list) ToProto(e, response->add_samplers());
  }
  return FinishUnary(ctx, list.status());
}

ServerUnaryReactor* SamplerServiceImpl::GetSampler(CallbackServerContext* ctx, const v1::GetSamplerRequest* request,
                                                   v1::Sampler* response) {
  absl::StatusOr<SamplerEntry> e = backend_->GetSampler(request->sampler_id());
  if (e.ok()) ToProto(*e, response);
  return FinishUnary(ctx, e.status());
}

ServerUnaryReactor* SamplerServiceImpl::DeleteSampler(CallbackServerContext* ctx,
                                                      const v1::DeleteSamplerRequest* request,
                                                      v1::DeleteSamplerResponse* response) {
  return FinishUnary(ctx, backend_->DeleteSampler(request->sampler_id()));
}

grpc::ServerWriteReactor<v1::SampleChunk>* SamplerServiceImpl::Sample(CallbackServerContext* ctx,
                                                                      const v1::SampleRequest* request) {
  return new SampleReactor(backend_, *request);
}

}  // namespace sampled::server
