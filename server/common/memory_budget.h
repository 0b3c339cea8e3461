// One memory budget for everything the server holds or is building (--max-memory): every stored or
// in-flight object is charged before it is allocated, and over budget is RESOURCE_EXHAUSTED naming what to
// reduce. A Charge is released when it is destroyed; Attach ties one to an object's lifetime, so the bytes
// are uncharged exactly when the last reference (a session's, a job's, a Sample's) goes.
//
// Thread-safe.
#ifndef SAMPLED_SERVER_COMMON_MEMORY_BUDGET_H_
#define SAMPLED_SERVER_COMMON_MEMORY_BUDGET_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sampled::server {

enum class MemoryKind { kTargets, kUploads, kJobs, kSamplers, kCalls };
constexpr int kMemoryKinds = 5;
// "targets", "uploads", "jobs", "samplers", "calls" (the label of sampled_memory_bytes).
const char* MemoryKindName(MemoryKind kind);

class MemoryBudget {
 public:
  class Charge {
   public:
    Charge() = default;
    Charge(Charge&& other) noexcept { *this = std::move(other); }
    Charge& operator=(Charge&& other) noexcept;
    ~Charge() { Release(); }
    int64_t bytes() const { return bytes_; }
    // Grows (or shrinks) the charge to `bytes`: RESOURCE_EXHAUSTED, the charge unchanged, when the growth
    // does not fit. `what` names the request in the message.
    absl::Status Resize(int64_t bytes, absl::string_view what);
    void Release();

   private:
    friend class MemoryBudget;
    MemoryBudget* budget_ = nullptr;
    MemoryKind kind_ = MemoryKind::kTargets;
    int64_t bytes_ = 0;
  };

  // `limit` bytes in all; <= 0: no limit (still accounted).
  explicit MemoryBudget(int64_t limit);

  // A charge of `bytes` of `kind`, or RESOURCE_EXHAUSTED ("<what> needs N MiB, but the server's memory
  // budget (--max-memory) has M MiB left of L: <hint>").
  absl::StatusOr<Charge> Reserve(MemoryKind kind, int64_t bytes, absl::string_view what);

  int64_t limit() const { return limit_; }
  int64_t used() const { return total_.load(); }
  int64_t used(MemoryKind kind) const { return by_kind_[static_cast<int>(kind)].load(); }

 private:
  bool TryAdd(MemoryKind kind, int64_t bytes);
  void Sub(MemoryKind kind, int64_t bytes);
  absl::Status Refusal(int64_t bytes, absl::string_view what) const;

  const int64_t limit_;
  std::atomic<int64_t> total_{0};
  std::array<std::atomic<int64_t>, kMemoryKinds> by_kind_{};
};

// `object` sharing its lifetime with `charge`: the charge is released when the last copy of the returned
// pointer goes.
template <typename T>
std::shared_ptr<T> Attach(std::shared_ptr<T> object, MemoryBudget::Charge charge) {
  struct Holder {
    std::shared_ptr<T> object;
    MemoryBudget::Charge charge;
  };
  auto holder = std::make_shared<Holder>(Holder{std::move(object), std::move(charge)});
  T* raw = holder->object.get();
  return std::shared_ptr<T>(std::move(holder), raw);
}

// The default budget: `fraction` of the machine's physical memory (sysconf), 0 when unknown.
int64_t DefaultMemoryBudget(double fraction = 0.75);

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_COMMON_MEMORY_BUDGET_H_
