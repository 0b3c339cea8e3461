#include "core/flows/flow_state.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/common/byte_codec.h"
#include "core/common/status_macros.h"
#include "core/targets/empirical_target.h"

namespace sampled {
namespace {

constexpr std::string_view kMagic("SMPFLOW2", 8);

}  // namespace

absl::StatusOr<FlowState> MakeInitialState(const InitialParticles& init, int64_t dim, uint64_t seed) {
  FlowState state;
  state.rng = Rng(seed);
  if (init.given != nullptr) {
    if (init.count != 0 || !init.mean.empty() || init.std.has_value()) {
      return absl::InvalidArgumentError(
          "give either initial particles or a particle count with mean/std, not both");
    }
    if (init.given->cols() != dim) {
      return absl::InvalidArgumentError(absl::StrCat("initial particles have dimension ", init.given->cols(),
                                                     " but the target has dimension ", dim));
    }
    if (init.given->rows() < 1) return absl::InvalidArgumentError("initial particles are empty");
    SAMPLED_RETURN_IF_ERROR(CheckFinite(*init.given, "initial particles"));
    state.particles = *init.given;
    return state;
  }
  if (init.count < 1) {
    return absl::InvalidArgumentError(absl::StrCat("particle count must be >= 1, got ", init.count));
  }
  VectorXd mean = VectorXd::Zero(dim);
  if (init.mean.size() == 1) {
    mean.setConstant(init.mean[0]);
  } else if (static_cast<int64_t>(init.mean.size()) == dim) {
    mean = Eigen::Map<const VectorXd>(init.mean.data(), dim);
  } else if (!init.mean.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("init mean needs 1 or ", dim, " values, got ", init.mean.size()));
  }
  if (!mean.allFinite()) return absl::InvalidArgumentError("init mean must be finite");
  const double std = init.std.value_or(1.0);
  if (!(std >= 0 && std::isfinite(std))) {
    return absl::InvalidArgumentError(absl::StrCat("init std must be a finite number >= 0, got ", std));
  }
  state.particles.resize(init.count, dim);
  state.rng.FillNormal(state.particles.data(), state.particles.size());
  state.particles = (std * state.particles).rowwise() + mean.transpose();
  return state;
}

std::string SerializeFlowState(const FlowState& state) {
  std::string out(kMagic);
  ByteWriter w(&out);
  w.U64(static_cast<uint64_t>(state.step));
  w.Matrix(state.particles);
  w.Matrix(state.optimizer_state);
  w.String(state.rng.Serialize());
  w.U64(state.values.size());
  for (const auto& [key, value] : state.values) {
    w.String(key);
    w.F64(value);
  }
  return out;
}

absl::StatusOr<FlowState> ParseFlowState(std::string_view bytes) {
  ByteReader r(bytes);
  FlowState state;
  uint64_t step;
  std::string rng;
  if (!r.Magic(kMagic)) return absl::InvalidArgumentError("not a flow state (bad magic)");
  uint64_t count = 0;
  if (!r.U64(&step) || !r.Matrix(&state.particles) || !r.Matrix(&state.optimizer_state) || !r.String(&rng) ||
      !r.U64(&count)) {
    return absl::InvalidArgumentError("flow state is truncated or malformed");
  }
  for (uint64_t i = 0; i < count; ++i) {
    std::string key;
    double value;
    if (!r.String(&key) || !r.F64(&value)) return absl::InvalidArgumentError("flow state is truncated or malformed");
    state.values[key] = value;
  }
  if (!r.Done()) return absl::InvalidArgumentError("flow state has trailing bytes");
  state.step = static_cast<int64_t>(step);
  SAMPLED_RETURN_IF_ERROR(state.rng.Deserialize(rng));
  return state;
}

void DisplacementStats(const Points& displacement, StepStats* stats) {
  double sum = 0, max = 0;
  for (int64_t i = 0; i < displacement.rows(); ++i) {
    const double n = displacement.row(i).norm();
    sum += n;
    max = std::max(max, n);
  }
  stats->mean_displacement = displacement.rows() > 0 ? sum / displacement.rows() : 0.0;
  stats->max_displacement = max;
}

void CommitParticles(Points& next, const Points& displacement, Points* memory, const Rng& rng, double step_size,
                     FlowState& state, StepStats* stats) {
  state.particles.swap(next);
  if (memory != nullptr) state.optimizer_state.swap(*memory);
  state.rng = rng;
  ++state.step;
  stats->step = state.step;
  stats->step_size = step_size;
  DisplacementStats(displacement, stats);
}

absl::Status CommitDisplacement(const char* method, const char* hint, const Points& displacement, Points& next,
                                Points* memory, const Rng& rng, double step_size, FlowState& state,
                                StepStats* stats) {
  next = state.particles + displacement;
  if (!next.allFinite()) {
    return absl::FailedPreconditionError(
        absl::StrCat(method, " step ", state.step + 1, " made particles non-finite; ", hint));
  }
  CommitParticles(next, displacement, memory, rng, step_size, state, stats);
  return absl::OkStatus();
}

}  // namespace sampled
