#include "core/training/mlp.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/common/rng.h"
#include "tests/core/torch_mlp_reference.h"

namespace sampled::training {
namespace {

class MlpTest : public ::testing::TestWithParam<Activation> {};

// The forward pass, the tangents J v along per-row and shared directions, and the reverse pass (parameters
// and input) of L = sum C .* y + sum_k D_k .* (J v_k), against float64 autograd: relative error below 1e-4.
TEST_P(MlpTest, MatchesAutogradWithTangents) {
  const Activation act = GetParam();
  const MlpShape shape{3, 2, {7, 5}, act};
  Rng rng(1);
  const std::vector<float> params = InitialParameters(shape, rng);
  const int64_t batch = 300;  // two blocks of rows, the second partial
  const PointsF x = Random(batch, 3, 2);
  const std::vector<PointsF> dirs = {Random(batch, 3, 3), Random(1, 3, 4)};
  const PointsF c = Random(batch, 2, 5), d0 = Random(batch, 2, 6), d1 = Random(batch, 2, 7);

  MlpCache cache;
  PointsF y;
  std::vector<PointsF> tangents;
  MlpForwardWithTangents(shape, params, x, dirs, 2, &cache, &y, &tangents);
  std::vector<float> dparams;
  PointsF dx;
  MlpBackward(shape, params, cache, c, {d0, d1}, 2, &dparams, &dx);

  Reference ref = MakeReference(shape, params);
  torch::Tensor tx = ToTorch(x).requires_grad_(true);
  torch::Tensor ty = ref.Forward(tx, shape);
  EXPECT_LT(MaxRelError(ToTorch(y), ty), 1e-5) << ActivationName(act);
  // J v per row: the gradient of <ty, u> in x is J^T u; J v row by row from the Jacobian's rows.
  std::vector<torch::Tensor> jrows;  // d y_o / d x, each batch x in
  for (int64_t o = 0; o < 2; ++o) {
    jrows.push_back(torch::autograd::grad({ty.select(1, o).sum()}, {tx}, {}, /*retain_graph=*/true,
                                          /*create_graph=*/true)[0]);
  }
  torch::Tensor loss = (ty * ToTorch(c)).sum();
  const std::vector<PointsF> ds = {d0, d1};
  for (size_t k = 0; k < dirs.size(); ++k) {
    torch::Tensor v = ToTorch(dirs[k]).expand({batch, 3});
    torch::Tensor jv = torch::stack({(jrows[0] * v).sum(1), (jrows[1] * v).sum(1)}, 1);
    EXPECT_LT(MaxRelError(ToTorch(tangents[k]), jv), 1e-5) << ActivationName(act) << " tangent " << k;
    loss = loss + (jv * ToTorch(ds[k])).sum();
  }
  std::vector<torch::Tensor> inputs = {tx};
  for (int64_t l = 0; l < shape.layers(); ++l) {
    inputs.push_back(ref.w[l]);
    inputs.push_back(ref.b[l]);
  }
  std::vector<torch::Tensor> grads = torch::autograd::grad({loss}, inputs);
  EXPECT_LT(MaxRelError(ToTorch(dx), grads[0]), 1e-4) << ActivationName(act) << " dx";
  for (int64_t l = 0; l < shape.layers(); ++l) {
    std::vector<float> dw(dparams.begin() + shape.weight_offset(l), dparams.begin() + shape.bias_offset(l));
    std::vector<float> db(dparams.begin() + shape.bias_offset(l),
                          dparams.begin() + shape.bias_offset(l) + shape.out_of(l));
    EXPECT_LT(MaxRelError(torch::tensor(dw, torch::kFloat64).reshape_as(grads[1 + 2 * l]), grads[1 + 2 * l]), 1e-4)
        << ActivationName(act) << " W" << l;
    EXPECT_LT(MaxRelError(torch::tensor(db, torch::kFloat64), grads[2 + 2 * l]), 1e-4) << ActivationName(act) << " b" << l;
  }
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
