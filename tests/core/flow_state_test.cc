#include "core/flows/flow_state.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sampled {
namespace {

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
