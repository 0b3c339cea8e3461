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
  // dim > 0 (the caller resolves 0 to default_dim). Returns INVALID_ARGUMENT for bad parameters. Null for
  // a family defined over data.
  std::function<absl::StatusOr<std::unique_ptr<Target>>(int64_t dim, const ParamMap& params)> create;
  // A family defined over a data target (a posterior given data: "blr"): built from that target's samples;
  // dim 0 takes the dimension the data implies. Null for the analytic families.
  std::function<absl::StatusOr<std::unique_ptr<Target>>(const Target& data, int64_t dim, const ParamMap& params)>
      create_from_data;

  // A family whose targets are uploaded models ("torchscript": TargetService.UploadModel), neither
  // analytic nor defined over data.
  bool uploaded = false;

  // For a family over data: the bytes create_from_data works in beyond the target it returns (gmm: EM's
  // responsibilities), charged to the memory budget before it runs. Null: none worth counting.
  std::function<absl::StatusOr<int64_t>(const Target& data, const ParamMap& params)> build_bytes;

  bool needs_data() const { return create_from_data != nullptr; }
};

// Every built-in family, in a fixed order.
const std::vector<const TargetFamily*>& AnalyticFamilies();

// Builds a target of `family` in `dim` dimensions (0: the family's default) from `params` (overrides of
// the family's defaults). INVALID_ARGUMENT for an unknown family or parameter, a wrong shape, a
// dimension the family does not support, or a value out of range; the message says which.
absl::StatusOr<std::unique_ptr<Target>> CreateAnalyticTarget(const std::string& family, int64_t dim,
                                                             const ParamMap& params);

// What building a target of `family` over `data` works in (TargetFamily::build_bytes; 0 when the family
// declares none). Errors as CreateTargetOverData's for bad parameters.
absl::StatusOr<int64_t> TargetBuildBytes(const std::string& family, const Target& data, const ParamMap& params);

// The family looked up by name (INVALID_ARGUMENT naming the known ones).
absl::StatusOr<const TargetFamily*> FindFamily(const std::string& family);

// Builds a target of a family defined over data (`data`: the data target, which must hold samples).
// INVALID_ARGUMENT for an analytic family, or what the family refuses in the data or parameters.
absl::StatusOr<std::unique_ptr<Target>> CreateTargetOverData(const std::string& family, const Target& data,
                                                             int64_t dim, const ParamMap& params);

// The families, one per file.
const TargetFamily& GaussianFamily();
const TargetFamily& GmmFamily();
const TargetFamily& MixtureFamily();
const TargetFamily& RosenbrockFamily();
const TargetFamily& DonutFamily();
const TargetFamily& FunnelFamily();
const TargetFamily& SquiggleFamily();
const TargetFamily& BlrFamily();          // blr_target.cc
const TargetFamily& TorchScriptFamily();  // torchscript_target.cc

}  // namespace sampled

#endif  // SAMPLED_CORE_TARGETS_TARGET_FAMILY_H_
