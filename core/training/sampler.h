// A trained sampler as a plain value (its generator network, the best checkpoint, and where it came from),
// how draws are made from it, and its export file.
//
// Draws are computed in fixed blocks of kDrawBlockRows latents, block b's latents drawn from a generator
// seeded with DrawBlockSeed(seed, b): the n draws of a seed are the first n rows of that stream, whatever
// the chunking, thread count or order in which blocks are computed.
//
// Export file (docs/api.md, "Sampler files"), little-endian:
//   "SMPSAMPLER\n"           11 bytes, magic
//   u64 version              kSamplerFileVersion
//   u64 len, bytes           provenance: a JSON object (build, method, target definition, settings, the
//                            sampler it continued from)
//   u64 in, u64 out, u64 activation name length + name, u64 hidden count, u64 widths...   architecture
//   u64 n, n x f32           final weights (the layout of core/training/mlp.h)
//   u64 n, n x f32           best checkpoint's weights (n = 0 when there is none)
//   u64 flags                bit 0: the run failed and these are its last finite weights;
//                            bit 1 (version 2): a score model (004) follows, its network the weights above:
//     u64 len, dynamics name ("gm" | "vp"), i64 dim, f64 t_end, f64 t_min, f64 beta_min, f64 beta_max,
//     u64 m, m x f32 frequencies, i64 default_steps, u64 residual (0 | 1), u64 prior keys, per key: u64 len,
//     name, u64 n, n x f64
//                            bit 2 (version 3): a drift chain (ingd) follows: f64 epsilon; the weights above are
//                            its drifts' networks one after another (the best checkpoint: a prefix of them)
//   u64 checksum             FNV-1a 64 of every byte before it
// A file is written in the oldest version that holds it: 1 for a generator, 2 for a score model, 3 for a drift
// chain (what builds before each read).
#ifndef SAMPLED_CORE_TRAINING_SAMPLER_H_
#define SAMPLED_CORE_TRAINING_SAMPLER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/points.h"
#include "core/training/mlp.h"
#include "core/training/score_sde.h"

namespace sampled::training {

constexpr int64_t kDrawBlockRows = 1024;
constexpr uint64_t kSamplerFileVersion = 3;

// ingd's sampler (000 Def. 4.1, Alg. 1 with the drift model): a time-varying generator made of drifts,
//   x_0 = z ~ N(0, I_d),  x_{k+1} = x_k + epsilon h_k(x_k),
// each h_k a network of the sampler's shape (d -> d). Its weights hold the K networks one after another (K x P
// floats); the generator at time k epsilon is the first k of them.
struct DriftChain {
  double epsilon = 0;
};

struct SamplerModel {
  MlpShape shape;                   // latent -> d
  std::vector<float> final_params;
  std::vector<float> best_params;   // empty: no checkpoint was better (or none was evaluated)
  bool last_finite = false;         // the run failed with a non-finite loss; these are its last finite weights
  std::string provenance_json;      // opaque to the server: what made it
  // A score model (ndsm, ndsm-cv, dsm): `shape` is its score network, and draws run its reverse dynamics
  // instead of x = g(z).
  std::optional<ScoreSdeModel> score_model;
  // A drift chain (ingd): `shape` is one drift's network, and the weights are the chain's.
  std::optional<DriftChain> drift;

  const std::vector<float>& params(bool best) const {
    return best && !best_params.empty() ? best_params : final_params;
  }
  int64_t bytes() const;
  int64_t dim() const { return shape.out; }
};

uint64_t DrawBlockSeed(uint64_t seed, int64_t block);

// The rows [first_block * kDrawBlockRows, ...) of the seed's stream, `blocks` whole blocks, into out
// (blocks * kDrawBlockRows x d).
void DrawBlocks(const MlpShape& shape, const std::vector<float>& params, uint64_t seed, int64_t first_block,
                int64_t blocks, int threads, PointsF* out);

// The first n draws of the seed's stream.
void Draw(const MlpShape& shape, const std::vector<float>& params, uint64_t seed, int64_t n, int threads,
          PointsF* out);

// How a draw runs (score models: steps and dynamics; a drift chain: steps, the number of its drifts taken;
// a generator ignores it).
using DrawOptions = ReverseOptions;

// The number of drifts a chain's weights hold (0 when they are not a whole number of networks).
int64_t DriftSteps(const MlpShape& shape, const std::vector<float>& params);
// x <- x + epsilon h_k(x) for the drifts k in [first, first + count) of the chain `params`, in order; CANCELLED
// when `cancelled` is set between two of them.
absl::Status ApplyDrifts(const MlpShape& shape, const std::vector<float>& params, int64_t first, int64_t count,
                         double epsilon, int threads, const std::atomic<bool>* cancelled, PointsF* x);

// A score model's prior as a target (ScoreSdePrior of its model), built once for many draws; null for a
// generator and for a vp model. INVALID_ARGUMENT when it cannot be built.
absl::StatusOr<std::shared_ptr<const Target>> DrawPrior(const SamplerModel& model);

// Rows of the seed's stream, as DrawBlocks, of any sampler: a generator's x = g(z), or a score model's
// reverse dynamics from `prior` (DrawPrior(model), which the caller keeps across blocks).
absl::Status DrawModelBlocks(const SamplerModel& model, const Target* prior, bool best, const DrawOptions& options,
                             uint64_t seed, int64_t first_block, int64_t blocks, int threads, PointsF* out);
// The first n draws of the seed's stream.
absl::Status DrawModel(const SamplerModel& model, bool best, const DrawOptions& options, uint64_t seed, int64_t n,
                       int threads, PointsF* out);
// The work of one draw per row, in multiply-adds (a score model's: its steps' network passes).
int64_t DrawMultiplyAdds(const SamplerModel& model, const DrawOptions& options);

std::string EncodeSamplerFile(const SamplerModel& model);
// INVALID_ARGUMENT naming what is wrong: not a sampler file, another version, truncated, a checksum that
// does not match, an architecture the weights do not fit, non-finite weights.
absl::StatusOr<SamplerModel> DecodeSamplerFile(std::string_view bytes);

// What a run reports of itself in its sampler's provenance: a "result" member appended to the provenance
// object, {"method": ..., "steps": N, "best_step": B}, so that an imported sampler says what made it.
struct TrainingResult {
  std::string method;   // empty when the provenance does not say
  int64_t steps = 0;
  int64_t best_step = -1;
};
std::string WithTrainingResult(std::string_view provenance_json, const TrainingResult& result);
// The result recorded by WithTrainingResult (an empty method when there is none: files from elsewhere are
// read defensively, never trusted to be well formed).
TrainingResult ReadTrainingResult(std::string_view provenance_json);

// A JSON string literal of s (quotes and escapes), for provenance objects.
std::string JsonString(std::string_view s);

}  // namespace sampled::training

#endif  // SAMPLED_CORE_TRAINING_SAMPLER_H_
