#include "core/training/sampler.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/rng.h"

namespace sampled::training {
namespace {

using ::testing::HasSubstr;

SamplerModel Model() {
  SamplerModel m;
  m.shape = MlpShape{2, 2, {32, 32}, Activation::kGelu};
  Rng rng(4);
  m.final_params = InitialParameters(m.shape, rng);
  m.best_params = InitialParameters(m.shape, rng);
  m.provenance_json = "{\"method\": " + JsonString("kl \"quoted\"\n") + "}";
  return m;
}

// The n draws of a seed are the first n rows of one stream: blocks computed apart, in any order or thread
// count, give the same bits; another seed gives other draws.
TEST(SamplerTest, DrawsDependOnlyOnSeedAndRow) {
  const SamplerModel m = Model();
  PointsF all, tail, one_thread, other;
  Draw(m.shape, m.final_params, 42, 3 * kDrawBlockRows, 2, &all);
  DrawBlocks(m.shape, m.final_params, 42, 1, 2, 1, &tail);
  EXPECT_EQ(PointsF(all.bottomRows(2 * kDrawBlockRows)), tail);
  Draw(m.shape, m.final_params, 42, 1500, 1, &one_thread);
  EXPECT_EQ(PointsF(all.topRows(1500)), one_thread);
  Draw(m.shape, m.final_params, 43, 1500, 2, &other);
  EXPECT_NE(one_thread, other);
}

TEST(SamplerTest, FileRoundTrips) {
  SamplerModel m = Model();
  m.last_finite = true;
  auto back = DecodeSamplerFile(EncodeSamplerFile(m));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->shape, m.shape);
  EXPECT_EQ(back->final_params, m.final_params);
  EXPECT_EQ(back->best_params, m.best_params);
  EXPECT_EQ(back->provenance_json, m.provenance_json);
  EXPECT_TRUE(back->last_finite);
}

TEST(SamplerTest, BadFilesAreRefusedWithTheReason) {
  const std::string good = EncodeSamplerFile(Model());
  auto message = [](const std::string& bytes) {
    auto r = DecodeSamplerFile(bytes);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(r.status().message());
  };
  EXPECT_THAT(message("hello"), HasSubstr("not a sampler file"));
  EXPECT_THAT(message(good.substr(0, good.size() / 2)), HasSubstr("checksum"));
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x10;
  EXPECT_THAT(message(flipped), HasSubstr("checksum"));
  std::string version = good;
  version[11] = 9;
  EXPECT_THAT(message(version), HasSubstr("version 9"));
  EXPECT_THAT(message(good.substr(0, 15)), HasSubstr("truncated"));
}

// The run's result travels in the provenance and reads back; anything else reads as "not said".
TEST(SamplerFileTest, TrainingResultRoundTripsAndGarbageReadsAsUnknown) {
  const std::string p = WithTrainingResult("{\"build\": \"x\", \"method\": \"kl\"}", {"fisher", 1200, 800});
  EXPECT_EQ(p, "{\"build\": \"x\", \"method\": \"kl\", \"result\": {\"method\": \"fisher\", \"steps\": 1200, "
               "\"best_step\": 800}}");
  const TrainingResult r = ReadTrainingResult(p);
  EXPECT_EQ(r.method, "fisher");
  EXPECT_EQ(r.steps, 1200);
  EXPECT_EQ(r.best_step, 800);
  EXPECT_EQ(ReadTrainingResult(WithTrainingResult("{}", {"kl", 3, -1})).steps, 3);
  for (const std::string bad : {"", "{", "not json", "{\"result\": {\"method\": \"kl", "{\"result\": {\"method\": "
                                "\"k l\", \"steps\": 1, \"best_step\": 0}}", "{\"result\": {\"method\": \"kl\", "
                                "\"steps\": -4, \"best_step\": 0}}", "{\"result\": {\"method\": \"kl\", \"steps\": x}}"}) {
    EXPECT_EQ(ReadTrainingResult(bad).method, "") << bad;
  }
}

}  // namespace
}  // namespace sampled::training
