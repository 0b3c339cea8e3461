#include "server/convert/convert.h"

#include <cmath>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/convert/status.h"

namespace sampled::server {
namespace {

TEST(ConvertTest, FlowSpecKeepsWhatIsSetAndLeavesTheRestUnset) {
  v1::StartFlowRequest r;
  r.set_session_id("s");
  r.set_target_id("t");
  v1::FlowSpec* s = r.mutable_spec();
  s->set_method("sd");
  s->set_particle_count(64);
  s->add_init_mean(-8);
  s->add_init_mean(8);
  s->set_steps(10);
  s->set_step_size(0.2);
  s->set_noise("cosine:10,0.5");
  s->set_dtype(v1::DTYPE_FLOAT32);
  s->set_seed(7);
  s->set_eval_every(5);
  s->add_eval_metrics("cfd");
  (*s->mutable_options())["leapfrog"] = "3";
  auto a = FromProto(r);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->session_id, "s");
  EXPECT_EQ(a->particle_count, 64);
  EXPECT_EQ(a->init_mean, (std::vector<double>{-8, 8}));
  EXPECT_FALSE(a->init_std.has_value());
  const FlowConfig& c = a->spec.config;
  EXPECT_EQ(c.method, "sd");
  EXPECT_EQ(*c.step_size, 0.2);
  EXPECT_EQ(*c.noise, "cosine:10,0.5");
  EXPECT_FALSE(c.bandwidth.has_value());
  EXPECT_FALSE(c.optimizer.has_value());
  EXPECT_FALSE(c.batch_size.has_value());
  EXPECT_EQ(*c.dtype, DType::kFloat32);
  EXPECT_EQ(c.seed, 7u);
  EXPECT_EQ(c.options.at("leapfrog"), "3");
  EXPECT_EQ(a->spec.steps, 10);
  EXPECT_EQ(a->spec.eval_every, 5);
  EXPECT_EQ(a->spec.eval_metrics, std::vector<std::string>{"cfd"});
}

TEST(ConvertTest, FlowSpecRefusesWhatCannotBeRight) {
  v1::StartFlowRequest r;
  EXPECT_THAT(FromProto(r).status().message(), ::testing::HasSubstr("spec.method is required"));
  r.mutable_spec()->set_method("sd");
  EXPECT_THAT(FromProto(r).status().message(), ::testing::HasSubstr("particle_count"));
  r.mutable_spec()->set_particle_count(-1);
  EXPECT_EQ(FromProto(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.mutable_spec()->set_particle_count(5);
  r.mutable_spec()->set_dtype(static_cast<v1::DType>(9));
  EXPECT_THAT(FromProto(r).status().message(), ::testing::HasSubstr("unknown dtype"));
}

TEST(ConvertTest, ParamsRoundTrip) {
  ParamMap p{{"means", {1, 2, 3, 4}}, {"std", {0.3}}};
  google::protobuf::Map<std::string, v1::Values> proto;
  ToProto(p, &proto);
  EXPECT_EQ(FromProto(proto), p);
}

TEST(ConvertTest, JobCarriesStateErrorAndOnlyApplicableStats) {
  JobSnapshot j;
  j.id = "j_1";
  j.state = JobState::kFailed;
  j.error = absl::FailedPreconditionError("diverged");
  StepStats s;
  s.step = 3;
  s.bandwidth = 0.5;
  j.last_stats = s;
  j.metrics = {{"cfd", 0.01}};
  j.create_time = absl::FromUnixSeconds(100);
  v1::Job out;
  ToProto(j, &out);
  EXPECT_EQ(out.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(out.error().code_name(), "FAILED_PRECONDITION");
  EXPECT_EQ(out.error().message(), "diverged");
  EXPECT_TRUE(out.last_stats().has_bandwidth());
  EXPECT_FALSE(out.last_stats().has_noise());
  EXPECT_FALSE(out.last_stats().has_acceptance_rate());
  EXPECT_EQ(out.metrics().at("cfd"), 0.01);
  EXPECT_EQ(out.create_time().seconds(), 100);
  EXPECT_FALSE(out.has_start_time());
}

TEST(StatusConvertTest, CodesAndMessagesSurvive) {
  const grpc::Status g = ToGrpcStatus(absl::ResourceExhaustedError("queue full"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(g.error_message(), "queue full");
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::NOT_FOUND), "NOT_FOUND");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::OK), "OK");
}

}  // namespace
}  // namespace sampled::server
