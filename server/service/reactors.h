// Helpers shared by the handlers: finishing a unary call from a Status, and a handle through which
// worker-thread callbacks reach a streaming reactor that may already be done.
#ifndef SAMPLED_SERVER_SERVICE_REACTORS_H_
#define SAMPLED_SERVER_SERVICE_REACTORS_H_

#include <memory>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/convert/status.h"

namespace sampled::server {

// Finishes the call's default reactor with `status` and returns it.
inline grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A reactor deletes itself in OnDone; work finishing later on a worker must not touch it after that.
// Callbacks go through Run, which does nothing once the reactor has called Detach (from OnDone).
// Thread-safe.
template <typename Reactor>
class ReactorHandle {
 public:
  explicit ReactorHandle(Reactor* reactor) : reactor_(reactor) {}
  template <typename F>
  void Run(F&& f) {
    absl::MutexLock lock(&mu_);
    if (reactor_ != nullptr) f(reactor_);
  }
  void Detach() {
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  Reactor* reactor_ ABSL_GUARDED_BY(mu_);
};

// What the server-streaming reactors share: the handle workers reach them through, the lock, finishing
// exactly once, a client that stops reading or cancels, and deleting themselves when done. A subclass
// writes its next message in WriteNextLocked (with StartWriteLocked) and may observe the final status in
// OnFinishLocked.
template <typename Derived, typename Message>
class WriteReactorBase : public grpc::ServerWriteReactor<Message> {
 public:
  WriteReactorBase() : handle_(std::make_shared<ReactorHandle<Derived>>(static_cast<Derived*>(this))) {}

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) return FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
    WriteNextLocked();
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }
  void OnDone() override {
    handle_->Detach();
    delete this;
  }

 protected:
  virtual void WriteNextLocked() = 0;
  virtual void OnFinishLocked(const grpc::Status& status) {}

  void StartWriteLocked(const Message* m) {
    writing_ = true;
    this->StartWrite(m);
  }
  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    OnFinishLocked(status);
    this->Finish(status);
  }

  const std::shared_ptr<ReactorHandle<Derived>> handle_;
  absl::Mutex mu_;
  bool finished_ = false;  // guarded by mu_
  bool writing_ = false;   // guarded by mu_
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_SERVICE_REACTORS_H_
