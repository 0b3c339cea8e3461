#include "core/kernels/pairwise_median.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <type_traits>

#include <Eigen/Core>

#include "core/common/parallel.h"
#include "core/common/rng.h"

namespace sampled {
namespace {

namespace ei = Eigen::internal;

constexpr int64_t kRowBlock = 64;
constexpr int64_t kColBlock = 1024;
constexpr int64_t kDirectMaxDim = 8;
constexpr int kRadixBits = 16;
constexpr uint32_t kBins = 1u << kRadixBits;
// Once the selected bucket holds at most this many values, they are gathered and selected directly.
constexpr uint64_t kGatherLimit = 1u << 16;

template <typename Scalar>
using Bits = std::conditional_t<std::is_same_v<Scalar, float>, uint32_t, uint64_t>;

template <typename Scalar>
Bits<Scalar> ToBits(Scalar v) {
  Bits<Scalar> b;
  std::memcpy(&b, &v, sizeof(b));
  return b;
}

// Calls visit(d2) for every pair i < j, from thread `ti`, in tiles. visit must be thread-safe per ti.
template <typename Scalar, typename Visit>
void ForEachPair(const PointsT<Scalar>& points, int threads, PairwiseMedianWorkspace<Scalar>& ws,
                 Visit&& visit) {
  const int64_t n = points.rows(), d = points.cols();
  ParallelFor(n, kRowBlock, threads, [&](int64_t i0, int64_t i1, int ti) {
    PointsT<Scalar>& tile = ws.tiles[ti];
    for (int64_t j0 = i0; j0 < n; j0 += kColBlock) {
      const int64_t nc = std::min(kColBlock, n - j0);
      const int64_t nr = i1 - i0;
      auto t = tile.topLeftCorner(nr, nc);
      if (d <= kDirectMaxDim) {
        for (int64_t r = 0; r < nr; ++r) {
          auto row = t.row(r).array();
          row.setZero();
          for (int64_t k = 0; k < d; ++k) {
            row += (ws.points_t.row(k).segment(j0, nc).array() - points(i0 + r, k)).square();
          }
        }
      } else {
        t.noalias() = points.middleRows(i0, nr) * points.middleRows(j0, nc).transpose();
        for (int64_t r = 0; r < nr; ++r) {
          t.row(r).array() = (ws.norms(i0 + r) + ws.norms.segment(j0, nc).transpose().array() -
                              Scalar(2) * t.row(r).array())
                                 .max(Scalar(0));
        }
      }
      for (int64_t r = 0; r < nr; ++r) {
        const int64_t i = i0 + r;
        // Only j > i: the tile may start at or before the diagonal.
        for (int64_t c = std::max<int64_t>(0, i + 1 - j0); c < nc; ++c) visit(ti, t(r, c));
      }
    }
  });
}

// Appends the lanes of `values` where `mask` is set to the first `count` entries of `out` (storage that
// grows by doubling): a compress-store on AVX-512, lane by lane elsewhere.
template <typename Packet, typename Scalar>
EIGEN_ALWAYS_INLINE void AppendSelected(const Packet& values, const Packet& mask, std::vector<Scalar>& out,
                                        size_t& count) {
  constexpr int P = ei::unpacket_traits<Packet>::size;
  if (out.size() < count + P) out.resize(std::max<size_t>(2 * out.size(), count + 4096));
  Scalar* dst = out.data() + count;
#if defined(__AVX512F__) && defined(__AVX512DQ__)
  if constexpr (std::is_same_v<Packet, Eigen::internal::Packet16f>) {
    const __mmask16 m = _mm512_movepi32_mask(_mm512_castps_si512(mask));
    _mm512_mask_compressstoreu_ps(dst, m, values);
    count += __builtin_popcount(m);
    return;
  } else if constexpr (std::is_same_v<Packet, Eigen::internal::Packet8d>) {
    const __mmask8 m = _mm512_movepi64_mask(_mm512_castpd_si512(mask));
    _mm512_mask_compressstoreu_pd(dst, m, values);
    count += __builtin_popcount(m);
    return;
  }
#endif
  alignas(64) Scalar v[P], k[P];
  ei::pstoreu(v, values);
  ei::pstoreu(k, mask);
  for (int l = 0; l < P; ++l) {
    Bits<Scalar> bits;
    std::memcpy(&bits, &k[l], sizeof(bits));
    if (bits != 0) out[count++] = v[l];
  }
}

}  // namespace

// Exact, and robust to any distribution of distances: a radix select over the bit patterns (two or three
// sweeps over the pairs, each with a scattered histogram update per pair).
template <typename Scalar>
double RadixSelectMedian(const PointsT<Scalar>& points, int threads, PairwiseMedianWorkspace<Scalar>& ws) {
  using B = Bits<Scalar>;
  const int64_t n = points.rows();
  if (n < 2) return 0.0;
  threads = ResolveThreads(threads);
  const uint64_t pairs = static_cast<uint64_t>(n) * static_cast<uint64_t>(n - 1) / 2;
  uint64_t rank = (pairs - 1) / 2;  // rank within the values that match the current prefix

  ws.histograms.resize(threads);
  ws.candidates.resize(threads);
  ws.tiles.resize(threads);
  for (int t = 0; t < threads; ++t) {
    ws.histograms[t].assign(kBins, 0);
    if (ws.tiles[t].rows() != kRowBlock || ws.tiles[t].cols() != kColBlock) {
      ws.tiles[t].resize(kRowBlock, kColBlock);
    }
  }
  if (points.cols() <= kDirectMaxDim) {
    ws.points_t = points.transpose();
  } else {
    ws.norms = points.rowwise().squaredNorm();
  }

  // Radix select from the most significant bits: squared distances are >= 0, so their bit patterns
  // order like their values. After each sweep, `prefix` holds the known high bits of the answer.
  constexpr int kTotalBits = 8 * sizeof(B);
  B prefix = 0;
  int known_bits = 0;
  while (known_bits < kTotalBits) {
    const int shift = kTotalBits - known_bits - kRadixBits;
    for (auto& h : ws.histograms) std::fill(h.begin(), h.end(), 0u);
    ForEachPair(points, threads, ws, [&](int ti, Scalar v) {
      const B b = ToBits(v);
      if (known_bits == 0 || (b >> (shift + kRadixBits)) == prefix) {
        ++ws.histograms[ti][static_cast<uint32_t>(b >> shift) & (kBins - 1)];
      }
    });
    uint64_t below = 0;
    uint32_t bin = 0;
    uint64_t count = 0;
    for (; bin < kBins; ++bin) {
      count = 0;
      for (const auto& h : ws.histograms) count += h[bin];
      if (below + count > rank) break;
      below += count;
    }
    rank -= below;
    prefix = (prefix << kRadixBits) | static_cast<B>(bin);
    known_bits += kRadixBits;
    if (known_bits == kTotalBits) break;
    if (count <= kGatherLimit) {
      // Gather the bucket's values and select among them.
      const int rest = kTotalBits - known_bits;
      for (auto& c : ws.candidates) c.clear();
      ForEachPair(points, threads, ws, [&](int ti, Scalar v) {
        if ((ToBits(v) >> rest) == prefix) ws.candidates[ti].push_back(v);
      });
      ws.merged.clear();
      for (const auto& c : ws.candidates) ws.merged.insert(ws.merged.end(), c.begin(), c.end());
      std::nth_element(ws.merged.begin(), ws.merged.begin() + rank, ws.merged.end());
      return static_cast<double>(ws.merged[rank]);
    }
  }
  Scalar v;
  std::memcpy(&v, &prefix, sizeof(v));
  return static_cast<double>(v);
}

// Exact, usually in one sweep: the order statistics of a fixed random sample of pairs bracket the median
// with near certainty; one SIMD sweep counts the distances below the bracket and gathers those inside it
// (about 1% of the pairs), and the median is selected among those. When the bracket misses (the sample
// was unlucky, or there are heavy ties) the radix select answers instead.
template <typename Scalar>
double MedianPairwiseSquaredDistance(const PointsT<Scalar>& points, int threads, PairwiseMedianWorkspace<Scalar>& ws) {
  using Packet = typename ei::packet_traits<Scalar>::type;
  constexpr int P = ei::unpacket_traits<Packet>::size;
  const int64_t n = points.rows(), d = points.cols();
  if (n < 2) return 0.0;
  const uint64_t pairs = static_cast<uint64_t>(n) * static_cast<uint64_t>(n - 1) / 2;
  const uint64_t rank = (pairs - 1) / 2;
  if (pairs < (uint64_t{1} << 16)) return RadixSelectMedian(points, threads, ws);
  threads = ResolveThreads(threads);

  // The bracket: sample order statistics at +-5 standard deviations around the median's rank. The sample
  // (1/16 of the pairs, at most 2^16) comes from a fixed seed, so the median stays deterministic.
  const int64_t kSample = static_cast<int64_t>(std::min<uint64_t>(uint64_t{1} << 16, pairs / 16));
  std::mt19937_64 engine(0x5eedULL + static_cast<uint64_t>(n));
  ws.merged.resize(kSample);
  const uint64_t un = static_cast<uint64_t>(n);
  const Scalar* data = points.data();
  for (int64_t s = 0; s < kSample; ++s) {
    // Two indices from one draw (multiply-high maps 32 random bits onto [0, n)); i == j is skipped.
    uint64_t i, j;
    do {
      const uint64_t r = engine();
      i = ((r & 0xffffffffULL) * un) >> 32;
      j = ((r >> 32) * un) >> 32;
    } while (i == j);
    const Scalar* a = data + i * d;
    const Scalar* b = data + j * d;
    Scalar d2 = 0;
    for (int64_t k = 0; k < d; ++k) d2 += (a[k] - b[k]) * (a[k] - b[k]);
    ws.merged[s] = d2;
  }
  const double q = static_cast<double>(rank) / pairs;
  const double spread = 5.0 * std::sqrt(q * (1 - q) * kSample);
  const int64_t lo_index = std::max<int64_t>(0, static_cast<int64_t>(q * kSample - spread));
  const int64_t hi_index = std::min<int64_t>(kSample - 1, static_cast<int64_t>(q * kSample + spread));
  std::nth_element(ws.merged.begin(), ws.merged.begin() + lo_index, ws.merged.end());
  const Scalar lo = ws.merged[lo_index];
  std::nth_element(ws.merged.begin() + lo_index, ws.merged.begin() + hi_index, ws.merged.end());
  const Scalar hi = ws.merged[hi_index];

  // One sweep: count d2 < lo, gather lo <= d2 <= hi. The coordinates are padded by a packet of zeros per
  // row: the last (masked) packet of a row reads there, not past the row (or the allocation).
  ws.points_t.resize(d, n + P);
  ws.points_t.leftCols(n) = points.transpose();
  ws.points_t.rightCols(P).setZero();
  ws.candidates.resize(threads);
  ws.counts.assign(threads, 0);
  ws.below.assign(threads, 0);
  // A reused workspace (a flow's) gets room up front for twice a thread's share of 1.5 times the expected
  // number of candidates, and the merged list for all of them, so that steady-state calls do not grow
  // them; a buffer that still overflows (a very uneven split) grows by doubling and keeps its capacity.
  if (ws.presize) {
    const double expected =
        1.5 * static_cast<double>(hi_index - lo_index + 1) / kSample * static_cast<double>(pairs);
    const size_t per_thread = static_cast<size_t>(2.0 * expected / threads) + 4096;
    for (auto& c : ws.candidates) {
      if (c.size() < per_thread) c.resize(per_thread);
    }
    if (ws.merged.capacity() < expected) ws.merged.reserve(static_cast<size_t>(expected));
  }
  const Packet plo = ei::pset1<Packet>(lo), phi = ei::pset1<Packet>(hi);
  const Scalar* coords = ws.points_t.data();
  const int64_t stride = ws.points_t.cols();
  ParallelFor(n, kRowBlock, threads, [&](int64_t i0, int64_t i1, int ti) {
    std::vector<Scalar>& out = ws.candidates[ti];
    // A local count: the threads' counters share a cache line, so updating them in place would bounce it.
    size_t count = ws.counts[ti];
    uint64_t below = 0;
    const Packet one = ei::pset1<Packet>(Scalar(1));
    constexpr int64_t kLocal = 16;
    Packet qk[kLocal];
    for (int64_t i = i0; i < i1; ++i) {
      const Scalar* q = data + i * d;
      for (int64_t k = 0; k < std::min(d, kLocal); ++k) qk[k] = ei::pset1<Packet>(q[k]);
      Packet below_lanes = ei::pzero(one);  // per-lane counts of this row (< n / P each: exact)
      // Pairs (i, j) with j > i, a packet at a time; lanes outside (i, n) are masked.
      const int64_t first = (i + 1) / P * P;
      for (int64_t j = first; j < n; j += P) {
        Packet d2 = ei::pzero(plo);
        for (int64_t k = 0; k < d; ++k) {
          const Packet qv = k < kLocal ? qk[k] : ei::pset1<Packet>(q[k]);
          const Packet diff = ei::psub(ei::ploadu<Packet>(coords + k * stride + j), qv);
          d2 = ei::pmadd(diff, diff, d2);
        }
        const bool partial = j <= i || j + P > n;
        Packet valid = ei::ptrue(plo);
        if (partial) {
          const Packet index = ei::plset<Packet>(static_cast<Scalar>(j));
          valid = ei::pand(ei::pcmp_lt(ei::pset1<Packet>(static_cast<Scalar>(i)), index),
                           ei::pcmp_lt(index, ei::pset1<Packet>(static_cast<Scalar>(n))));
        }
        const Packet is_below = ei::pand(valid, ei::pcmp_lt(d2, plo));
        const Packet inside = ei::pand(valid, ei::pand(ei::pcmp_le(plo, d2), ei::pcmp_le(d2, phi)));
        below_lanes = ei::padd(below_lanes, ei::pand(is_below, one));
        if (ei::predux_any(inside)) AppendSelected(d2, inside, out, count);
      }
      below += static_cast<uint64_t>(ei::predux(below_lanes));
    }
    ws.below[ti] += below;
    ws.counts[ti] = count;
  });
  uint64_t below = 0, inside = 0;
  for (int t = 0; t < threads; ++t) {
    below += ws.below[t];
    inside += ws.counts[t];
  }
  if (rank < below || rank >= below + inside) return RadixSelectMedian(points, threads, ws);
  ws.merged.clear();
  for (int t = 0; t < threads; ++t) {
    ws.merged.insert(ws.merged.end(), ws.candidates[t].begin(), ws.candidates[t].begin() + ws.counts[t]);
  }
  std::nth_element(ws.merged.begin(), ws.merged.begin() + (rank - below), ws.merged.end());
  return static_cast<double>(ws.merged[rank - below]);
}

double MedianPairwiseSquaredDistance(const Points& points, int threads) {
  PairwiseMedianWorkspace<double> ws;
  ws.presize = false;  // used once: grow only as needed
  return MedianPairwiseSquaredDistance(points, threads, ws);
}

double SubsetPairMedian::operator()(const Points& points) {
  const int64_t n = points.rows(), d = points.cols();
  if (n < 2) return 0.0;
  if (!subsampled(n)) {
    exact_ws_.presize = false;
    return MedianPairwiseSquaredDistance(points, 1, exact_ws_);
  }
  if (drawn_for_ != n) {
    // Uniform over ordered pairs i != j, which is uniform over unordered ones.
    Rng rng(seed_ ^ 0x6d656469616e7061ULL);  // "medianpa": apart from the flow's own streams
    first_.resize(pairs_);
    second_.resize(pairs_);
    for (int64_t k = 0; k < pairs_; ++k) {
      const int64_t i = rng.UniformInt(n);
      int64_t j = rng.UniformInt(n - 1);
      if (j >= i) ++j;
      first_[k] = static_cast<int32_t>(i);
      second_[k] = static_cast<int32_t>(j);
    }
    drawn_for_ = n;
  }
  d2_.resize(pairs_);
  const double* p = points.data();
  for (int64_t k = 0; k < pairs_; ++k) {
    const double* a = p + first_[k] * d;
    const double* b = p + second_[k] * d;
    double s = 0;
    for (int64_t c = 0; c < d; ++c) s += (a[c] - b[c]) * (a[c] - b[c]);
    d2_[k] = s;
  }
  const int64_t rank = (pairs_ - 1) / 2;
  std::nth_element(d2_.begin(), d2_.begin() + rank, d2_.end());
  return d2_[rank];
}

template double MedianPairwiseSquaredDistance<float>(const PointsF&, int, PairwiseMedianWorkspace<float>&);
template double MedianPairwiseSquaredDistance<double>(const Points&, int, PairwiseMedianWorkspace<double>&);

}  // namespace sampled
