// EM's Gaussian mixture fit (core/targets/gmm_fit.h) against closed forms: one component is the data's mean and
// (biased) covariance plus reg_covar; well-separated clusters are found with their weights; BIC picks their
// number; the same seed gives the same fit; bad options are refused naming the parameter. (The comparison with
// sklearn's GaussianMixture is tests/python/test_gmm.py.)
#include "core/targets/gmm_fit.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/rng.h"
#include "core/targets/target_family.h"

namespace sampled {
namespace {

using ::testing::HasSubstr;

Points Clusters(int64_t n, uint64_t seed) {
  Rng rng(seed);
  Points x(n, 2);
  rng.FillNormal(x.data(), x.size());
  x *= 0.3;
  for (int64_t i = 0; i < n; ++i) {
    const double u = rng.Uniform();
    x.row(i) += u < 0.5 ? Eigen::RowVector2d(-4, 0) : u < 0.8 ? Eigen::RowVector2d(4, 0) : Eigen::RowVector2d(0, 5);
  }
  return x;
}

TEST(GmmFit, OneComponentIsTheMeanAndCovariance) {
  Rng rng(1);
  Points x(500, 3);
  rng.FillNormal(x.data(), x.size());
  x.col(1) = 2 * x.col(1) + x.col(0);
  for (CovarianceType t : {CovarianceType::kFull, CovarianceType::kDiagonal, CovarianceType::kSpherical}) {
    GmmFitOptions o;
    o.components = 1;
    o.covariance = t;
    auto fit = FitGaussianMixture(x, o);
    ASSERT_TRUE(fit.ok()) << fit.status();
    const Eigen::RowVectorXd mean = x.colwise().mean();
    const Points c = x.rowwise() - mean;
    MatrixXd cov = c.transpose() * c / 500.0;
    if (t == CovarianceType::kDiagonal) cov = MatrixXd(cov.diagonal().asDiagonal());
    if (t == CovarianceType::kSpherical) cov = MatrixXd::Identity(3, 3) * cov.diagonal().mean();
    cov.diagonal().array() += 1e-6;
    EXPECT_LT((fit->means.row(0) - mean).norm(), 1e-10) << CovarianceTypeName(t);
    EXPECT_LT((fit->covs[0] - cov).norm(), 1e-10) << CovarianceTypeName(t);
    EXPECT_NEAR(fit->weights[0], 1.0, 1e-12);
  }
}

TEST(GmmFit, FindsSeparatedClustersAndTheirNumber) {
  const Points x = Clusters(3000, 2);
  GmmFitOptions o;
  o.seed = 4;
  o.max_components = 6;  // components 0: BIC
  auto fit = FitGaussianMixture(x, o);
  ASSERT_TRUE(fit.ok()) << fit.status();
  ASSERT_EQ(fit->components(), 3);
  std::vector<double> w = fit->weights;
  std::sort(w.begin(), w.end());
  EXPECT_NEAR(w[0], 0.2, 0.03);
  EXPECT_NEAR(w[1], 0.3, 0.03);
  EXPECT_NEAR(w[2], 0.5, 0.03);
  EXPECT_TRUE(fit->converged);
  EXPECT_EQ(fit->parameter_count(), 3 * 3 + 3 * 2 + 2);
  auto again = FitGaussianMixture(x, o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->means, fit->means);  // same seed, same fit
  // The mixture target of the fit has its density.
  auto target = MixtureOfFit(*fit);
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ((*target)->family(), "mixture");
  Eigen::VectorXd logq;
  ASSERT_TRUE((*target)->LogDensity(x, &logq).ok());
  EXPECT_NEAR(logq.mean(), fit->mean_log_likelihood, 1e-9);
}

TEST(GmmFit, RefusesBadOptionsNamingThem) {
  const Points x = Clusters(20, 1);
  const auto refused = [&](GmmFitOptions o, const std::string& says) {
    auto fit = FitGaussianMixture(x, o);
    EXPECT_EQ(fit.status().code(), absl::StatusCode::kInvalidArgument) << says;
    EXPECT_THAT(fit.status().message(), HasSubstr(says));
  };
  GmmFitOptions o;
  o.components = 21;
  refused(o, "components");
  o = {};
  o.reg_covar = 0;
  refused(o, "reg_covar");
  o = {};
  o.tol = -1;
  refused(o, "tol");
  o = {};
  o.max_iter = 0;
  refused(o, "max_iter");
  Points bad = x;
  bad(3, 1) = std::nan("");
  EXPECT_EQ(FitGaussianMixture(bad, GmmFitOptions{}).status().code(), absl::StatusCode::kInvalidArgument);
  auto params = ReadGmmFitOptions({{"diagonal", {1}}, {"spherical", {1}}});
  EXPECT_THAT(params.status().message(), HasSubstr("diagonal"));
  params = ReadGmmFitOptions({{"components", {2.5}}});
  EXPECT_THAT(params.status().message(), HasSubstr("components"));
  params = ReadGmmFitOptions({{"clusters", {3}}});
  EXPECT_EQ(params.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sampled
