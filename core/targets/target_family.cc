#include "core/targets/target_family.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"

namespace sampled {

const std::vector<const TargetFamily*>& AnalyticFamilies() {
  static const std::vector<const TargetFamily*> kFamilies = {
      &GaussianFamily(), &MixtureFamily(), &RosenbrockFamily(),
      &DonutFamily(),    &FunnelFamily(),  &SquiggleFamily(), &BlrFamily(), &GmmFamily(), &TorchScriptFamily(),
  };
  return kFamilies;
}

absl::StatusOr<const TargetFamily*> FindFamily(const std::string& family) {
  std::vector<std::string> names;
  for (const TargetFamily* f : AnalyticFamilies()) {
    if (f->name == family) return f;
    names.push_back(f->name);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown target family '", family,
                                                 "'; known families: ", absl::StrJoin(names, ", ")));
}

absl::StatusOr<std::unique_ptr<Target>> CreateAnalyticTarget(const std::string& family, int64_t dim,
                                                             const ParamMap& params) {
  SAMPLED_ASSIGN_OR_RETURN(const TargetFamily* f, FindFamily(family));
  if (dim < 0) return absl::InvalidArgumentError(absl::StrCat("dim must be >= 1, got ", dim));
  if (f->uploaded) {
    return absl::InvalidArgumentError(absl::StrCat("family '", family, "' is an uploaded model: send it with "
                                                   "UploadModel (samplectl target upload-model)"));
  }
  if (f->needs_data()) {
    return absl::InvalidArgumentError(absl::StrCat("family '", family,
                                                   "' is a posterior over data: give data_target_id, the id of "
                                                   "an uploaded data target (samplectl: --data T)"));
  }
  return f->create(dim == 0 ? f->default_dim : dim, params);
}

absl::StatusOr<std::unique_ptr<Target>> CreateTargetOverData(const std::string& family, const Target& data,
                                                             int64_t dim, const ParamMap& params) {
  SAMPLED_ASSIGN_OR_RETURN(const TargetFamily* f, FindFamily(family));
  if (dim < 0) return absl::InvalidArgumentError(absl::StrCat("dim must be >= 1, got ", dim));
  if (!f->needs_data()) {
    return absl::InvalidArgumentError(absl::StrCat("family '", family, "' takes no data target; "
                                                   "leave data_target_id empty"));
  }
  return f->create_from_data(data, dim, params);
}

absl::StatusOr<int64_t> TargetBuildBytes(const std::string& family, const Target& data, const ParamMap& params) {
  SAMPLED_ASSIGN_OR_RETURN(const TargetFamily* f, FindFamily(family));
  if (f->build_bytes == nullptr) return 0;
  return f->build_bytes(data, params);
}

}  // namespace sampled
