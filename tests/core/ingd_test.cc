// ingd (000 Alg. 1 with the drift model, Def. 4.1 and Eq. 7): its settings and refusals, 000 Fig. 2 in our
// terms (Gaussian statistics in 2-D, a 67-unit drift network: the Gaussian fitted to the generator's draws at
// every step against the closed-form natural gradient descent path from N(0, I) to the data's Gaussian), a
// bimodal target with RBF statistics, and a run restored from its serialised state continuing the same way,
// the chain's sampler file and draws.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/rng.h"
#include "core/training/sampler.h"
#include "core/training/trainer.h"
#include "tests/core/training_test_util.h"

namespace sampled::training {
namespace {

using ::testing::HasSubstr;
using test_util::Data;
using test_util::MakeRun;
using test_util::TrainRun;

// n draws of N(mean, cov) in 2-D.
Points Gaussian(int64_t n, const Eigen::Vector2d& mean, const Eigen::Matrix2d& cov, uint64_t seed) {
  Rng rng(seed);
  const Eigen::Matrix2d l = cov.llt().matrixL();
  Points x(n, 2);
  for (int64_t i = 0; i < n; ++i) {
    const Eigen::Vector2d z(rng.Normal(), rng.Normal());
    x.row(i) = (mean + l * z).transpose();
  }
  return x;
}

TrainConfig Config() {
  TrainConfig c;
  c.method = "ingd";
  c.seed = 7;
  c.threads = 2;
  return c;
}

SamplerModel ModelOf(const TrainRun& run) {
  SamplerModel m;
  m.shape = run.settings.sampler;
  m.final_params = run.trainer->SamplerWeights(run.state);
  m.drift = run.trainer->drift_chain();
  return m;
}

struct Moments {
  Eigen::Vector2d mean;
  Eigen::Matrix2d cov;
};

Moments Fit(const Points& x) {
  Moments m;
  m.mean = x.colwise().mean().transpose();
  const Points c = x.rowwise() - m.mean.transpose();
  m.cov = c.transpose() * c / static_cast<double>(x.rows() - 1);
  return m;
}

// KL(N(a) | N(b)).
double Kl(const Moments& a, const Moments& b) {
  const Eigen::Matrix2d pb = b.cov.inverse();
  const Eigen::Vector2d dm = b.mean - a.mean;
  return 0.5 * ((pb * a.cov).trace() + dm.dot(pb * dm) - 2 + std::log(b.cov.determinant() / a.cov.determinant()));
}

// Natural gradient descent on KL(p | q) in the Gaussian family T = [x_1, x_2, x_1^2, x_1 x_2, x_2^2], in closed
// form: theta <- theta - eps F(theta)^-1 (E_q[T] - E_p[T]), F = Cov_q[T] by Isserlis' theorem.
class GaussianNgd {
 public:
  explicit GaussianNgd(const Moments& target) : target_(Stats(target)) {}

  static Eigen::VectorXd Stats(const Moments& m) {  // E[T]
    const Eigen::Matrix2d s = m.cov + m.mean * m.mean.transpose();
    Eigen::VectorXd t(5);
    t << m.mean(0), m.mean(1), s(0, 0), s(0, 1), s(1, 1);
    return t;
  }

  Moments Step(const Moments& q, double eps) const {
    const Eigen::VectorXd theta = Natural(q) - eps * Fisher(q).ldlt().solve(Stats(q) - target_);
    return FromNatural(theta);
  }

 private:
  static Eigen::VectorXd Natural(const Moments& m) {
    const Eigen::Matrix2d p = m.cov.inverse();
    const Eigen::Vector2d lin = p * m.mean;
    Eigen::VectorXd th(5);
    th << lin(0), lin(1), -p(0, 0) / 2, -p(0, 1), -p(1, 1) / 2;
    return th;
  }
  static Moments FromNatural(const Eigen::VectorXd& th) {
    Eigen::Matrix2d p;
    p << -2 * th(2), -th(3), -th(3), -2 * th(4);
    Moments m;
    m.cov = p.inverse();
    m.mean = m.cov * Eigen::Vector2d(th(0), th(1));
    return m;
  }
  // Cov[T] under N(mu, S): the statistics' indices (a, b) of x_a x_b, -1 for the linear ones.
  static Eigen::MatrixXd Fisher(const Moments& m) {
    const int idx[5][2] = {{0, -1}, {1, -1}, {0, 0}, {0, 1}, {1, 1}};
    const auto& mu = m.mean;
    const auto& s = m.cov;
    Eigen::MatrixXd f(5, 5);
    for (int i = 0; i < 5; ++i) {
      for (int j = 0; j < 5; ++j) {
        const int a = idx[i][0], b = idx[i][1], c = idx[j][0], e = idx[j][1];
        double v = 0;
        if (b < 0 && e < 0) {
          v = s(a, c);
        } else if (b < 0) {
          v = mu(c) * s(a, e) + mu(e) * s(a, c);
        } else if (e < 0) {
          v = mu(a) * s(c, b) + mu(b) * s(c, a);
        } else {
          v = s(a, c) * s(b, e) + s(a, e) * s(b, c) + mu(a) * mu(c) * s(b, e) + mu(a) * mu(e) * s(b, c) +
              mu(b) * mu(c) * s(a, e) + mu(b) * mu(e) * s(a, c);
        }
        f(i, j) = v;
      }
    }
    return f;
  }
  Eigen::VectorXd target_;
};

// The continuous-time NGD path in closed form: dtheta/dt = -F^-1 (E_q[T] - E_p[T]) is d E_q[T] / dt =
// E_p[T] - E_q[T], so the mean statistics relax exponentially, E_q(t)[T] = E_p[T] + (E_q(0)[T] - E_p[T]) e^-t.
Moments NgdPathAt(const Moments& q0, const Moments& p, double t) {
  const double w = std::exp(-t);
  Moments m;
  m.mean = p.mean + (q0.mean - p.mean) * w;
  const Eigen::Matrix2d second = p.cov + p.mean * p.mean.transpose() +
                                 (q0.cov + q0.mean * q0.mean.transpose() - p.cov - p.mean * p.mean.transpose()) * w;
  m.cov = second - m.mean * m.mean.transpose();
  return m;
}

TEST(IngdSettingsTest, DefaultsAndRefusals) {
  auto data = Data(Gaussian(500, {1, 0}, Eigen::Matrix2d::Identity(), 1));
  auto s = ResolveTrainConfig(Config(), *data);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->sampler.in, 2);
  EXPECT_EQ(s->sampler.out, 2);
  EXPECT_EQ(s->sampler.hidden, std::vector<int64_t>{67});
  EXPECT_EQ(s->batch, 1000);
  EXPECT_DOUBLE_EQ(s->epsilon, 0.1);
  EXPECT_EQ(s->inner_steps, 100);
  const auto refused = [&](const TrainConfig& c, absl::StatusCode code, const std::string& what) {
    absl::Status st = ResolveTrainConfig(c, *data).status();
    if (st.ok()) st = CreateTrainer(*ResolveTrainConfig(c, *data), data).status();
    ASSERT_FALSE(st.ok()) << what;
    EXPECT_EQ(st.code(), code) << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr(what));
  };
  TrainConfig c = Config();
  c.epsilon = 0;
  refused(c, absl::StatusCode::kInvalidArgument, "epsilon");
  c = Config();
  c.inner_steps = 0;
  refused(c, absl::StatusCode::kInvalidArgument, "inner_steps");
  c = Config();
  c.ridge = -1;
  refused(c, absl::StatusCode::kInvalidArgument, "ridge");
  c = Config();
  c.stats = "cubic";
  refused(c, absl::StatusCode::kInvalidArgument, "stats");
  c = Config();
  c.stats = "gaussian";
  c.basis = 10;
  refused(c, absl::StatusCode::kInvalidArgument, "basis");
  c = Config();
  c.basis = 5000;  // more than the cloud and the data batch hold
  refused(c, absl::StatusCode::kInvalidArgument, "basis");
  c = Config();
  c.gmm_components = 3;
  refused(c, absl::StatusCode::kInvalidArgument, "gmm_components");
  c = Config();
  c.latent = 3;
  refused(c, absl::StatusCode::kInvalidArgument, "latent");
  TrainConfig sd;
  sd.method = "sd-generator";
  sd.epsilon = 0.1;
  refused(sd, absl::StatusCode::kInvalidArgument, "epsilon");
}

// 000 Fig. 2: from N(0, I) to a correlated Gaussian with Gaussian statistics and a one-hidden-layer MLP of 67
// units. At every step the Gaussian fitted to 10^4 fresh draws of the generator at that time (the chain's
// first k drifts) stays within 0.1 of the closed-form NGD path's mean and 10% of its covariance (relative
// Frobenius), and so it does of classic NGD's iterates in the natural parameters with the same step (which
// differ from the path by O(epsilon), as ours do: docs/experiments.md, "000 Fig. 2").
TEST(IngdTest, GaussianStatisticsTrackTheClosedFormNaturalGradientPath) {
  Moments target;
  target.mean = Eigen::Vector2d(1.5, -1.0);
  target.cov << 1.5, 0.9, 0.9, 1.0;
  auto data = Data(Gaussian(4000, target.mean, target.cov, 2));
  const Moments p = Fit(*data->samples());  // NGD's target: the data's own moments
  TrainConfig c = Config();
  c.stats = "gaussian";
  c.batch = 2000;
  c.epsilon = 0.05;
  TrainRun run = MakeRun(c, data);
  const GaussianNgd ngd(p);
  const Moments q0{Eigen::Vector2d::Zero(), Eigen::Matrix2d::Identity()};
  Moments iterate = q0, path = q0;
  struct Worst {
    double mean = 0, cov = 0, kl = 0;
    void Add(double m, double c, double k) { mean = std::max(mean, m), cov = std::max(cov, c), kl = std::max(kl, k); }
  } vs_path, vs_iterates;
  constexpr int kSteps = 90;  // t = 4.5: 99% of the way
  for (int k = 1; k <= kSteps; ++k) {
    TrainStats stats;
    ASSERT_TRUE(run.trainer->Step(run.state, &stats).ok());
    // Eq. 7's residual after the fit is a small part of the natural gradient's norm.
    EXPECT_LT(stats.sampler_loss, 0.01 * stats.score_loss + 1e-6) << "step " << k;
    const double t = k * c.epsilon.value();
    path = NgdPathAt(q0, p, t);
    iterate = ngd.Step(iterate, c.epsilon.value());
    PointsF draws;
    DrawOptions o;
    o.steps = k;
    ASSERT_TRUE(DrawModel(ModelOf(run), false, o, 100 + k, 10000, 2, &draws).ok());
    const Moments q = Fit(draws.cast<double>());
    const auto mean_error = [&](const Moments& m) { return (q.mean - m.mean).norm(); };
    const auto cov_error = [&](const Moments& m) { return (q.cov - m.cov).norm() / m.cov.norm(); };
    vs_path.Add(mean_error(path), cov_error(path), Kl(q, path));
    vs_iterates.Add(mean_error(iterate), cov_error(iterate), Kl(q, iterate));
    if (k % 10 == 0 || k == 1) {
      std::printf("step %2d  t %.2f  vs the path: mean %.4f  covariance %.4f  KL %.5f | vs NGD iterates: mean %.4f  "
                  "covariance %.4f  KL %.5f | KL(path | p) %.4f\n",
                  k, t, mean_error(path), cov_error(path), Kl(q, path), mean_error(iterate), cov_error(iterate),
                  Kl(q, iterate), Kl(path, p));
    }
  }
  std::printf("worst over %d steps: vs the path mean %.4f, covariance %.4f, KL %.5f; vs NGD iterates mean %.4f, "
              "covariance %.4f, KL %.5f\n",
              kSteps, vs_path.mean, vs_path.cov, vs_path.kl, vs_iterates.mean, vs_iterates.cov, vs_iterates.kl);
  EXPECT_LT(vs_path.mean, 0.1);
  EXPECT_LT(vs_path.cov, 0.1);
  EXPECT_LT(vs_iterates.mean, 0.1);
  EXPECT_LT(vs_iterates.cov, 0.1);
  EXPECT_LT(Kl(path, p), 0.02);  // the path itself has arrived
}

// RBF statistics on a bimodal target: the generator's draws populate both modes (and not the gap between them).
TEST(IngdTest, RbfStatisticsPopulateBothModes) {
  Points x = Gaussian(2000, {-2, 0}, 0.25 * Eigen::Matrix2d::Identity(), 3);
  x.bottomRows(1000) = Gaussian(1000, {2, 0}, 0.25 * Eigen::Matrix2d::Identity(), 4);
  auto data = Data(x);
  TrainConfig c = Config();
  c.batch = 1000;
  TrainRun run = MakeRun(c, data);
  for (int k = 0; k < 60; ++k) ASSERT_TRUE(run.trainer->Step(run.state, nullptr).ok());
  PointsF draws;
  ASSERT_TRUE(DrawModel(ModelOf(run), false, {}, 9, 4000, 2, &draws).ok());
  int64_t left = 0, right = 0, gap = 0;
  for (int64_t i = 0; i < draws.rows(); ++i) {
    const float v = draws(i, 0);
    if (std::abs(v) < 1) ++gap;
    if (v <= -1) ++left;
    if (v >= 1) ++right;
  }
  std::printf("left %lld  right %lld  gap %lld of %lld\n", static_cast<long long>(left), static_cast<long long>(right),
              static_cast<long long>(gap), static_cast<long long>(draws.rows()));
  EXPECT_GT(left, draws.rows() * 3 / 10);
  EXPECT_GT(right, draws.rows() * 3 / 10);
  EXPECT_LT(gap, draws.rows() / 5);
}

// The state is the whole state: a trainer restored from the serialised state of step 3 continues as the
// straight run does; the chain's sampler file keeps its draws; the first k drifts are the generator at time k
// epsilon, and draws do not depend on how they are chunked.
TEST(IngdTest, RestoredRunsContinueTheSameWayAndTheChainIsASampler) {
  auto data = Data(Gaussian(600, {1, 1}, Eigen::Matrix2d::Identity(), 5));
  TrainConfig c = Config();
  c.batch = 300;
  c.inner_steps = 10;
  TrainRun straight = MakeRun(c, data);
  for (int k = 0; k < 6; ++k) ASSERT_TRUE(straight.trainer->Step(straight.state, nullptr).ok());
  TrainRun first = MakeRun(c, data);
  for (int k = 0; k < 3; ++k) ASSERT_TRUE(first.trainer->Step(first.state, nullptr).ok());
  auto parsed = ParseTrainingState(SerializeTrainingState(first.state));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  TrainRun resumed = MakeRun(c, data);
  resumed.state = *parsed;
  for (int k = 0; k < 3; ++k) ASSERT_TRUE(resumed.trainer->Step(resumed.state, nullptr).ok());
  EXPECT_EQ(resumed.state.chain, straight.state.chain);
  EXPECT_EQ(resumed.state.chain.size(), 6 * static_cast<size_t>(straight.settings.sampler.parameter_count()));

  SamplerModel model = ModelOf(straight);
  model.best_params.assign(model.final_params.begin(),
                           model.final_params.begin() + 2 * straight.settings.sampler.parameter_count());
  auto decoded = DecodeSamplerFile(EncodeSamplerFile(model));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_TRUE(decoded->drift.has_value());
  EXPECT_DOUBLE_EQ(decoded->drift->epsilon, 0.1);
  PointsF a, b, all, best, two;
  ASSERT_TRUE(DrawModel(model, false, {}, 4, 1500, 2, &a).ok());
  ASSERT_TRUE(DrawModel(*decoded, false, {}, 4, 1024, 1, &b).ok());
  EXPECT_EQ(PointsF(a.topRows(1024)), b);
  DrawOptions o;
  o.steps = 2;
  ASSERT_TRUE(DrawModel(model, true, {}, 4, 100, 2, &best).ok());
  ASSERT_TRUE(DrawModel(model, false, o, 4, 100, 2, &two).ok());
  EXPECT_EQ(best, two);  // the best checkpoint here is the first two drifts
  o.steps = 7;
  const absl::Status past = DrawModel(model, false, o, 4, 10, 1, &two);
  EXPECT_EQ(past.code(), absl::StatusCode::kInvalidArgument) << past;
  // A chain whose weights are not whole drifts is refused.
  SamplerModel broken = model;
  broken.final_params.pop_back();
  const auto bad = DecodeSamplerFile(EncodeSamplerFile(broken));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("multiple"));
}

}  // namespace
}  // namespace sampled::training
