// A seedable random number generator whose whole state is a value: it can be copied, serialised and
// restored, so a flow resumed from a checkpoint draws the same numbers as one that never stopped.
// Not thread-safe: each flow or job owns one.
#ifndef SAMPLED_CORE_COMMON_RNG_H_
#define SAMPLED_CORE_COMMON_RNG_H_

#include <cstdint>
#include <random>
#include <string>

#include "absl/status/status.h"

namespace sampled {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : engine_(seed) {}

  // Fills `out[0..n)` with independent standard normal draws (Box-Muller on pairs of uniforms; the
  // sequence depends only on the engine state, not on the standard library's distribution classes).
  void FillNormal(double* out, int64_t n);
  void FillNormal(float* out, int64_t n);
  double Normal();
  // Uniform on the open interval (0, 1).
  double Uniform();
  // Uniform integer in [0, n).
  int64_t UniformInt(int64_t n);
  // Writes a uniformly random subset of size k of [0, n) into `out[0..k)` by a partial Fisher-Yates
  // shuffle of `scratch`, which must hold the identity permutation of [0, n) and is restored to it (in
  // O(k)) before returning: the subset depends on the generator's state alone, so a flow whose state holds
  // its generator continues the same way after a restore.
  void SampleWithoutReplacement(int64_t n, int64_t k, int64_t* scratch, int64_t* out);
  uint64_t NextU64() { return engine_(); }

  // The engine state as text (the standard mt19937_64 stream format), and back.
  std::string Serialize() const;
  absl::Status Deserialize(const std::string& text);

  friend bool operator==(const Rng& a, const Rng& b) { return a.engine_ == b.engine_; }

 private:
  std::mt19937_64 engine_;
};

// A seed for block `block` of a stream seeded by `seed` (SplitMix64 twice): independent streams for blocks
// that are filled in any order or on any thread.
uint64_t BlockSeed(uint64_t seed, int64_t block);

// Values per block of FillNormalBlocks.
constexpr int64_t kNormalBlock = 8192;

// out[0..n) standard normals in blocks of kNormalBlock values, block b drawn by Rng(BlockSeed(seed, b)), the
// blocks on up to `threads` threads (0: the default): the values depend on the seed alone, not on the thread
// count. For hot loops where one generator's serial Box-Muller would leave the other threads idle.
void FillNormalBlocks(uint64_t seed, float* out, int64_t n, int threads);

}  // namespace sampled

#endif  // SAMPLED_CORE_COMMON_RNG_H_
