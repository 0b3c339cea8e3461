#include "server/common/ids.h"

#include <cstdio>
#include <random>

#include "absl/synchronization/mutex.h"

namespace sampled::server {

std::string NewId(char kind) {
  static absl::Mutex mu(absl::kConstInit);
  // Ids must be unique and unpredictable, not reproducible: seeded from the OS once.
  static std::mt19937_64 engine ABSL_GUARDED_BY(mu){std::random_device{}()};
  uint64_t v;
  {
    absl::MutexLock lock(&mu);
    v = engine();
  }
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%c_%016llx", kind, static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace sampled::server
