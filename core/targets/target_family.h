// Analytic target families: each family is a name, its documented parameters and a factory, defined in
// its own file and listed once in target_family.cc. A new family is a new file plus one line there.
#ifndef SAMPLED_CORE_TARGETS_TARGET_FAMILY_H_
#define SAMPLED_CORE_TARGETS_TARGET_FAMILY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/targets/target.h"

namespace sampled {

struct ParamDoc {
  std::string key;
  std::string doc;
};

struct TargetFamily {
  std::string name;
  std::string summary;
  int64_t default_dim = 2;
  std::vector<ParamDoc> params;
  // dim > 0 (the caller resolves 0 to default_dim). Returns INVALID_ARGUMENT for bad parameters.
  std::function<absl::StatusOr<std::unique_ptr<Target>>(int64_t dim, const ParamMap& params)> create;
};

// Every built-in family, in a fixed order.
const std::vector<const TargetFamily*>& AnalyticFamilies();

// Builds a target of `family` in `dim` dimensions (0: the family's default) from `params` (overrides of
// the family's defaults). INVALID_ARGUMENT for an unknown family or parameter, a wrong shape, a
// dimension the family does not support, or a value out of range; the message says which.
absl::StatusOr<std::unique_ptr<Target>> CreateAnalyticTarget(const std::string& family, int64_t dim,
                                                             const ParamMap& params);

// The families, one per file.
const TargetFamily& GaussianFamily();
const TargetFamily& MixtureFamily();
const TargetFamily& RosenbrockFamily();
const TargetFamily& DonutFamily();
const TargetFamily& FunnelFamily();
const TargetFamily& SquiggleFamily();

}  // namespace sampled

#endif  // SAMPLED_CORE_TARGETS_TARGET_FAMILY_H_
