// Status propagation macros. Debian's Abseil (20220623) has no ABSL_RETURN_IF_ERROR, so the project keeps
// its own two here; nothing else in the tree defines status macros.
#ifndef SAMPLED_CORE_COMMON_STATUS_MACROS_H_
#define SAMPLED_CORE_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SAMPLED_STATUS_CONCAT_INNER_(a, b) a##b
#define SAMPLED_STATUS_CONCAT_(a, b) SAMPLED_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define SAMPLED_RETURN_IF_ERROR(expr)            \
  do {                                           \
    ::absl::Status sampled_status_ = (expr);     \
    if (!sampled_status_.ok()) return sampled_status_; \
  } while (0)

// `lhs = value of rexpr`, or returns its status if `rexpr` (an absl::StatusOr) is not OK.
#define SAMPLED_ASSIGN_OR_RETURN(lhs, rexpr) \
  SAMPLED_ASSIGN_OR_RETURN_IMPL_(SAMPLED_STATUS_CONCAT_(sampled_statusor_, __LINE__), lhs, rexpr)

#define SAMPLED_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                   \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = std::move(statusor).value()

#endif  // SAMPLED_CORE_COMMON_STATUS_MACROS_H_
