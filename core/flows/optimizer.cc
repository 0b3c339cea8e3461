#include "core/flows/optimizer.h"

#include "absl/strings/str_cat.h"

namespace sampled {

absl::StatusOr<Optimizer> Optimizer::Parse(const std::string& name) {
  Optimizer o;
  if (name == "sgd") {
    o.kind_ = Kind::kSgd;
  } else if (name == "adagrad") {
    o.kind_ = Kind::kAdaGrad;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown optimizer '", name, "'; expected sgd or adagrad"));
  }
  return o;
}

void Optimizer::Displacement(const Points& direction, double step_size, const Points& memory,
                             Points* new_memory, Points* displacement) const {
  if (kind_ == Kind::kSgd) {
    new_memory->resize(0, 0);
    *displacement = step_size * direction;
    return;
  }
  if (memory.rows() != direction.rows() || memory.cols() != direction.cols()) {
    *new_memory = direction.array().square().matrix();
  } else {
    *new_memory =
        (kAdaGradDecay * memory.array() + (1.0 - kAdaGradDecay) * direction.array().square()).matrix();
  }
  *displacement = (step_size * direction.array() / (kAdaGradFudge + new_memory->array().sqrt())).matrix();
}

}  // namespace sampled
