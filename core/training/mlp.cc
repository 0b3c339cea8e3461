#include "core/training/mlp.h"

#include <algorithm>
#include <cmath>

#include <unsupported/Eigen/SpecialFunctions>

#include "absl/strings/str_cat.h"
#include "core/common/parallel.h"

namespace sampled::training {
namespace {

template <typename T>
using Mat = PointsT<T>;  // row-major
template <typename T>
using Arr = Eigen::Array<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows of the batch per block: each block runs through the whole network on one thread, its (k + 1)
// streams stacked, so every product is (k + 1) * kBlockRows rows tall. Fixed, so that the result does not
// depend on the thread count.
constexpr int64_t kBlockRows = 256;

constexpr double kLeakySlope = 0.2;
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

// out = sigma(a), written in place without temporaries. Every form is select-free where it calls exp:
// Eigen 3.4 evaluates a select coefficient by coefficient, which would make exp scalar (libm's expf).
// ELU is max(a, 0) + (exp(min(a, 0)) - 1): exactly a for a > 0 (exp(0) - 1 = 0).
template <typename In, typename Out>
void ActivateInto(Activation act, const In& a, Out&& out) {
  using T = typename In::Scalar;
  const T zero(0), one(1), half(0.5);
  switch (act) {
    case Activation::kElu: out = a.max(zero) + (a.min(zero).exp() - one); return;
    case Activation::kGelu: out = half * a * (one + (a * T(kInvSqrt2)).erf()); return;
    case Activation::kSilu: out = a / (one + (-a).exp()); return;
    case Activation::kTanh: out = a.tanh(); return;
    case Activation::kLeakyRelu: out = a.max(zero) + T(kLeakySlope) * a.min(zero); return;
  }
}

// sigma'(a) and, when `second` is not null, sigma''(a), into arrays whose storage is reused.
template <typename In>
void Derivatives(Activation act, const In& a, Arr<typename In::Scalar>* first, Arr<typename In::Scalar>* second) {
  using T = typename In::Scalar;
  const T zero(0), one(1), two(2), half(0.5);
  first->resize(a.rows(), a.cols());
  if (second) second->resize(a.rows(), a.cols());
  switch (act) {
    case Activation::kElu: {
      *first = a.min(zero).exp();  // 1 for a > 0
      if (second) *second = *first * (a < zero).template cast<T>();
      return;
    }
    case Activation::kGelu: {
      // first holds phi(a) while second is formed.
      *first = T(kInvSqrt2Pi) * (-half * a.square()).exp();
      if (second) *second = *first * (two - a.square());
      *first = half * (one + (a * T(kInvSqrt2)).erf()) + a * *first;
      return;
    }
    case Activation::kSilu: {
      *first = one / (one + (-a).exp());  // the logistic s, then s (1 + a (1 - s))
      if (second) *second = *first * (one - *first) * (two + a * (one - two * *first));
      *first = *first * (one + a * (one - *first));
      return;
    }
    case Activation::kTanh: {
      *first = a.tanh();
      if (second) *second = -two * *first * (one - first->square());
      *first = one - first->square();
      return;
    }
    case Activation::kLeakyRelu:
      *first = T(kLeakySlope) + T(1 - kLeakySlope) * (a > zero).template cast<T>();
      if (second) second->setZero();
      return;
  }
}

template <typename T>
Eigen::Map<const Mat<T>> Weights(const MlpShape& s, const std::vector<T>& p, int64_t l) {
  return Eigen::Map<const Mat<T>>(p.data() + s.weight_offset(l), s.out_of(l), s.in_of(l));
}

template <typename T>
Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> Bias(const MlpShape& s, const std::vector<T>& p, int64_t l) {
  return Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(p.data() + s.bias_offset(l), s.out_of(l));
}

// Block b's rows [r0, r0 + rows) and where its stacked (k + 1) x rows matrix starts in the cache.
struct Block {
  int64_t r0, rows, offset;
};

Block BlockOf(int64_t b, int64_t batch, int64_t streams) {
  const int64_t r0 = b * kBlockRows;
  return {r0, std::min(kBlockRows, batch - r0), streams * r0};
}

int64_t Blocks(int64_t batch) { return (batch + kBlockRows - 1) / kBlockRows; }

// dst = rows [r0, r0 + rows) of `m`, or its single row repeated (a direction shared by the whole batch).
template <typename T, typename Dst>
void CopyRows(const Mat<T>& m, int64_t r0, int64_t rows, Dst&& dst) {
  if (m.rows() == 1) {
    dst = m.topRows(1).replicate(rows, 1);
  } else {
    dst = m.middleRows(r0, rows);
  }
}

// The forward pass of one block through every layer: `in` holds the block's stacked input (streams x rows)
// and is overwritten layer by layer; when `cache` is set, each layer's stacked input and pre-activation are
// kept there at the block's offset.
template <typename T>
void ForwardBlock(const MlpShape& shape, const std::vector<T>& params, const Block& blk, int64_t streams,
                  Mat<T>& in, Mat<T>& pre, Arr<T>& first, MlpCacheT<T>* cache) {
  const int64_t layers = shape.layers(), rows = blk.rows;
  for (int64_t l = 0; l < layers; ++l) {
    const int64_t out = shape.out_of(l);
    pre.resize(streams * rows, out);
    pre.noalias() = in * Weights(shape, params, l).transpose();
    pre.topRows(rows).rowwise() += Bias(shape, params, l);
    if (cache != nullptr) {
      cache->inputs[l].middleRows(blk.offset, streams * rows) = in;
      cache->pre[l].middleRows(blk.offset, streams * rows) = pre;
    }
    if (l + 1 == layers) break;
    in.resize(streams * rows, out);
    ActivateInto(shape.activation, pre.topRows(rows).array(), in.topRows(rows).array());
    if (streams > 1) {
      Derivatives(shape.activation, pre.topRows(rows).array(), &first, nullptr);
      for (int64_t s = 1; s < streams; ++s) {
        in.middleRows(s * rows, rows).array() = first * pre.middleRows(s * rows, rows).array();
      }
    }
  }
}

template <typename T>
void Forward(const MlpShape& shape, const std::vector<T>& params, const Mat<T>& x,
             const std::vector<Mat<T>>* directions, int threads, MlpCacheT<T>* cache, Mat<T>* y,
             std::vector<Mat<T>>* tangents_out) {
  const int64_t batch = x.rows(), k = directions != nullptr ? static_cast<int64_t>(directions->size()) : 0;
  const int64_t streams = k + 1, layers = shape.layers();
  if (cache != nullptr) {
    cache->batch = batch;
    cache->tangents = k;
    cache->inputs.resize(layers);
    cache->pre.resize(layers);
    for (int64_t l = 0; l < layers; ++l) {
      cache->inputs[l].resize(streams * batch, shape.in_of(l));
      cache->pre[l].resize(streams * batch, shape.out_of(l));
    }
  }
  y->resize(batch, shape.out);
  if (tangents_out != nullptr) {
    tangents_out->resize(k);
    for (Mat<T>& t : *tangents_out) t.resize(batch, shape.out);
  }
  ParallelFor(Blocks(batch), 1, threads, [&](int64_t b0, int64_t b1, int) {
    // Per-thread scratch that keeps its capacity across calls (OpenMP's team is reused): a freed block of
    // this size goes back to the kernel and its pages fault in again on the next call (7% of a draw).
    thread_local Mat<T> in, pre;
    thread_local Arr<T> first;
    for (int64_t b = b0; b < b1; ++b) {
      const Block blk = BlockOf(b, batch, streams);
      in.resize(streams * blk.rows, shape.in);
      in.topRows(blk.rows) = x.middleRows(blk.r0, blk.rows);
      for (int64_t s = 1; s < streams; ++s) {
        CopyRows((*directions)[s - 1], blk.r0, blk.rows, in.middleRows(s * blk.rows, blk.rows));
      }
      ForwardBlock(shape, params, blk, streams, in, pre, first, cache);
      y->middleRows(blk.r0, blk.rows) = pre.topRows(blk.rows);
      for (int64_t s = 1; s < streams; ++s) {
        (*tangents_out)[s - 1].middleRows(blk.r0, blk.rows) = pre.middleRows(s * blk.rows, blk.rows);
      }
    }
  });
}

}  // namespace

const char* ActivationName(Activation a) {
  switch (a) {
    case Activation::kElu: return "elu";
    case Activation::kGelu: return "gelu";
    case Activation::kSilu: return "silu";
    case Activation::kTanh: return "tanh";
    case Activation::kLeakyRelu: return "leaky-relu";
  }
  return "?";
}

absl::StatusOr<Activation> ParseActivation(const std::string& name) {
  for (Activation a : {Activation::kElu, Activation::kGelu, Activation::kSilu, Activation::kTanh,
                       Activation::kLeakyRelu}) {
    if (name == ActivationName(a)) return a;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown activation '", name, "'; known: elu, gelu, silu, tanh, leaky-relu"));
}

bool IsTwiceDifferentiable(Activation a) { return a != Activation::kLeakyRelu; }

int64_t MlpShape::parameter_count() const { return weight_offset(layers()); }

int64_t MlpShape::weight_offset(int64_t l) const {
  int64_t offset = 0;
  for (int64_t k = 0; k < l; ++k) offset += out_of(k) * in_of(k) + out_of(k);
  return offset;
}

int64_t MlpShape::forward_multiply_adds() const {
  int64_t n = 0;
  for (int64_t l = 0; l < layers(); ++l) n += out_of(l) * in_of(l);
  return n;
}

std::vector<float> InitialParameters(const MlpShape& shape, Rng& rng) {
  std::vector<float> p(shape.parameter_count());
  for (int64_t l = 0; l < shape.layers(); ++l) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(shape.in_of(l)));
    const int64_t begin = shape.weight_offset(l), end = shape.bias_offset(l) + shape.out_of(l);
    for (int64_t i = begin; i < end; ++i) p[i] = static_cast<float>((2.0 * rng.Uniform() - 1.0) * bound);
  }
  return p;
}

template <typename T>
void UnitDirections(int64_t d, std::vector<PointsT<T>>* out) {
  out->resize(d);
  for (int64_t c = 0; c < d; ++c) {
    (*out)[c].setZero(1, d);
    (*out)[c](0, c) = T(1);
  }
}

template <typename T>
void DiagonalAdjoints(int64_t batch, int64_t d, double value, std::vector<PointsT<T>>* out) {
  out->resize(d);
  for (int64_t c = 0; c < d; ++c) {
    (*out)[c].setZero(batch, d);
    (*out)[c].col(c).setConstant(static_cast<T>(value));
  }
}

template <typename T>
void MlpForward(const MlpShape& shape, const std::vector<T>& params, const PointsT<T>& x, int threads,
                MlpCacheT<NoDeduce<T>>* cache, PointsT<T>* y) {
  Forward<T>(shape, params, x, nullptr, threads, cache, y, nullptr);
}

template <typename T>
void MlpForwardWithTangents(const MlpShape& shape, const std::vector<T>& params, const PointsT<T>& x,
                            const std::vector<PointsT<T>>& directions, int threads,
                            MlpCacheT<NoDeduce<T>>* cache, PointsT<T>* y, std::vector<PointsT<T>>* tangents_out) {
  Forward<T>(shape, params, x, &directions, threads, cache, y, tangents_out);
}

template <typename T>
void MlpBackward(const MlpShape& shape, const std::vector<T>& params, MlpCacheT<T>& cache, const PointsT<T>& dy,
                 const std::vector<PointsT<T>>& dtangents, int threads, std::vector<NoDeduce<T>>* dparams,
                 PointsT<NoDeduce<T>>* dx) {
  const int64_t batch = cache.batch, k = cache.tangents, layers = shape.layers(), count = shape.parameter_count();
  const int64_t streams = k + 1;
  // Without adjoints for the tangents, their reverse chain is zero: only the primal rows take part.
  const bool with_tangents = k > 0 && !dtangents.empty();
  const int64_t used = with_tangents ? streams : 1;
  const int64_t blocks = Blocks(batch);
  if (dparams != nullptr) {
    cache.partials.resize(blocks);
    for (auto& p : cache.partials) p.setZero(count);
  }
  if (dx != nullptr) dx->resize(batch, shape.in);
  ParallelFor(blocks, 1, threads, [&](int64_t b0, int64_t b1, int) {
    thread_local Mat<T> g, gin;  // per-thread scratch, as in Forward
    thread_local Arr<T> first, second;
    for (int64_t b = b0; b < b1; ++b) {
      const Block blk = BlockOf(b, batch, streams);
      const int64_t rows = blk.rows;
      // Adjoint of the output's stacked pre-activation.
      g.resize(used * rows, shape.out);
      g.topRows(rows) = dy.middleRows(blk.r0, rows);
      for (int64_t s = 1; s < used; ++s) g.middleRows(s * rows, rows) = dtangents[s - 1].middleRows(blk.r0, rows);
      for (int64_t l = layers - 1; l >= 0; --l) {
        const auto in = cache.inputs[l].middleRows(blk.offset, used * rows);
        if (dparams != nullptr) {
          T* part = cache.partials[b].data();
          Eigen::Map<Mat<T>> dw(part + shape.weight_offset(l), shape.out_of(l), shape.in_of(l));
          Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>> db(part + shape.bias_offset(l), shape.out_of(l));
          dw.noalias() += g.transpose() * in;
          db += g.topRows(rows).colwise().sum();
        }
        if (l == 0 && dx == nullptr) break;
        gin.resize(used * rows, shape.in_of(l));
        gin.noalias() = g * Weights(shape, params, l);
        if (l == 0) {
          dx->middleRows(blk.r0, rows) = gin.topRows(rows);
          break;
        }
        // Through h_l = sigma(a_{l-1}) and dh_l = sigma'(a_{l-1}) da_{l-1}.
        const auto pre = cache.pre[l - 1].middleRows(blk.offset, streams * rows);
        Derivatives(shape.activation, pre.topRows(rows).array(), &first, with_tangents ? &second : nullptr);
        g.resize(used * rows, shape.out_of(l - 1));
        g.topRows(rows).array() = first * gin.topRows(rows).array();
        for (int64_t s = 1; s < used; ++s) {
          g.middleRows(s * rows, rows).array() = first * gin.middleRows(s * rows, rows).array();
          g.topRows(rows).array() +=
              second * pre.middleRows(s * rows, rows).array() * gin.middleRows(s * rows, rows).array();
        }
      }
    }
  });
  if (dparams != nullptr) {
    if (dparams->empty()) dparams->assign(count, T(0));
    Eigen::Map<VectorT<T>> total(dparams->data(), count);
    for (int64_t b = 0; b < blocks; ++b) total += cache.partials[b];
  }
}

#define SAMPLED_INSTANTIATE_MLP(T)                                                                              \
  template void UnitDirections<T>(int64_t, std::vector<PointsT<T>>*);                                          \
  template void DiagonalAdjoints<T>(int64_t, int64_t, double, std::vector<PointsT<T>>*);                       \
  template void MlpForward<T>(const MlpShape&, const std::vector<T>&, const PointsT<T>&, int, MlpCacheT<T>*,   \
                              PointsT<T>*);                                                                     \
  template void MlpForwardWithTangents<T>(const MlpShape&, const std::vector<T>&, const PointsT<T>&,           \
                                          const std::vector<PointsT<T>>&, int, MlpCacheT<T>*, PointsT<T>*,      \
                                          std::vector<PointsT<T>>*);                                            \
  template void MlpBackward<T>(const MlpShape&, const std::vector<T>&, MlpCacheT<T>&, const PointsT<T>&,       \
                               const std::vector<PointsT<T>>&, int, std::vector<T>*, PointsT<T>*);
SAMPLED_INSTANTIATE_MLP(float)
SAMPLED_INSTANTIATE_MLP(double)
#undef SAMPLED_INSTANTIATE_MLP

}  // namespace sampled::training
