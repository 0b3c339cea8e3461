#include "core/flows/flow_state.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/targets/empirical_target.h"
#include "core/targets/target_family.h"

namespace sampled {
namespace {

// Hardening finding 11: the state is the whole state. Every method, batched where it can be, stepped six
// times in one go and three + three with the state serialised, parsed and handed to a freshly built flow in
// between, ends with the same particles bit for bit (batch and basis draws depend on the state's generator
// alone, not on scratch kept in the flow object).
class FlowResumeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FlowResumeTest, ARestoredFlowContinuesBitForBit) {
  const FlowMethod* method = *FindFlowMethod(GetParam());
  Rng data_rng(4);
  Points data(200, 2);
  data_rng.FillNormal(data.data(), data.size());
  std::shared_ptr<const Target> target;
  if (method->needs_samples) {
    target = std::shared_ptr<const Target>(*EmpiricalTarget::Create(data));
  } else {
    target = std::shared_ptr<const Target>(*CreateAnalyticTarget("gaussian", 2, {}));
  }
  FlowConfig c;
  c.method = method->name;
  c.seed = 8;
  c.threads = 1;
  if (method->fields.count(FlowField::kBatchSize)) c.batch_size = 32;
  InitialParticles init;
  init.count = 64;
  init.mean = {2.0};
  auto whole_flow = CreateFlow(c, target);
  ASSERT_TRUE(whole_flow.ok()) << whole_flow.status();
  FlowState whole = *MakeInitialState(init, 2, 8);
  StepStats stats;
  for (int k = 0; k < 6; ++k) ASSERT_TRUE((*whole_flow)->Step(whole, &stats).ok()) << k;

  auto first = CreateFlow(c, target);
  FlowState half = *MakeInitialState(init, 2, 8);
  for (int k = 0; k < 3; ++k) ASSERT_TRUE((*first)->Step(half, &stats).ok());
  absl::StatusOr<FlowState> restored = ParseFlowState(SerializeFlowState(half));
  ASSERT_TRUE(restored.ok()) << restored.status();
  auto second = CreateFlow(c, target);
  for (int k = 0; k < 3; ++k) ASSERT_TRUE((*second)->Step(*restored, &stats).ok());
  EXPECT_EQ(restored->step, 6);
  EXPECT_TRUE(restored->particles == whole.particles) << method->name;
  EXPECT_TRUE(restored->rng == whole.rng);
}

INSTANTIATE_TEST_SUITE_P(EveryMethod, FlowResumeTest,
                         ::testing::Values("sd", "svgd", "langevin", "mala", "hmc", "mmd", "mmd-gaussian", "wgf",
                                           "king", "ntking", "stein-king"),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           std::string n = i.param;
                           for (char& ch : n) ch = ch == '-' ? '_' : ch;
                           return n;
                         });

TEST(FlowStateTest, SerializeRoundTrip) {
  InitialParticles init;
  init.count = 17;
  init.mean = {1.0, -2.0, 0.5};
  init.std = 0.3;
  auto state = MakeInitialState(init, 3, 9);
  ASSERT_TRUE(state.ok());
  state->step = 42;
  state->optimizer_state = Points::Constant(17, 3, 0.25);
  state->rng.NextU64();
  state->values["auto_step_size"] = 0.25;
  const std::string bytes = SerializeFlowState(*state);
  auto back = ParseFlowState(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->particles, state->particles);
  EXPECT_EQ(back->optimizer_state, state->optimizer_state);
  EXPECT_EQ(back->step, 42);
  EXPECT_TRUE(back->rng == state->rng);
  EXPECT_EQ(back->values, state->values);
  EXPECT_FALSE(ParseFlowState(bytes.substr(0, bytes.size() - 3)).ok());
  EXPECT_FALSE(ParseFlowState("garbage").ok());
  EXPECT_FALSE(ParseFlowState(bytes + "x").ok());
}

TEST(FlowStateTest, InitialParticlesAreSeededAndShaped) {
  InitialParticles init;
  init.count = 5000;
  init.mean = {-8.0, 8.0};
  auto a = MakeInitialState(init, 2, 1), b = MakeInitialState(init, 2, 1);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->particles, b->particles);
  EXPECT_NEAR(a->particles.col(0).mean(), -8.0, 5 / std::sqrt(5000.0));
  EXPECT_NEAR(a->particles.col(1).mean(), 8.0, 5 / std::sqrt(5000.0));
}

TEST(FlowStateTest, BadInitialParticlesAreRefused) {
  InitialParticles init;
  EXPECT_THAT(MakeInitialState(init, 2, 0).status().message(), ::testing::HasSubstr("particle count"));
  init.count = 3;
  init.mean = {1, 2, 3};
  EXPECT_THAT(MakeInitialState(init, 2, 0).status().message(), ::testing::HasSubstr("1 or 2 values"));
  init.mean = {};
  init.std = -1;
  EXPECT_FALSE(MakeInitialState(init, 2, 0).ok());
  Points given(2, 3);
  given.setZero();
  InitialParticles g;
  g.given = &given;
  EXPECT_THAT(MakeInitialState(g, 2, 0).status().message(), ::testing::HasSubstr("dimension 3"));
  given(1, 1) = NAN;
  EXPECT_THAT(MakeInitialState(g, 3, 0).status().message(), ::testing::HasSubstr("non-finite"));
}

}  // namespace
}  // namespace sampled
