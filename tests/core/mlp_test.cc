#include "core/training/mlp.h"

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/common/rng.h"
#include "tests/core/torch_mlp_reference.h"

namespace sampled::training {
namespace {

class MlpTest : public ::testing::TestWithParam<Activation> {};

// The forward pass, the tangents J v along per-row and shared directions, and the reverse pass (parameters
// and input) of L = sum C .* y + sum_k D_k .* (J v_k) in T, against float64 autograd on the same inputs:
// relative error below `value_bound` (outputs, tangents) and `grad_bound` (gradients).
template <typename T>
void CheckAgainstAutograd(Activation act, double value_bound, double grad_bound) {
  const MlpShape shape{3, 2, {7, 5}, act};
  Rng rng(1);
  const std::vector<float> init = InitialParameters(shape, rng);
  const std::vector<T> params(init.begin(), init.end());
  const int64_t batch = 300;  // two blocks of rows, the second partial
  const PointsT<T> x = Random(batch, 3, 2).cast<T>();
  const std::vector<PointsT<T>> dirs = {Random(batch, 3, 3).cast<T>(), Random(1, 3, 4).cast<T>()};
  const PointsT<T> c = Random(batch, 2, 5).cast<T>(), d0 = Random(batch, 2, 6).cast<T>(),
                   d1 = Random(batch, 2, 7).cast<T>();

  MlpCacheT<T> cache;
  PointsT<T> y;
  std::vector<PointsT<T>> tangents;
  MlpForwardWithTangents(shape, params, x, dirs, 2, &cache, &y, &tangents);
  std::vector<T> dparams;
  PointsT<T> dx;
  MlpBackward(shape, params, cache, c, {d0, d1}, 2, &dparams, &dx);

  const std::string what = std::string(ActivationName(act)) + (std::is_same_v<T, float> ? " float32" : " float64");
  Reference ref = MakeReference(shape, params);
  torch::Tensor tx = ToTorch(x).requires_grad_(true);
  torch::Tensor ty = ref.Forward(tx, shape);
  EXPECT_LT(MaxRelError(ToTorch(y), ty), value_bound) << what;
  // J v per row: the gradient of <ty, u> in x is J^T u; J v row by row from the Jacobian's rows.
  std::vector<torch::Tensor> jrows;  // d y_o / d x, each batch x in
  for (int64_t o = 0; o < 2; ++o) {
    jrows.push_back(torch::autograd::grad({ty.select(1, o).sum()}, {tx}, {}, /*retain_graph=*/true,
                                          /*create_graph=*/true)[0]);
  }
  torch::Tensor loss = (ty * ToTorch(c)).sum();
  const std::vector<PointsT<T>> ds = {d0, d1};
  for (size_t k = 0; k < dirs.size(); ++k) {
    torch::Tensor v = ToTorch(dirs[k]).expand({batch, 3});
    torch::Tensor jv = torch::stack({(jrows[0] * v).sum(1), (jrows[1] * v).sum(1)}, 1);
    EXPECT_LT(MaxRelError(ToTorch(tangents[k]), jv), value_bound) << what << " tangent " << k;
    loss = loss + (jv * ToTorch(ds[k])).sum();
  }
  std::vector<torch::Tensor> inputs = {tx};
  for (int64_t l = 0; l < shape.layers(); ++l) {
    inputs.push_back(ref.w[l]);
    inputs.push_back(ref.b[l]);
  }
  std::vector<torch::Tensor> grads = torch::autograd::grad({loss}, inputs);
  EXPECT_LT(MaxRelError(ToTorch(dx), grads[0]), grad_bound) << what << " dx";
  for (int64_t l = 0; l < shape.layers(); ++l) {
    std::vector<double> dw(dparams.begin() + shape.weight_offset(l), dparams.begin() + shape.bias_offset(l));
    std::vector<double> db(dparams.begin() + shape.bias_offset(l),
                           dparams.begin() + shape.bias_offset(l) + shape.out_of(l));
    EXPECT_LT(MaxRelError(torch::tensor(dw, torch::kFloat64).reshape_as(grads[1 + 2 * l]), grads[1 + 2 * l]),
              grad_bound)
        << what << " W" << l;
    EXPECT_LT(MaxRelError(torch::tensor(db, torch::kFloat64), grads[2 + 2 * l]), grad_bound) << what << " b" << l;
  }
}

TEST_P(MlpTest, MatchesAutogradWithTangents) {
  CheckAgainstAutograd<float>(GetParam(), 1e-5, 1e-4);
  CheckAgainstAutograd<double>(GetParam(), 1e-12, 1e-11);
}

INSTANTIATE_TEST_SUITE_P(EveryActivation, MlpTest,
                         ::testing::Values(Activation::kElu, Activation::kGelu, Activation::kSilu, Activation::kTanh,
                                           Activation::kLeakyRelu),
                         [](const auto& info) {
                           std::string n = ActivationName(info.param);
                           for (char& ch : n) if (ch == '-') ch = '_';
                           return n;
                         });

// Without tangents the reverse pass is plain backpropagation; and the threads never change a bit.
TEST(MlpTest, ThreadCountDoesNotChangeTheResult) {
  const MlpShape shape{2, 2, {64, 64, 64}, Activation::kElu};
  Rng rng(9);
  const std::vector<float> params = InitialParameters(shape, rng);
  const PointsF x = Random(1000, 2, 10), dy = Random(1000, 2, 11);
  std::vector<float> g1, g2;
  PointsF y1, y2, dx1, dx2;
  MlpCache c1, c2;
  MlpForward(shape, params, x, 1, &c1, &y1);
  MlpBackward(shape, params, c1, dy, {}, 1, &g1, &dx1);
  MlpForward(shape, params, x, 2, &c2, &y2);
  MlpBackward(shape, params, c2, dy, {}, 2, &g2, &dx2);
  EXPECT_EQ(y1, y2);
  EXPECT_EQ(dx1, dx2);
  EXPECT_EQ(g1, g2);
}

TEST(MlpTest, ShapesAndNames) {
  const MlpShape s{2, 3, {400, 400, 400}, Activation::kGelu};
  EXPECT_EQ(s.layers(), 4);
  EXPECT_EQ(s.parameter_count(), 2 * 400 + 400 + 2 * (400 * 400 + 400) + 400 * 3 + 3);
  EXPECT_EQ(s.forward_multiply_adds(), 2 * 400 + 2 * 400 * 400 + 400 * 3);
  EXPECT_EQ(*ParseActivation("leaky-relu"), Activation::kLeakyRelu);
  EXPECT_FALSE(ParseActivation("relu").ok());
  EXPECT_FALSE(IsTwiceDifferentiable(Activation::kLeakyRelu));
  EXPECT_TRUE(IsTwiceDifferentiable(Activation::kElu));
}

}  // namespace
}  // namespace sampled::training
