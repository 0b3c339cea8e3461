#include "server/convert/convert.h"
#include "server/service/reactors.h"
#include "server/service/services.h"

namespace sampled::server {
namespace {

// WatchJob: writes the job's state at once, then its latest state after every change notification
// (the job rate-limits progress notifications), and finishes after writing a terminal state. One write
// is in flight at a time; changes that arrive meanwhile are folded into the next write.
class WatchReactor final : public WriteReactor<v1::JobEvent> {
 public:
  explicit WatchReactor(std::shared_ptr<Job> job) : job_(std::move(job)) {
    listener_ = std::make_shared<Listener>(this);
    job_->Subscribe(listener_);
    MaybeWrite();
  }

  void OnWriteDone(bool ok) override {
    SAMPLED_REACTOR_CALLBACK();
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) return FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
    }
    MaybeWrite();
  }
  void OnCancel() override {
    SAMPLED_REACTOR_CALLBACK();
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
  }
  void OnDone() override {
    SAMPLED_REACTOR_DONE();
    job_->Unsubscribe(listener_.get());
    listener_->handle.Detach();
    delete this;
  }

 private:
  struct Listener final : public JobListener {
    explicit Listener(WatchReactor* r) : handle(r) {}
    void OnJobChanged() override {
      handle.Run([](WatchReactor* r) { r->MaybeWrite(); });
    }
    ReactorHandle<WatchReactor> handle;
  };

  void MaybeWrite() {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_) return;
    const JobSnapshot s = job_->Snapshot();
    const bool changed = !sent_any_ || s.state != sent_state_ || s.step != sent_step_ ||
                         s.metrics_step != sent_metrics_step_;
    if (!changed) return;
    sent_any_ = true;
    sent_state_ = s.state;
    sent_step_ = s.step;
    sent_metrics_step_ = s.metrics_step;
    event_.Clear();
    ToProto(s, event_.mutable_job());
    writing_ = true;
    if (IsTerminal(s.state)) {
      finished_ = true;
      StartWriteAndFinish(&event_, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      StartWrite(&event_);
    }
  }

  void FinishLocked(const grpc::Status& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(s);
  }

  std::shared_ptr<Job> job_;
  std::shared_ptr<Listener> listener_;
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool sent_any_ ABSL_GUARDED_BY(mu_) = false;
  JobState sent_state_ ABSL_GUARDED_BY(mu_) = JobState::kQueued;
  int64_t sent_step_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t sent_metrics_step_ ABSL_GUARDED_BY(mu_) = -1;
  v1::JobEvent event_ ABSL_GUARDED_BY(mu_);
};

// A watch of an unknown job: finishes with the lookup's error.
class FailedWatch final : public WriteReactor<v1::JobEvent> {
 public:
  explicit FailedWatch(const absl::Status& s) { Finish(ToGrpcStatus(s)); }
  void OnDone() override { SAMPLED_REACTOR_DONE(); delete this; }
};

}  // namespace

ServerUnaryReactor* JobServiceImpl::GetJob(CallbackServerContext* ctx, const v1::GetJobRequest* request,
                                           v1::Job* response) {
  absl::StatusOr<std::shared_ptr<Job>> job = backend_->jobs().Get(request->job_id());
  if (job.ok()) ToProto((*job)->Snapshot(), response);
  return FinishUnary(ctx, job.status());
}

ServerUnaryReactor* JobServiceImpl::ListJobs(CallbackServerContext* ctx, const v1::ListJobsRequest* request,
                                             v1::ListJobsResponse* response) {
  if (request->session_id().empty()) {
    return FinishUnary(ctx, absl::InvalidArgumentError("session_id is required"));
  }
  if (absl::Status s = backend_->sessions().GetSession(request->session_id()).status(); !s.ok()) {
    return FinishUnary(ctx, s);
  }
  absl::StatusOr<Page<JobSnapshot>> page =
      backend_->jobs().List(request->session_id(), {request->page_size(), request->page_token()});
  if (page.ok()) {
    for (const JobSnapshot& j : page->items) ToProto(j, response->add_jobs());
    response->set_next_page_token(page->next_page_token);
  }
  return FinishUnary(ctx, page.status());
}

ServerUnaryReactor* JobServiceImpl::CancelJob(CallbackServerContext* ctx, const v1::CancelJobRequest* request,
                                              v1::Job* response) {
  absl::StatusOr<JobSnapshot> job = backend_->CancelJob(request->job_id());
  if (job.ok()) ToProto(*job, response);
  return FinishUnary(ctx, job.status());
}

ServerUnaryReactor* JobServiceImpl::DeleteJob(CallbackServerContext* ctx, const v1::DeleteJobRequest* request,
                                              v1::DeleteJobResponse* response) {
  return FinishUnary(ctx, backend_->DeleteJob(request->job_id()));
}

grpc::ServerWriteReactor<v1::JobEvent>* JobServiceImpl::WatchJob(CallbackServerContext* ctx,
                                                                 const v1::WatchJobRequest* request) {
  absl::StatusOr<std::shared_ptr<Job>> job = backend_->jobs().Get(request->job_id());
  if (!job.ok()) return new FailedWatch(job.status());
  return new WatchReactor(*std::move(job));
}

ServerUnaryReactor* JobServiceImpl::GetJobHistory(CallbackServerContext* ctx, const v1::GetJobHistoryRequest* request,
                                                  v1::JobHistory* response) {
  absl::StatusOr<std::vector<HistoryRow>> rows = backend_->JobHistory(request->job_id());
  if (rows.ok()) {
    for (const HistoryRow& r : *rows) ToProto(r, response->add_rows());
  }
  return FinishUnary(ctx, rows.status());
}

}  // namespace sampled::server
