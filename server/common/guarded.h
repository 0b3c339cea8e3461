// Exceptions turned into statuses at the edges where work runs: a handler thread or a worker task must
// never let one reach std::terminate.
#ifndef SAMPLED_SERVER_COMMON_GUARDED_H_
#define SAMPLED_SERVER_COMMON_GUARDED_H_

#include <exception>
#include <new>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/common/parallel.h"

namespace sampled::server {

// f() (returning absl::Status or absl::StatusOr<T>), with std::bad_alloc as RESOURCE_EXHAUSTED "out of
// memory while <what>", StopRequested as CANCELLED and any other exception as INTERNAL naming `what`.
template <typename F>
auto Guarded(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const StopRequested&) {
    return absl::CancelledError(absl::StrCat("cancelled while ", what));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat("out of memory while ", what, "; ask for less"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, " failed: ", e.what()));
  }
}

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_COMMON_GUARDED_H_
