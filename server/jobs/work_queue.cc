#include "server/jobs/work_queue.h"

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace sampled::server {

WorkQueue::WorkQueue(int threads, int64_t max_queued) : max_queued_(max_queued) {
  for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { WorkerLoop(); });
}

WorkQueue::~WorkQueue() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

absl::Status WorkQueue::Submit(std::function<void()> run, std::function<void()> cancel) {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("the server is shutting down and accepts no new work");
  if (static_cast<int64_t>(queue_.size()) >= max_queued_) {
    return absl::ResourceExhaustedError(absl::StrCat("the job queue is full (", max_queued_,
                                                     " waiting); retry later or cancel a job"));
  }
  queue_.push_back({std::move(run), std::move(cancel)});
  return absl::OkStatus();
}

void WorkQueue::Close() {
  std::deque<Task> drained;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    drained.swap(queue_);
  }
  for (Task& t : drained) {
    if (t.cancel) t.cancel();
  }
}

bool WorkQueue::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return queue_.empty() && running_ == 0; };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

int64_t WorkQueue::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size());
}

int64_t WorkQueue::running() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

void WorkQueue::WorkerLoop() {
  while (true) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || stopping_; };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    try {
      task.run();
    } catch (const std::exception& e) {
      // Tasks turn their errors into statuses; this is the last line of defence for the process.
      std::fprintf(stderr, "sampled: a task failed with an exception: %s\n", e.what());
    }
    absl::MutexLock lock(&mu_);
    --running_;
  }
}

}  // namespace sampled::server
