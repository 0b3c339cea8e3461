// The "blr" posterior (core/targets/blr_target.h): its log density against the formula written out
// directly, its score and Hessian against central differences, its autograd form against both, the
// minibatch's determinism and scaling, and the definitions it refuses.
#include "core/targets/blr_target.h"

#include <cmath>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/common/rng.h"
#include "core/targets/empirical_target.h"
#include "core/targets/target_family.h"
#include "core/targets/torch_density.h"
#include "core/training/target_terms.h"

namespace sampled {
namespace {

using ::testing::HasSubstr;

// n rows of p features (the last a ones column: an intercept) and labels from a logistic model.
Points Data(int64_t n, int64_t p, uint64_t seed) {
  Rng rng(seed);
  Points d(n, p + 1);
  rng.FillNormal(d.data(), d.size());
  d.col(p - 1).setOnes();
  for (int64_t i = 0; i < n; ++i) {
    const double t = d.row(i).head(p).sum() * 0.5;
    d(i, p) = rng.Uniform() < 1.0 / (1.0 + std::exp(-t)) ? 1.0 : 0.0;
  }
  return d;
}

std::unique_ptr<EmpiricalTarget> DataTarget(const Points& d) { return *EmpiricalTarget::Create(d); }

Points Theta(int64_t m, int64_t p, uint64_t seed) {
  Rng rng(seed);
  Points t(m, p + 1);
  rng.FillNormal(t.data(), t.size());
  t.leftCols(p) *= 0.5;
  t.col(p) = t.col(p) * 0.5;  // log alpha near 0
  return t;
}

// The log posterior of one theta written out term by term (natural log, up to the same constant).
double DirectLogPosterior(const Points& data, const Eigen::RowVectorXd& theta, double a0, double b0) {
  const int64_t p = data.cols() - 1;
  const double s = theta(p), alpha = std::exp(s);
  double loglik = 0;
  for (int64_t i = 0; i < data.rows(); ++i) {
    const double t = data.row(i).head(p).dot(theta.head(p));
    const double prob = 1.0 / (1.0 + std::exp(-t));
    loglik += data(i, p) == 1.0 ? std::log(prob) : std::log(1.0 - prob);
  }
  const double log_prior_w = 0.5 * p * std::log(alpha) - 0.5 * alpha * theta.head(p).squaredNorm();
  const double log_prior_alpha = (a0 - 1.0) * std::log(alpha) - b0 * alpha;
  return loglik + log_prior_w + log_prior_alpha + s;  // + log |d alpha / d s|
}

TEST(BlrTargetTest, LogDensityScoreAndHessian) {
  const int64_t p = 5;
  const Points data = Data(200, p, 1);
  auto d = DataTarget(data);
  auto target = CreateTargetOverData("blr", *d, 0, {{"prior_shape", {2.0}}, {"prior_rate", {0.5}}});
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ((*target)->dim(), p + 1);
  EXPECT_EQ((*target)->family(), "blr");
  const Points theta = Theta(7, p, 2);
  VectorXd lq;
  ASSERT_TRUE((*target)->LogDensity(theta, &lq).ok());
  // Differences of the direct formula: equal up to one constant.
  for (int64_t i = 1; i < theta.rows(); ++i) {
    const double direct = DirectLogPosterior(data, theta.row(i), 2.0, 0.5) - DirectLogPosterior(data, theta.row(0), 2.0, 0.5);
    EXPECT_NEAR(lq(i) - lq(0), direct, 1e-9 * (1 + std::abs(direct))) << i;
  }
  Points score;
  ASSERT_TRUE((*target)->Score(theta, &score).ok());
  std::vector<MatrixXd> hessian;
  ASSERT_TRUE((*target)->ScoreJacobian(theta, &hessian).ok());
  const double h = 1e-5;
  for (int64_t c = 0; c <= p; ++c) {
    Points plus = theta, minus = theta;
    plus.col(c).array() += h;
    minus.col(c).array() -= h;
    VectorXd lp, lm;
    Points sp, sm;
    ASSERT_TRUE((*target)->LogDensity(plus, &lp).ok());
    ASSERT_TRUE((*target)->LogDensity(minus, &lm).ok());
    ASSERT_TRUE((*target)->Score(plus, &sp).ok());
    ASSERT_TRUE((*target)->Score(minus, &sm).ok());
    for (int64_t i = 0; i < theta.rows(); ++i) {
      EXPECT_NEAR(score(i, c), (lp(i) - lm(i)) / (2 * h), 1e-5 * (1 + std::abs(score(i, c)))) << i << " " << c;
      for (int64_t a = 0; a <= p; ++a) {
        const double fd = (sp(i, a) - sm(i, a)) / (2 * h);
        EXPECT_NEAR(hessian[i](a, c), fd, 1e-5 * (1 + std::abs(fd))) << i << " " << a << " " << c;
      }
    }
  }
}

TEST(BlrTargetTest, AutogradFormIsTheSameDensity) {
  const int64_t p = 4;
  const Points data = Data(150, p, 3);
  auto d = DataTarget(data);
  for (const double batch : {0.0, 40.0}) {
    auto target = CreateTargetOverData("blr", *d, 0, {{"batch", {batch}}});
    ASSERT_TRUE(target.ok()) << target.status();
    auto density = (*target)->torch_log_density();
    ASSERT_TRUE(density.ok()) << density.status();
    const Points theta = Theta(9, p, 4);
    VectorXd lq;
    Points score;
    ASSERT_TRUE((*target)->LogDensity(theta, &lq).ok());
    ASSERT_TRUE((*target)->Score(theta, &score).ok());
    torch::Tensor tx = torch::from_blob(const_cast<double*>(theta.data()), {theta.rows(), theta.cols()},
                                        torch::kFloat64).clone().requires_grad_(true);
    const torch::Tensor tl = (**density)(tx);
    const torch::Tensor ts = torch::autograd::grad({tl.sum()}, {tx})[0];
    for (int64_t i = 0; i < theta.rows(); ++i) {
      EXPECT_NEAR(tl[i].item<double>(), lq(i), 1e-10 * (1 + std::abs(lq(i)))) << "batch " << batch;
      for (int64_t c = 0; c <= p; ++c) {
        EXPECT_NEAR(ts[i][c].item<double>(), score(i, c), 1e-10 * (1 + std::abs(score(i, c)))) << "batch " << batch;
      }
    }
  }
}

// The closed-form Fisher terms (score, Laplacian, grad [1/2 |s|^2 + div s]: third derivatives) equal the
// autograd terms of the same density, full data and minibatched.
TEST(BlrTargetTest, FisherTermsMatchAutograd) {
  const int64_t p = 4;
  const Points data = Data(150, p, 8);
  auto d = DataTarget(data);
  for (const double batch : {0.0, 40.0}) {
    auto target = CreateTargetOverData("blr", *d, 0, {{"batch", {batch}}, {"prior_rate", {0.3}}});
    ASSERT_TRUE(target.ok()) << target.status();
    auto density = (*target)->torch_log_density();
    ASSERT_TRUE(density.ok());
    const Points theta = Theta(11, p, 9);
    Points score, gradient;
    VectorXd laplacian;
    ASSERT_TRUE((*target)->FisherTerms(theta, &score, &laplacian, &gradient).ok());
    training::FisherTargetTerms ref;
    ASSERT_TRUE(training::ComputeFisherTargetTerms(**density, theta, &ref).ok());
    const auto rel = [](const auto& a, const auto& b) { return (a - b).cwiseAbs().maxCoeff() / (1 + b.cwiseAbs().maxCoeff()); };
    EXPECT_LT(rel(score, ref.score), 1e-11) << "batch " << batch;
    EXPECT_LT(rel(laplacian, ref.laplacian), 1e-11) << "batch " << batch;
    EXPECT_LT(rel(gradient, ref.gradient), 1e-11) << "batch " << batch;
    // The Hessian against autograd's (finite differences cannot check a minibatch: moved points see
    // other rows).
    std::vector<MatrixXd> hessian;
    ASSERT_TRUE((*target)->ScoreJacobian(theta, &hessian).ok());
    torch::Tensor tx = torch::from_blob(const_cast<double*>(theta.data()), {theta.rows(), theta.cols()},
                                        torch::kFloat64).clone().requires_grad_(true);
    const torch::Tensor ts = torch::autograd::grad({(**density)(tx).sum()}, {tx}, {}, true, true)[0];
    for (int64_t a = 0; a <= p; ++a) {
      const torch::Tensor row = torch::autograd::grad({ts.select(1, a).sum()}, {tx}, {}, true)[0];
      for (int64_t i = 0; i < theta.rows(); ++i) {
        for (int64_t c = 0; c <= p; ++c) {
          EXPECT_NEAR(hessian[i](a, c), row[i][c].item<double>(), 1e-10 * (1 + std::abs(hessian[i](a, c))))
              << "batch " << batch;
        }
      }
    }
  }
}

// A minibatch is a function of the points evaluated (same points, same rows); other points see other rows;
// its likelihood is scaled by n / B, so its mean over many batches is the full-data value.
TEST(BlrTargetTest, MinibatchIsDeterministicAndUnbiased) {
  const int64_t p = 3;
  const Points data = Data(100, p, 5);
  auto d = DataTarget(data);
  auto full = CreateTargetOverData("blr", *d, 0, {});
  auto mini = CreateTargetOverData("blr", *d, 0, {{"batch", {20}}});
  ASSERT_TRUE(full.ok() && mini.ok());
  const Points theta = Theta(1, p, 6);
  Points s1, s2, sf;
  ASSERT_TRUE((*mini)->Score(theta, &s1).ok());
  ASSERT_TRUE((*mini)->Score(theta, &s2).ok());
  EXPECT_EQ(s1, s2);
  ASSERT_TRUE((*full)->Score(theta, &sf).ok());
  EXPECT_NE(s1, sf);
  // Mean over many nearby points (each a fresh batch) approaches the full-data score.
  Points sum = Points::Zero(1, p + 1);
  const int kDraws = 4000;
  for (int k = 0; k < kDraws; ++k) {
    Points t = theta;
    t(0, 0) += 1e-12 * (k + 1);  // a different point, the same score to 1e-11
    Points s;
    ASSERT_TRUE((*mini)->Score(t, &s).ok());
    sum += s;
  }
  const Points mean = sum / kDraws;
  for (int64_t c = 0; c <= p; ++c) EXPECT_NEAR(mean(0, c), sf(0, c), 0.05 * (1 + std::abs(sf(0, c)))) << c;
}

TEST(BlrTargetTest, RefusesBadDefinitions) {
  Points data = Data(30, 3, 7);
  auto d = DataTarget(data);
  auto wrong_dim = CreateTargetOverData("blr", *d, 3, {});
  EXPECT_EQ(wrong_dim.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong_dim.status().message(), HasSubstr("dimension 4"));
  data(5, 3) = 0.5;
  auto bad_labels = CreateTargetOverData("blr", *DataTarget(data), 0, {});
  EXPECT_EQ(bad_labels.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_labels.status().message(), HasSubstr("row 5 holds 0.5"));
  auto one_column = CreateTargetOverData("blr", *DataTarget(Points::Ones(4, 1)), 0, {});
  EXPECT_THAT(one_column.status().message(), HasSubstr("needs the features and then the labels"));
  auto density = CreateAnalyticTarget("gaussian", 2, {});
  auto over_density = CreateTargetOverData("blr", **density, 0, {});
  EXPECT_THAT(over_density.status().message(), HasSubstr("must hold samples"));
  auto no_data = CreateAnalyticTarget("blr", 0, {});
  EXPECT_EQ(no_data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(no_data.status().message(), HasSubstr("data_target_id"));
  auto analytic_with_data = CreateTargetOverData("gaussian", *d, 0, {});
  EXPECT_THAT(analytic_with_data.status().message(), HasSubstr("takes no data target"));
  auto bad_batch = CreateTargetOverData("blr", *d, 0, {{"batch", {2.5}}});
  EXPECT_THAT(bad_batch.status().message(), HasSubstr("whole number"));
  auto unknown = CreateTargetOverData("blr", *d, 0, {{"alpha", {1}}});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sampled
