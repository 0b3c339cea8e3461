// A training run's initial state and its checkpoint encoding.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/common/byte_codec.h"
#include "core/common/status_macros.h"
#include "core/training/trainer.h"

namespace sampled::training {
namespace {

constexpr std::string_view kMagic("SMPTRAIN1", 9);

void PutNetwork(ByteWriter& w, const Network& n) {
  w.Floats(n.params);
  w.Floats(n.adam.m);
  w.Floats(n.adam.v);
  w.I64(n.adam.t);
}

bool GetNetwork(ByteReader& r, Network* n) {
  return r.Floats(&n->params) && r.Floats(&n->adam.m) && r.Floats(&n->adam.v) && r.I64(&n->adam.t);
}

}  // namespace

absl::StatusOr<TrainingState> MakeInitialTrainingState(const TrainSettings& settings,
                                                       const std::vector<float>* from_sampler) {
  TrainingState state;
  state.rng = Rng(settings.seed);
  state.sampler.params = InitialParameters(settings.sampler, state.rng);
  if (settings.init_std > 0) {  // weights ~ N(0, init_std^2), biases 0 (002 App. C.4's linear generator)
    const MlpShape& g = settings.sampler;
    for (int64_t l = 0; l < g.layers(); ++l) {
      for (int64_t i = g.weight_offset(l); i < g.bias_offset(l); ++i) {
        state.sampler.params[i] = static_cast<float>(settings.init_std * state.rng.Normal());
      }
      for (int64_t i = g.bias_offset(l); i < g.bias_offset(l) + g.out_of(l); ++i) state.sampler.params[i] = 0;
    }
  }
  state.score.params = InitialParameters(settings.score, state.rng);
  if (TrainsDriftChain(settings.method)) {
    // Each drift starts from the last one; the first from h = 0 (the output layer zeroed), so that a drift is
    // only what Eq. 7's fit puts in it.
    const MlpShape& h = settings.sampler;
    std::fill(state.sampler.params.begin() + h.weight_offset(h.layers() - 1), state.sampler.params.end(), 0.0f);
    if (from_sampler != nullptr) {
      const int64_t p = h.parameter_count();
      if (from_sampler->empty() || static_cast<int64_t>(from_sampler->size()) % p != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the drift chain to continue from has ", from_sampler->size(), " weights, not a whole number of this "
            "architecture's ", p, "-parameter drifts (give the same hidden widths and activation)"));
      }
      state.chain = *from_sampler;
      state.sampler.params.assign(from_sampler->end() - p, from_sampler->end());
    }
    return state;
  }
  if (from_sampler != nullptr) {
    if (static_cast<int64_t>(from_sampler->size()) != settings.sampler.parameter_count()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the sampler to continue from has ", from_sampler->size(), " parameters; this architecture has ",
          settings.sampler.parameter_count(), " (give the same latent, hidden widths and activation)"));
    }
    state.sampler.params = *from_sampler;
  }
  return state;
}

std::string SerializeTrainingState(const TrainingState& state) {
  std::string out(kMagic);
  ByteWriter w(&out);
  PutNetwork(w, state.sampler);
  PutNetwork(w, state.score);
  w.String(state.rng.Serialize());
  w.I64(state.step);
  w.Floats(state.best_params);
  w.I64(state.best_step);
  w.F64(state.best_metric);
  // Since sd-generator: the method's kept scalars, and since ingd its chain of drifts, when there are any (a
  // state without them ends here, and reads in builds older than them).
  if (!state.values.empty() || !state.chain.empty()) {
    w.U64(state.values.size());
    for (const auto& [key, value] : state.values) {
      w.String(key);
      w.F64(value);
    }
  }
  if (!state.chain.empty()) w.Floats(state.chain);
  return out;
}

absl::StatusOr<TrainingState> ParseTrainingState(std::string_view bytes) {
  ByteReader r(bytes);
  if (!r.Magic(kMagic)) return absl::InvalidArgumentError("not a training state (bad magic or version)");
  TrainingState state;
  std::string rng;
  if (!GetNetwork(r, &state.sampler) || !GetNetwork(r, &state.score) || !r.String(&rng) || !r.I64(&state.step) ||
      !r.Floats(&state.best_params) || !r.I64(&state.best_step) || !r.F64(&state.best_metric)) {
    return absl::InvalidArgumentError("training state is truncated or malformed");
  }
  if (!r.Done()) {
    uint64_t n = 0;
    if (!r.U64(&n) || n > 1024) return absl::InvalidArgumentError("training state's values are malformed");
    for (uint64_t i = 0; i < n; ++i) {
      std::string key;
      double value = 0;
      if (!r.String(&key) || !r.F64(&value)) return absl::InvalidArgumentError("training state's values are truncated");
      state.values[key] = value;
    }
  }
  if (!r.Done() && !r.Floats(&state.chain)) return absl::InvalidArgumentError("training state's chain is truncated");
  if (!r.Done()) return absl::InvalidArgumentError("training state has trailing bytes");
  SAMPLED_RETURN_IF_ERROR(state.rng.Deserialize(rng));
  return state;
}

}  // namespace sampled::training
