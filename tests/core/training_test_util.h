// What the trainer tests share: a data target of given points, and a run (settings, trainer, initial state)
// made from a config the way the server makes one.
#ifndef SAMPLED_TESTS_CORE_TRAINING_TEST_UTIL_H_
#define SAMPLED_TESTS_CORE_TRAINING_TEST_UTIL_H_

#include <memory>
#include <utility>

#include <gtest/gtest.h>

#include "core/common/points.h"
#include "core/targets/empirical_target.h"
#include "core/training/trainer.h"

namespace sampled::training::test_util {

inline std::shared_ptr<const Target> Data(const Points& points) {
  auto t = EmpiricalTarget::Create(Points(points));
  EXPECT_TRUE(t.ok()) << t.status();
  return std::shared_ptr<const Target>(std::move(*t));
}

struct TrainRun {
  TrainSettings settings;
  std::unique_ptr<Trainer> trainer;
  TrainingState state;
};

inline TrainRun MakeRun(const TrainConfig& c, std::shared_ptr<const Target> data) {
  TrainRun r;
  auto s = ResolveTrainConfig(c, *data);
  EXPECT_TRUE(s.ok()) << s.status();
  r.settings = *s;
  auto t = CreateTrainer(r.settings, data);
  EXPECT_TRUE(t.ok()) << t.status();
  r.trainer = std::move(*t);
  r.state = *MakeInitialTrainingState(r.settings);
  return r;
}

}  // namespace sampled::training::test_util

#endif  // SAMPLED_TESTS_CORE_TRAINING_TEST_UTIL_H_
