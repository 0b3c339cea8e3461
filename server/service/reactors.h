// Helpers shared by the handlers: finishing a unary call from a Status, and a handle through which
// worker-thread callbacks reach a streaming reactor that may already be done.
#ifndef SAMPLED_SERVER_SERVICE_REACTORS_H_
#define SAMPLED_SERVER_SERVICE_REACTORS_H_

#include <functional>
#include <memory>
#include <utility>

#include <grpcpp/grpcpp.h>
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/convert/status.h"

namespace sampled::server {

// ThreadSanitizer builds: gRPC orders a reactor's callbacks and hands the reactor from the thread that starts
// an operation to the one that completes it with synchronisation TSan cannot see (Debian's libgrpc++ is not
// instrumented). The reactors say so: a callback opens with SAMPLED_REACTOR_CALLBACK() (acquire the
// reactor's order on entry, release it on exit; SAMPLED_REACTOR_DONE() in OnDone, which deletes it), and
// the bases below release it before each operation they start. Nothing in other builds.
#if defined(__SANITIZE_THREAD__)
class ReactorOrder {
 public:
  explicit ReactorOrder(const void* reactor) : reactor_(const_cast<void*>(reactor)) { __tsan_acquire(reactor_); }
  ~ReactorOrder() { __tsan_release(reactor_); }
  static void Handoff(const void* reactor) { __tsan_release(const_cast<void*>(reactor)); }
  static void Done(const void* reactor) { __tsan_acquire(const_cast<void*>(reactor)); }

 private:
  void* reactor_;
};
#define SAMPLED_REACTOR_CALLBACK() const ::sampled::server::ReactorOrder sampled_reactor_order(this)
#define SAMPLED_REACTOR_DONE() ::sampled::server::ReactorOrder::Done(this)
#define SAMPLED_REACTOR_HANDOFF() ::sampled::server::ReactorOrder::Handoff(this)
#else
#define SAMPLED_REACTOR_CALLBACK() static_cast<void>(0)
#define SAMPLED_REACTOR_DONE() static_cast<void>(0)
#define SAMPLED_REACTOR_HANDOFF() static_cast<void>(0)
#endif

// The streaming reactors' bases: gRPC's, with every operation they start announced to TSan (above).
template <typename Request>
class ReadReactor : public grpc::ServerReadReactor<Request> {
 protected:
  void StartRead(Request* request) {
    SAMPLED_REACTOR_HANDOFF();
    grpc::ServerReadReactor<Request>::StartRead(request);
  }
  void Finish(grpc::Status status) {
    SAMPLED_REACTOR_HANDOFF();
    grpc::ServerReadReactor<Request>::Finish(std::move(status));
  }
};
template <typename Response>
class WriteReactor : public grpc::ServerWriteReactor<Response> {
 protected:
  void StartWrite(const Response* response) {
    SAMPLED_REACTOR_HANDOFF();
    grpc::ServerWriteReactor<Response>::StartWrite(response);
  }
  void StartWriteAndFinish(const Response* response, grpc::WriteOptions options, grpc::Status status) {
    SAMPLED_REACTOR_HANDOFF();
    grpc::ServerWriteReactor<Response>::StartWriteAndFinish(response, options, std::move(status));
  }
  void Finish(grpc::Status status) {
    SAMPLED_REACTOR_HANDOFF();
    grpc::ServerWriteReactor<Response>::Finish(std::move(status));
  }
};

// Finishes the call's default reactor with `status` and returns it.
inline grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A unary call a worker answers later: `fill(value, response)` on success, then Finish. The default
// reactor lives until Finish, so the callback may hold it.
template <typename T, typename Response, typename Fill>
std::function<void(absl::StatusOr<T>)> FinishLater(grpc::CallbackServerContext* ctx, Response* response, Fill fill) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  return [reactor, response, fill](absl::StatusOr<T> r) {
    if (r.ok()) fill(*r, response);
    reactor->Finish(ToGrpcStatus(r.status()));
  };
}

// A unary reactor for work the client may give up on: OnCancel (the client cancelled, or its deadline
// passed) runs the canceller given to SetCanceller, whichever comes first. The work's callback calls
// Finish; the reactor deletes itself when done.
class CancellableUnaryReactor : public grpc::ServerUnaryReactor {
 public:
  void SetCanceller(std::function<void()> canceller) {
    bool now;
    {
      absl::MutexLock lock(&mu_);
      now = cancelled_;
      if (!now) canceller_ = std::move(canceller);
    }
    if (now && canceller) canceller();
  }
  void OnCancel() override {
    SAMPLED_REACTOR_CALLBACK();
    std::function<void()> canceller;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      canceller.swap(canceller_);
    }
    if (canceller) canceller();
  }
  void OnDone() override { SAMPLED_REACTOR_DONE(); delete this; }

 private:
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> canceller_ ABSL_GUARDED_BY(mu_);
};

// A reactor deletes itself in OnDone; work finishing later on a worker must not touch it after that.
// Callbacks go through Run, which does nothing once the reactor has called Detach (from OnDone).
// Thread-safe. `Stored` is what the handle keeps: a base of Reactor when the handle is made in the base's
// constructor, where `this` is not yet a Reactor (the downcast happens in Run, on a constructed object).
template <typename Reactor, typename Stored = Reactor>
class ReactorHandle {
 public:
  explicit ReactorHandle(Stored* reactor) : reactor_(reactor) {}
  template <typename F>
  void Run(F&& f) {
    absl::MutexLock lock(&mu_);
    if (reactor_ != nullptr) f(static_cast<Reactor*>(reactor_));
  }
  void Detach() {
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  Stored* reactor_ ABSL_GUARDED_BY(mu_);
};

// What the server-streaming reactors share: the handle workers reach them through, the lock, finishing
// exactly once, a client that stops reading or cancels, and deleting themselves when done. A subclass
// writes its next message in WriteNextLocked (with StartWriteLocked) and may observe the final status in
// OnFinishLocked.
template <typename Derived, typename Message>
class WriteReactorBase : public WriteReactor<Message> {
 public:
  // The handle keeps the base: Derived is not constructed yet here (UBSan's vptr check: a downcast of `this`
  // in a base constructor is undefined).
  WriteReactorBase() : handle_(std::make_shared<Handle>(this)) {}

  void OnWriteDone(bool ok) override {
    SAMPLED_REACTOR_CALLBACK();
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) return FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
    WriteNextLocked();
  }
  void OnCancel() override {
    SAMPLED_REACTOR_CALLBACK();
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }
  void OnDone() override {
    SAMPLED_REACTOR_DONE();
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

  using Handle = ReactorHandle<Derived, WriteReactorBase>;
  const std::shared_ptr<Handle> handle_;
  absl::Mutex mu_;
  bool finished_ = false;  // guarded by mu_
  bool writing_ = false;   // guarded by mu_
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_SERVICE_REACTORS_H_
