#include "core/training/mlp.h"

#include <algorithm>
#include <cmath>

#include <unsupported/Eigen/SpecialFunctions>

#include "absl/strings/str_cat.h"
#include "core/common/parallel.h"

namespace sampled::training {
namespace {

using MatF = PointsF;  // row-major
using ArrF = Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMapF = Eigen::Map<const MatF>;

// Rows of the batch per block: each block runs through the whole network on one thread, its (k + 1)
// streams stacked, so every product is (k + 1) * kBlockRows rows tall. Fixed, so that the result does not
// depend on the thread count.
constexpr int64_t kBlockRows = 256;

constexpr float kLeakySlope = 0.2f;
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

// h = sigma(a).
template <typename In>
ArrF Activate(Activation act, const In& a) {
  switch (act) {
    case Activation::kElu: return (a > 0.0f).select(a, a.exp() - 1.0f);
    case Activation::kGelu: return 0.5f * a * (1.0f + (a * kInvSqrt2).erf());
    case Activation::kSilu: return a / (1.0f + (-a).exp());
    case Activation::kTanh: return a.tanh();
    case Activation::kLeakyRelu: return (a > 0.0f).select(a, kLeakySlope * a);
  }
  return a;
}

// sigma'(a) and, when `second` is not null, sigma''(a).
template <typename In>
void Derivatives(Activation act, const In& a, ArrF* first, ArrF* second) {
  switch (act) {
    case Activation::kElu: {
      const ArrF e = a.exp();
      *first = (a > 0.0f).select(ArrF::Ones(a.rows(), a.cols()), e);
      if (second) *second = (a > 0.0f).select(ArrF::Zero(a.rows(), a.cols()), e);
      return;
    }
    case Activation::kGelu: {
      const ArrF phi = kInvSqrt2Pi * (-0.5f * a.square()).exp();
      *first = 0.5f * (1.0f + (a * kInvSqrt2).erf()) + a * phi;
      if (second) *second = phi * (2.0f - a.square());
      return;
    }
    case Activation::kSilu: {
      const ArrF s = 1.0f / (1.0f + (-a).exp());
      *first = s * (1.0f + a * (1.0f - s));
      if (second) *second = s * (1.0f - s) * (2.0f + a * (1.0f - 2.0f * s));
      return;
    }
    case Activation::kTanh: {
      const ArrF t = a.tanh();
      *first = 1.0f - t.square();
      if (second) *second = -2.0f * t * (1.0f - t.square());
      return;
    }
    case Activation::kLeakyRelu:
      *first = (a > 0.0f).select(ArrF::Ones(a.rows(), a.cols()), ArrF::Constant(a.rows(), a.cols(), kLeakySlope));
      if (second) *second = ArrF::Zero(a.rows(), a.cols());
      return;
  }
}

ConstMapF Weights(const MlpShape& s, const std::vector<float>& p, int64_t l) {
  return ConstMapF(p.data() + s.weight_offset(l), s.out_of(l), s.in_of(l));
}

Eigen::Map<const Eigen::RowVectorXf> Bias(const MlpShape& s, const std::vector<float>& p, int64_t l) {
  return Eigen::Map<const Eigen::RowVectorXf>(p.data() + s.bias_offset(l), s.out_of(l));
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
template <typename Dst>
void CopyRows(const MatF& m, int64_t r0, int64_t rows, Dst&& dst) {
  if (m.rows() == 1) {
    dst = m.topRows(1).replicate(rows, 1);
  } else {
    dst = m.middleRows(r0, rows);
  }
}

// The forward pass of one block through every layer: `in` holds the block's stacked input (streams x rows)
// and is overwritten layer by layer; when `cache` is set, each layer's stacked input and pre-activation are
// kept there at the block's offset.
void ForwardBlock(const MlpShape& shape, const std::vector<float>& params, const Block& blk, int64_t streams,
                  MatF& in, MatF& pre, MlpCache* cache) {
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
    in.topRows(rows) = Activate(shape.activation, pre.topRows(rows).array()).matrix();
    if (streams > 1) {
      ArrF first;
      Derivatives(shape.activation, pre.topRows(rows).array(), &first, nullptr);
      for (int64_t s = 1; s < streams; ++s) {
        in.middleRows(s * rows, rows).array() = first * pre.middleRows(s * rows, rows).array();
      }
    }
  }
}

void Forward(const MlpShape& shape, const std::vector<float>& params, const PointsF& x,
             const std::vector<PointsF>* directions, int threads, MlpCache* cache, PointsF* y,
             std::vector<PointsF>* tangents_out) {
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
    for (PointsF& t : *tangents_out) t.resize(batch, shape.out);
  }
  ParallelFor(Blocks(batch), 1, threads, [&](int64_t b0, int64_t b1, int) {
    MatF in, pre;
    for (int64_t b = b0; b < b1; ++b) {
      const Block blk = BlockOf(b, batch, streams);
      in.resize(streams * blk.rows, shape.in);
      in.topRows(blk.rows) = x.middleRows(blk.r0, blk.rows);
      for (int64_t s = 1; s < streams; ++s) {
        CopyRows((*directions)[s - 1], blk.r0, blk.rows, in.middleRows(s * blk.rows, blk.rows));
      }
      ForwardBlock(shape, params, blk, streams, in, pre, cache);
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

void MlpForward(const MlpShape& shape, const std::vector<float>& params, const PointsF& x, int threads,
                MlpCache* cache, PointsF* y) {
  Forward(shape, params, x, nullptr, threads, cache, y, nullptr);
}

void MlpForwardWithTangents(const MlpShape& shape, const std::vector<float>& params, const PointsF& x,
                            const std::vector<PointsF>& directions, int threads, MlpCache* cache, PointsF* y,
                            std::vector<PointsF>* tangents_out) {
  Forward(shape, params, x, &directions, threads, cache, y, tangents_out);
}

void MlpBackward(const MlpShape& shape, const std::vector<float>& params, MlpCache& cache, const PointsF& dy,
                 const std::vector<PointsF>& dtangents, int threads, std::vector<float>* dparams, PointsF* dx) {
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
    MatF g, gin;
    ArrF first, second;
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
          float* part = cache.partials[b].data();
          Eigen::Map<MatF> dw(part + shape.weight_offset(l), shape.out_of(l), shape.in_of(l));
          Eigen::Map<Eigen::RowVectorXf> db(part + shape.bias_offset(l), shape.out_of(l));
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
    if (dparams->empty()) dparams->assign(count, 0.0f);
    Eigen::Map<Eigen::VectorXf> total(dparams->data(), count);
    for (int64_t b = 0; b < blocks; ++b) total += cache.partials[b];
  }
}

}  // namespace sampled::training
