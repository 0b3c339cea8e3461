// How a flow turns its direction into a particle displacement: plain steps (SGD) or AdaGrad as in the
// published SVGD code that 002 Sec. 7.1 uses (Liu & Wang 2016: an accumulator with decay 0.9, seeded
// with the first squared direction, and a fudge factor 1e-6).
#ifndef SAMPLED_CORE_FLOWS_OPTIMIZER_H_
#define SAMPLED_CORE_FLOWS_OPTIMIZER_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/common/points.h"

namespace sampled {

class Optimizer {
 public:
  enum class Kind { kSgd, kAdaGrad };
  static constexpr double kAdaGradDecay = 0.9;
  static constexpr double kAdaGradFudge = 1e-6;

  // "sgd" or "adagrad"; INVALID_ARGUMENT otherwise.
  static absl::StatusOr<Optimizer> Parse(const std::string& name);

  Kind kind() const { return kind_; }

  // displacement = step_size * direction (SGD), or step_size * direction / (fudge + sqrt(h)) with
  // h = direction^2 on the first step (empty `memory`) and h = decay memory + (1 - decay) direction^2
  // after (AdaGrad). `memory` is the optimiser's part of the flow state; the caller commits
  // `new_memory` (left empty by SGD) only when the step succeeds.
  void Displacement(const Points& direction, double step_size, const Points& memory, Points* new_memory,
                    Points* displacement) const;

 private:
  Kind kind_ = Kind::kSgd;
};

}  // namespace sampled

#endif  // SAMPLED_CORE_FLOWS_OPTIMIZER_H_
