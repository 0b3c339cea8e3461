#include "core/kernels/pairwise_median.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/common/parallel.h"

namespace sampled {
namespace {

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

}  // namespace

template <typename Scalar>
double MedianPairwiseSquaredDistance(const PointsT<Scalar>& points, int threads,
                                     PairwiseMedianWorkspace<Scalar>& ws) {
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

double MedianPairwiseSquaredDistance(const Points& points, int threads) {
  PairwiseMedianWorkspace<double> ws;
  return MedianPairwiseSquaredDistance(points, threads, ws);
}

template double MedianPairwiseSquaredDistance<float>(const PointsF&, int, PairwiseMedianWorkspace<float>&);
template double MedianPairwiseSquaredDistance<double>(const Points&, int, PairwiseMedianWorkspace<double>&);

}  // namespace sampled
