// Helpers shared by the handlers: finishing a unary call from a Status, and a handle through which
// worker-thread callbacks reach a streaming reactor that may already be done.
#ifndef SAMPLED_SERVER_SERVICE_REACTORS_H_
#define SAMPLED_SERVER_SERVICE_REACTORS_H_

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

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_SERVICE_REACTORS_H_
