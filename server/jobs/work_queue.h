// A fixed pool of worker threads fed by a bounded FIFO queue: where every long computation (a flow run,
// an interactive step, an evaluation) executes, so no RPC thread ever computes.
//
// Thread-safe.
#ifndef SAMPLED_SERVER_JOBS_WORK_QUEUE_H_
#define SAMPLED_SERVER_JOBS_WORK_QUEUE_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sampled::server {

class WorkQueue {
 public:
  // `threads` >= 1 workers; at most `max_queued` tasks wait (running tasks are not counted).
  WorkQueue(int threads, int64_t max_queued);
  // Stops accepting, finishes what is queued and running, joins.
  ~WorkQueue();

  // Queues `run`. RESOURCE_EXHAUSTED when max_queued tasks already wait; UNAVAILABLE after Close().
  // `cancel` (optional) is called instead of `run` if the queue is drained before the task starts.
  absl::Status Submit(std::function<void()> run, std::function<void()> cancel = nullptr);
  // Refuses further tasks and drains the queue: every waiting task's `cancel` is called (on this thread);
  // running tasks finish.
  void Close();
  // Waits until nothing is queued or running, or `timeout` passes; true if idle.
  bool WaitIdle(absl::Duration timeout);

  int64_t queued() const;
  int64_t running() const;

 private:
  void WorkerLoop();

  const int64_t max_queued_;
  mutable absl::Mutex mu_;
  struct Task {
    std::function<void()> run;
    std::function<void()> cancel;
  };
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_JOBS_WORK_QUEUE_H_
