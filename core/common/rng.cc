#include "core/common/rng.h"

#include <cmath>
#include <sstream>
#include <vector>

#include "core/common/parallel.h"

namespace sampled {
namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;
// 2^-53: turns the top 53 bits of a 64-bit draw into a double in [0, 1).
constexpr double kInv53 = 1.0 / 9007199254740992.0;

template <typename T>
void FillNormalImpl(std::mt19937_64& engine, T* out, int64_t n) {
  // Draw uniforms in blocks and transform them; u1 is in (0, 1] so log(u1) is finite.
  constexpr int64_t kBlock = 256;
  double u1[kBlock / 2], u2[kBlock / 2];
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t count = std::min<int64_t>(kBlock, n - start);
    const int64_t pairs = (count + 1) / 2;
    for (int64_t i = 0; i < pairs; ++i) {
      u1[i] = (static_cast<double>(engine() >> 11) + 1.0) * kInv53;
      u2[i] = static_cast<double>(engine() >> 11) * kInv53;
    }
    for (int64_t i = 0; i < pairs; ++i) {
      const double r = std::sqrt(-2.0 * std::log(u1[i]));
      const double a = kTwoPi * u2[i];
      out[start + 2 * i] = static_cast<T>(r * std::cos(a));
      if (2 * i + 1 < count) out[start + 2 * i + 1] = static_cast<T>(r * std::sin(a));
    }
  }
}

}  // namespace

void Rng::FillNormal(double* out, int64_t n) { FillNormalImpl(engine_, out, n); }
void Rng::FillNormal(float* out, int64_t n) { FillNormalImpl(engine_, out, n); }

uint64_t BlockSeed(uint64_t seed, int64_t block) {
  const auto split_mix = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  };
  return split_mix(split_mix(seed) ^ static_cast<uint64_t>(block));
}

void FillNormalBlocks(uint64_t seed, float* out, int64_t n, int threads) {
  ParallelFor(n, kNormalBlock, threads, [&](int64_t begin, int64_t end, int) {
    Rng rng(BlockSeed(seed, begin / kNormalBlock));
    rng.FillNormal(out + begin, end - begin);
  });
}

double Rng::Normal() {
  double v;
  FillNormalImpl(engine_, &v, 1);
  return v;
}

double Rng::Uniform() { return (static_cast<double>(engine_() >> 11) + 0.5) * kInv53; }

int64_t Rng::UniformInt(int64_t n) {
  // Rejection sampling removes the modulo bias.
  const uint64_t un = static_cast<uint64_t>(n);
  const uint64_t limit = UINT64_MAX - UINT64_MAX % un;
  uint64_t v;
  do {
    v = engine_();
  } while (v >= limit);
  return static_cast<int64_t>(v % un);
}

void Rng::SampleWithoutReplacement(int64_t n, int64_t k, int64_t* scratch, int64_t* out) {
  for (int64_t i = 0; i < k; ++i) {
    const int64_t j = i + UniformInt(n - i);
    std::swap(scratch[i], scratch[j]);
    out[i] = scratch[i];
  }
  // Back to the identity: the swaps touched positions [0, k) and positions p >= k whose own value p was
  // drawn (a position past k is touched only by pulling its value into the first k), so every touched
  // position is in [0, k) or in out.
  for (int64_t i = 0; i < k; ++i) {
    scratch[out[i]] = out[i];
    scratch[i] = i;
  }
}

std::string Rng::Serialize() const {
  std::ostringstream os;
  os << engine_;
  return os.str();
}

absl::Status Rng::Deserialize(const std::string& text) {
  std::istringstream is(text);
  std::mt19937_64 engine;
  is >> engine;
  if (is.fail()) return absl::InvalidArgumentError("random generator state is malformed");
  engine_ = engine;
  return absl::OkStatus();
}

}  // namespace sampled
