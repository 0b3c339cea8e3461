// A fixed pool of worker threads fed by bounded queues, one per key (a session), served round-robin:
// where every long computation (a flow run, an interactive step, an evaluation, a training run) executes,
// so no RPC thread ever computes and no session's work waits behind another's. A long task runs in
// slices: it returns true to be queued again behind the other keys' tasks.
//
// Thread-safe.
#ifndef SAMPLED_SERVER_JOBS_WORK_QUEUE_H_
#define SAMPLED_SERVER_JOBS_WORK_QUEUE_H_

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sampled::server {

class WorkQueue {
 public:
  struct Options {
    int threads = 1;
    int64_t max_queued = 64;          // tasks waiting in all (running tasks and requeued slices not counted)
    int64_t max_queued_per_key = 0;   // 0: max_queued
    int64_t max_running_per_key = 0;  // tasks of one key running at once; 0: no limit
    std::string what = "job";         // names the queue in refusals ("the job queue is full ...")
  };
  explicit WorkQueue(const Options& options);
  // `threads` >= 1 workers; at most `max_queued` tasks wait.
  WorkQueue(int threads, int64_t max_queued);
  // Stops accepting, finishes what is queued and running, joins.
  ~WorkQueue();

  // Queues `run` behind the tasks of `key`. RESOURCE_EXHAUSTED when max_queued tasks (or
  // max_queued_per_key of this key) already wait; UNAVAILABLE after Close(). `cancel` (optional) is
  // called instead of `run` if the queue is drained before the task starts.
  absl::Status Submit(std::function<void()> run, std::function<void()> cancel = nullptr,
                      const std::string& key = "");
  // As Submit, for work taken in slices: `slice` returns true to run again after the tasks of other keys
  // that wait (before its own key's later tasks: a key's tasks run in order); `cancel` is called instead
  // of a next slice if the queue is drained meanwhile. `past_limits`: admitted whatever waits (work that
  // was admitted before a restart).
  absl::Status SubmitSliced(std::function<bool()> slice, std::function<void()> cancel, const std::string& key,
                            bool past_limits = false);
  // What SubmitSliced would answer now for a task of `key` (without queueing one): work that is costly to
  // build asks first. Not a reservation: SubmitSliced checks again.
  absl::Status CheckRoom(const std::string& key) const;
  // Refuses further tasks and drains the queue: every waiting task's `cancel` is called (on this thread);
  // running tasks finish (a sliced one has its `cancel` called when its slice returns true). A task that
  // throws has its `cancel` called too, so whoever waits on it is answered.
  void Close();
  // Waits until nothing is queued or running, or `timeout` passes; true if idle.
  bool WaitIdle(absl::Duration timeout);

  // Whether a task of a key other than `key` waits for a worker and could run (a slice of `key` yields
  // only then: one key's tasks run in order, the keys take turns).
  bool AnyWaiting(const std::string& key) const;
  int64_t queued() const;
  int64_t queued(const std::string& key) const;
  int64_t running() const;

 private:
  struct Task {
    std::function<bool()> run;
    std::function<void()> cancel;
    bool admitted = true;  // counts against the bounds (false for a requeued slice)
  };
  void WorkerLoop();
  // Puts `task` at the back of `key`'s queue (and the key at the back of the ring when it was idle).
  void PushLocked(const std::string& key, Task task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The next task to run, round-robin over the keys that may run one; false when none may.
  bool PopLocked(Task* task, std::string* key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // OK, or RESOURCE_EXHAUSTED when the queue or `key`'s share of it is full.
  absl::Status RoomLocked(const std::string& key) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a waiting task of a key other than `except` (nullptr: any key) may run.
  bool RunnableLocked(const std::string* except = nullptr) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::deque<Task>> waiting_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> ring_ ABSL_GUARDED_BY(mu_);  // keys with waiting tasks, in turn order
  std::map<std::string, int64_t> running_by_key_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> admitted_by_key_ ABSL_GUARDED_BY(mu_);
  int64_t queued_ ABSL_GUARDED_BY(mu_) = 0;   // waiting tasks, requeued slices included
  int64_t admitted_ ABSL_GUARDED_BY(mu_) = 0; // waiting tasks that count against the bounds
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_JOBS_WORK_QUEUE_H_
