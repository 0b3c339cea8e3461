#include "core/targets/target_family.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sampled {

const std::vector<const TargetFamily*>& AnalyticFamilies() {
  static const std::vector<const TargetFamily*> kFamilies = {
      &GaussianFamily(), &MixtureFamily(), &RosenbrockFamily(),
      &DonutFamily(),    &FunnelFamily(),  &SquiggleFamily(),
  };
  return kFamilies;
}

absl::StatusOr<std::unique_ptr<Target>> CreateAnalyticTarget(const std::string& family, int64_t dim,
                                                             const ParamMap& params) {
  std::vector<std::string> names;
  for (const TargetFamily* f : AnalyticFamilies()) {
    if (f->name == family) {
      if (dim < 0) return absl::InvalidArgumentError(absl::StrCat("dim must be >= 1, got ", dim));
      return f->create(dim == 0 ? f->default_dim : dim, params);
    }
    names.push_back(f->name);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown target family '", family,
                                                 "'; known families: ", absl::StrJoin(names, ", ")));
}

}  // namespace sampled
