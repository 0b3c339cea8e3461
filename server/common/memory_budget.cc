#include "server/common/memory_budget.h"

#include <unistd.h>

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sampled::server {

const char* MemoryKindName(MemoryKind kind) {
  switch (kind) {
    case MemoryKind::kTargets: return "targets";
    case MemoryKind::kUploads: return "uploads";
    case MemoryKind::kJobs: return "jobs";
    case MemoryKind::kSamplers: return "samplers";
    case MemoryKind::kCalls: return "calls";
  }
  return "unknown";
}

MemoryBudget::Charge& MemoryBudget::Charge::operator=(Charge&& other) noexcept {
  if (this != &other) {
    Release();
    budget_ = std::exchange(other.budget_, nullptr);
    kind_ = other.kind_;
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

absl::Status MemoryBudget::Charge::Resize(int64_t bytes, absl::string_view what) {
  if (budget_ == nullptr) return absl::FailedPreconditionError("resizing a released memory charge");
  bytes = std::max<int64_t>(bytes, 0);
  if (bytes > bytes_) {
    if (!budget_->TryAdd(kind_, bytes - bytes_)) return budget_->Refusal(bytes - bytes_, what);
  } else {
    budget_->Sub(kind_, bytes_ - bytes);
  }
  bytes_ = bytes;
  return absl::OkStatus();
}

void MemoryBudget::Charge::Release() {
  if (budget_ != nullptr && bytes_ > 0) budget_->Sub(kind_, bytes_);
  bytes_ = 0;
}

MemoryBudget::MemoryBudget(int64_t limit) : limit_(limit) {
  for (auto& k : by_kind_) k.store(0);
}

bool MemoryBudget::TryAdd(MemoryKind kind, int64_t bytes) {
  int64_t current = total_.load();
  do {
    // Refused past the limit, and (without one) past what an int64 counts: estimates saturate there.
    if (bytes > std::numeric_limits<int64_t>::max() - current) return false;
    if (limit_ > 0 && (bytes > limit_ || current > limit_ - bytes)) return false;
  } while (!total_.compare_exchange_weak(current, current + bytes));
  by_kind_[static_cast<int>(kind)].fetch_add(bytes);
  return true;
}

void MemoryBudget::Sub(MemoryKind kind, int64_t bytes) {
  total_.fetch_sub(bytes);
  by_kind_[static_cast<int>(kind)].fetch_sub(bytes);
}

absl::Status MemoryBudget::Refusal(int64_t bytes, absl::string_view what) const {
  const auto mib = [](int64_t b) { return absl::StrFormat("%.1f MiB", static_cast<double>(b) / (1 << 20)); };
  return absl::ResourceExhaustedError(absl::StrCat(
      what, " needs ", mib(bytes), ", but the server's memory budget (--max-memory) has ",
      mib(std::max<int64_t>(0, limit_ - total_.load())), " left of ", mib(limit_),
      ": ask for less (fewer rows, particles or draws, a smaller basis or network), or delete sessions, targets, "
      "jobs or samplers you no longer need"));
}

absl::StatusOr<MemoryBudget::Charge> MemoryBudget::Reserve(MemoryKind kind, int64_t bytes, absl::string_view what) {
  bytes = std::max<int64_t>(bytes, 0);
  if (!TryAdd(kind, bytes)) return Refusal(bytes, what);
  Charge c;
  c.budget_ = this;
  c.kind_ = kind;
  c.bytes_ = bytes;
  return c;
}

int64_t DefaultMemoryBudget(double fraction) {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<int64_t>(fraction * static_cast<double>(pages) * static_cast<double>(page));
}

}  // namespace sampled::server
