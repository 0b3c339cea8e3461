#include "server/jobs/work_queue.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"

namespace sampled::server {

WorkQueue::WorkQueue(const Options& options) : options_(options) {
  for (int i = 0; i < std::max(1, options_.threads); ++i) threads_.emplace_back([this] { WorkerLoop(); });
}

WorkQueue::WorkQueue(int threads, int64_t max_queued)
    : WorkQueue(Options{threads, max_queued, 0, 0, "job"}) {}

WorkQueue::~WorkQueue() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void WorkQueue::PushLocked(const std::string& key, Task task) {
  std::deque<Task>& q = waiting_[key];
  if (q.empty()) ring_.push_back(key);
  if (task.admitted) {
    ++admitted_;
    ++admitted_by_key_[key];
    q.push_back(std::move(task));
  } else {
    // A requeued slice is its key's oldest task: it goes first in its key, the key last in the ring.
    q.push_front(std::move(task));
    if (q.size() > 1) {
      ring_.erase(std::find(ring_.begin(), ring_.end(), key));
      ring_.push_back(key);
    }
  }
  ++queued_;
}

bool WorkQueue::RunnableLocked(const std::string* except) const {
  for (const std::string& key : ring_) {
    if (except != nullptr && key == *except) continue;
    if (options_.max_running_per_key <= 0) return true;
    auto it = running_by_key_.find(key);
    if (it == running_by_key_.end() || it->second < options_.max_running_per_key) return true;
  }
  return false;
}

bool WorkQueue::PopLocked(Task* task, std::string* key) {
  for (auto it = ring_.begin(); it != ring_.end(); ++it) {
    if (options_.max_running_per_key > 0) {
      auto r = running_by_key_.find(*it);
      if (r != running_by_key_.end() && r->second >= options_.max_running_per_key) continue;
    }
    *key = *it;
    ring_.erase(it);
    std::deque<Task>& q = waiting_[*key];
    *task = std::move(q.front());
    q.pop_front();
    if (q.empty()) {
      waiting_.erase(*key);
    } else {
      ring_.push_back(*key);  // its next task waits for the other keys' turns
    }
    --queued_;
    if (task->admitted) {
      --admitted_;
      if (--admitted_by_key_[*key] == 0) admitted_by_key_.erase(*key);
    }
    return true;
  }
  return false;
}

absl::Status WorkQueue::Submit(std::function<void()> run, std::function<void()> cancel, const std::string& key) {
  return SubmitSliced(
      [run = std::move(run)] {
        run();
        return false;
      },
      std::move(cancel), key);
}

absl::Status WorkQueue::SubmitSliced(std::function<bool()> slice, std::function<void()> cancel,
                                     const std::string& key, bool past_limits) {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("the server is shutting down and accepts no new work");
  if (past_limits) {
    PushLocked(key, Task{std::move(slice), std::move(cancel), true});
    return absl::OkStatus();
  }
  SAMPLED_RETURN_IF_ERROR(RoomLocked(key));
  PushLocked(key, Task{std::move(slice), std::move(cancel), true});
  return absl::OkStatus();
}

absl::Status WorkQueue::CheckRoom(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("the server is shutting down and accepts no new work");
  return RoomLocked(key);
}

absl::Status WorkQueue::RoomLocked(const std::string& key) const {
  if (admitted_ >= options_.max_queued) {
    return absl::ResourceExhaustedError(absl::StrCat("the ", options_.what, " queue is full (", options_.max_queued,
                                                     " waiting); retry later or cancel a job"));
  }
  const int64_t per_key = options_.max_queued_per_key > 0 ? options_.max_queued_per_key : options_.max_queued;
  if (auto it = admitted_by_key_.find(key); it != admitted_by_key_.end() && it->second >= per_key) {
    return absl::ResourceExhaustedError(absl::StrCat("session '", key, "' has ", per_key, " tasks waiting in the ",
                                                     options_.what, " queue, its limit; retry when one has started"));
  }
  return absl::OkStatus();
}

void WorkQueue::Close() {
  std::vector<Task> drained;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    for (auto& [key, q] : waiting_) {
      for (Task& t : q) drained.push_back(std::move(t));
    }
    waiting_.clear();
    ring_.clear();
    admitted_by_key_.clear();
    queued_ = admitted_ = 0;
  }
  for (Task& t : drained) {
    if (t.cancel) t.cancel();
  }
}

bool WorkQueue::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return queued_ == 0 && running_ == 0; };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

bool WorkQueue::AnyWaiting(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  return RunnableLocked(&key);
}

int64_t WorkQueue::queued() const {
  absl::MutexLock lock(&mu_);
  return queued_;
}

int64_t WorkQueue::queued(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = waiting_.find(key);
  return it == waiting_.end() ? 0 : static_cast<int64_t>(it->second.size());
}

int64_t WorkQueue::running() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

void WorkQueue::WorkerLoop() {
  while (true) {
    Task task;
    std::string key;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return RunnableLocked() || (stopping_ && queued_ == 0); };
      mu_.Await(absl::Condition(&ready));
      if (!PopLocked(&task, &key)) return;  // stopping and drained
      ++running_;
      ++running_by_key_[key];
    }
    bool again = false;
    bool threw = false;
    try {
      again = task.run();
    } catch (const std::exception& e) {
      // Tasks turn their errors into statuses; this is the last line of defence for the process, and its
      // `cancel` answers whoever waits on the task.
      std::fprintf(stderr, "sampled: a task failed with an exception: %s\n", e.what());
      threw = true;
    }
    if (threw) {
      try {
        if (task.cancel) task.cancel();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "sampled: a task's cancel failed with an exception: %s\n", e.what());
      }
    }
    if (again) {
      absl::MutexLock lock(&mu_);
      if (!closed_) {
        task.admitted = false;
        PushLocked(key, std::move(task));
        again = false;
      }
    }
    // Drained while its slice ran: the task ends as if it had waited (and still counts as running, so
    // WaitIdle covers it).
    if (again && task.cancel) task.cancel();
    absl::MutexLock lock(&mu_);
    --running_;
    if (--running_by_key_[key] == 0) running_by_key_.erase(key);
  }
}

}  // namespace sampled::server
