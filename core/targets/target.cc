#include "core/targets/target.h"

#include "absl/strings/str_cat.h"

namespace sampled {

absl::Status Target::LogDensity(const Points&, Eigen::VectorXd*) const {
  return absl::FailedPreconditionError(
      absl::StrCat("target of family '", family(), "' has no log-density; it is defined by samples"));
}

absl::Status Target::Score(const Points&, Points*) const {
  return absl::FailedPreconditionError(
      absl::StrCat("target of family '", family(), "' has no score; it is defined by samples"));
}

absl::Status Target::Sample(int64_t, Rng&, Points*) const {
  return absl::FailedPreconditionError(
      absl::StrCat("target of family '", family(), "' cannot draw exact samples"));
}

int64_t Target::bytes() const {
  int64_t total = 0;
  for (const auto& [key, values] : params()) total += static_cast<int64_t>(key.size() + 8 * values.size());
  return total;
}

absl::Status Target::ReferenceSamples(int64_t n, Rng& rng, Points* out) const {
  if (const Points* s = samples(); s != nullptr) {
    *out = *s;
    return absl::OkStatus();
  }
  if (can_sample()) return Sample(n, rng, out);
  return absl::FailedPreconditionError(absl::StrCat(
      "target of family '", family(),
      "' has neither samples nor an exact sampler; use a density metric such as ksd"));
}

}  // namespace sampled
