// An array being received (an upload, an Evaluate's inline samples) whose buffer is charged against the
// memory budget before it grows: a chunk that would pass the budget is refused with RESOURCE_EXHAUSTED
// before any allocation.
#ifndef SAMPLED_SERVER_COMMON_CHARGED_ASSEMBLER_H_
#define SAMPLED_SERVER_COMMON_CHARGED_ASSEMBLER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/io/array_codec.h"
#include "server/common/guarded.h"
#include "server/common/memory_budget.h"

namespace sampled::server {

class ChargedAssembler {
 public:
  // Charges what the assembler reserves up front (expected_rows > 0), then builds it.
  static absl::StatusOr<std::unique_ptr<ChargedAssembler>> Create(MemoryBudget& budget, MemoryKind kind,
                                                                   DType dtype, int64_t dim, int64_t max_rows,
                                                                   int64_t expected_rows, std::string what) {
    const int64_t upfront = expected_rows > 0 ? expected_rows * dim * 8 : 0;
    absl::StatusOr<MemoryBudget::Charge> charge = budget.Reserve(kind, upfront, what);
    if (!charge.ok()) return charge.status();
    auto out = std::unique_ptr<ChargedAssembler>(new ChargedAssembler(std::move(*charge), std::move(what)));
    absl::Status built = Guarded(out->what_.c_str(), [&] {
      out->assembler_ = std::make_unique<ArrayAssembler>(dtype, dim, max_rows, expected_rows);
      return absl::OkStatus();
    });
    if (!built.ok()) return built;
    return out;
  }

  // Grows the charge to the buffer's size while it grows (the old buffer and the new), appends, and
  // settles the charge on the new size.
  absl::Status Append(absl::string_view chunk) {
    const int64_t now = assembler_->capacity_bytes();
    const int64_t after = assembler_->CapacityBytesAfter(static_cast<int64_t>(chunk.size()));
    if (after > now) {
      if (absl::Status s = charge_.Resize(now + after, what_); !s.ok()) return s;
    }
    absl::Status appended = Guarded(what_.c_str(), [&] { return assembler_->Append(chunk); });
    (void)charge_.Resize(assembler_->capacity_bytes(), what_);  // shrinking never fails
    return appended;
  }

  ArrayAssembler& assembler() { return *assembler_; }
  MemoryBudget::Charge& charge() { return charge_; }

 private:
  ChargedAssembler(MemoryBudget::Charge charge, std::string what) : charge_(std::move(charge)), what_(std::move(what)) {}

  MemoryBudget::Charge charge_;
  std::string what_;
  std::unique_ptr<ArrayAssembler> assembler_;
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_COMMON_CHARGED_ASSEMBLER_H_
