// The multilayer perceptrons the trainers fit (003 Sec. 4.1: the implicit sampler g(z) and the score
// network s(x)), with hand-written derivatives: the forward pass, the gradient of a loss of the output with
// respect to the parameters and the input, and forward-mode tangents of the output along given input
// directions (the exact divergence, or a projection of the Jacobian) whose own derivatives the reverse pass
// carries too (what score matching's parameter gradient and Fisher training's x-gradient of div s need).
//
// Layout (as torch.nn.Linear): layer l maps h_l (in_l) to a_l = W_l h_l + b_l (out_l), W_l row-major
// out_l x in_l; hidden layers apply the activation, the last is linear. Points are rows: a batch is B x in.
// The parameters are one flat vector, W_0, b_0, W_1, b_1, ...
//
// Computed in the parameters' type (float32 for training and draws; float64 for the numerics check against
// peer_train.py at 1e-9, through the same code; both instantiated in mlp.cc) on our threads (Eigen GEMMs in fixed blocks of rows, so results do not depend on the
// thread count), never through LibTorch's BLAS: a Sample must not wait behind a training job's GEMMs in a
// BLAS that serialises callers.
#ifndef SAMPLED_CORE_TRAINING_MLP_H_
#define SAMPLED_CORE_TRAINING_MLP_H_

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/points.h"
#include "core/common/rng.h"

namespace sampled::training {

enum class Activation { kElu, kGelu, kSilu, kTanh, kLeakyRelu };

// "elu", "gelu" (the exact erf form), "silu", "tanh", "leaky-relu" (slope 0.2).
const char* ActivationName(Activation a);
// INVALID_ARGUMENT listing the names for anything else.
absl::StatusOr<Activation> ParseActivation(const std::string& name);
// False for activations without a second derivative (leaky-relu): a network differentiated in x twice
// (Fisher training's score network) refuses them.
bool IsTwiceDifferentiable(Activation a);

// The shape of a network: input and output widths, hidden widths, activation.
struct MlpShape {
  int64_t in = 0;
  int64_t out = 0;
  std::vector<int64_t> hidden;
  Activation activation = Activation::kElu;

  int64_t layers() const { return static_cast<int64_t>(hidden.size()) + 1; }
  int64_t in_of(int64_t l) const { return l == 0 ? in : hidden[l - 1]; }
  int64_t out_of(int64_t l) const { return l + 1 == layers() ? out : hidden[l]; }
  // Number of parameters, and where layer l's weights and bias start in the flat vector.
  int64_t parameter_count() const;
  int64_t weight_offset(int64_t l) const;
  int64_t bias_offset(int64_t l) const { return weight_offset(l) + out_of(l) * in_of(l); }
  // Multiply-adds of one forward pass per row (the FLOP count of a draw is twice this).
  int64_t forward_multiply_adds() const;
  friend bool operator==(const MlpShape& a, const MlpShape& b) {
    return a.in == b.in && a.out == b.out && a.hidden == b.hidden && a.activation == b.activation;
  }
};

// torch.nn.Linear's initialisation: weights and biases ~ U(-1/sqrt(in), 1/sqrt(in)), from `rng`.
std::vector<float> InitialParameters(const MlpShape& shape, Rng& rng);

// What a pass keeps for its reverse pass, reused across calls (capacities only grow). The k tangent
// streams travel stacked under the primal one: rows [s B, (s + 1) B) of each matrix belong to stream s
// (0: primal). Not thread-safe.
// Spelled in a parameter, keeps T from being deduced from it (so that nullptr can be passed there).
template <typename T>
using NoDeduce = typename std::common_type<T>::type;

template <typename T>
struct MlpCacheT {
  int64_t batch = 0, tangents = 0;
  std::vector<PointsT<T>> inputs;  // per layer: its stacked input (h_l and the tangents dh_l)
  std::vector<PointsT<T>> pre;     // per layer: its stacked pre-activation (a_l and da_l)
  // Per block of rows: a parameter gradient (aligned storage: Eigen's products round differently for
  // differently aligned destinations, and the partials must not depend on the allocator).
  std::vector<VectorT<T>> partials;
};
using MlpCache = MlpCacheT<float>;

// y = f(x) (B x out). `cache` may be null when no reverse pass follows.
template <typename T>
void MlpForward(const MlpShape& shape, const std::vector<T>& params, const PointsT<T>& x, int threads,
                MlpCacheT<NoDeduce<T>>* cache, PointsT<T>* y);

// The forward pass with tangents along `directions` (each B x in, the same for every row when it has one
// row): `tangents_out` gets dy = J(x) v per direction (each B x out).
template <typename T>
void MlpForwardWithTangents(const MlpShape& shape, const std::vector<T>& params, const PointsT<T>& x,
                            const std::vector<PointsT<T>>& directions, int threads,
                            MlpCacheT<NoDeduce<T>>* cache, PointsT<T>* y, std::vector<PointsT<T>>* tangents_out);

// The exact divergence's tangent set-up, shared by score matching and Fisher training: the d coordinate
// directions e_c (one row each: shared by every row of the batch), and the adjoints dL/d(J e_c) of a loss
// `value` * sum_i (J(x_i) e_c)_c, i.e. column c set to `value` (batch x d each). Reuses `out`'s storage.
template <typename T>
void UnitDirections(int64_t d, std::vector<PointsT<T>>* out);
template <typename T>
void DiagonalAdjoints(int64_t batch, int64_t d, double value, std::vector<PointsT<T>>* out);

// The reverse pass of the last forward pass held in `cache`, for a scalar loss L with dL/dy = `dy` and, when
// the pass had tangents, dL/d(dy_k) = `dtangents[k]` (empty: zero). Adds dL/dparams into `dparams` when it
// is not null (resized to the parameter count and zeroed first when empty) and writes dL/dx into `dx` when
// it is not null.
template <typename T>
void MlpBackward(const MlpShape& shape, const std::vector<T>& params, MlpCacheT<T>& cache, const PointsT<T>& dy,
                 const std::vector<PointsT<T>>& dtangents, int threads, std::vector<NoDeduce<T>>* dparams,
                 PointsT<NoDeduce<T>>* dx);

}  // namespace sampled::training

#endif  // SAMPLED_CORE_TRAINING_MLP_H_
