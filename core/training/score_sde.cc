#include "core/training/score_sde.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/targets/target_family.h"
#include "core/training/sampler.h"

namespace sampled::training {

const char* NoisingDynamicsName(NoisingDynamics d) {
  return d == NoisingDynamics::kGaussianMixture ? "gm" : "vp";
}

absl::StatusOr<NoisingDynamics> ParseNoisingDynamics(const std::string& name) {
  if (name == "gm") return NoisingDynamics::kGaussianMixture;
  if (name == "vp") return NoisingDynamics::kVariancePreserving;
  return absl::InvalidArgumentError(absl::StrCat("unknown noising dynamics '", name, "'; known: gm, vp"));
}

bool operator==(const ScoreSdeModel& a, const ScoreSdeModel& b) {
  return a.dynamics == b.dynamics && a.dim == b.dim && a.prior == b.prior && a.t_end == b.t_end &&
         a.t_min == b.t_min && a.beta_min == b.beta_min && a.beta_max == b.beta_max &&
         a.frequencies == b.frequencies && a.shape == b.shape && a.default_steps == b.default_steps &&
         a.residual == b.residual;
}

absl::Status StationaryScore(const ScoreSdeModel& m, const Target* prior, const PointsF& y, PointsF* out) {
  if (m.dynamics == NoisingDynamics::kVariancePreserving) {
    *out = -y;
    return absl::OkStatus();
  }
  if (prior == nullptr) return absl::InvalidArgumentError("a gm score model needs its prior");
  Points score;
  SAMPLED_RETURN_IF_ERROR(prior->Score(y.cast<double>(), &score));
  *out = score.cast<float>();
  return absl::OkStatus();
}

void ScoreInputs(const PointsF& y, const Eigen::VectorXf& t, const std::vector<float>& frequencies, PointsF* in) {
  const int64_t d = y.cols(), m = static_cast<int64_t>(frequencies.size());
  in->resize(y.rows(), d + 1 + 2 * m);
  in->leftCols(d) = y;
  for (int64_t i = 0; i < y.rows(); ++i) {
    float* row = in->row(i).data() + d;
    row[0] = t(i);
    for (int64_t k = 0; k < m; ++k) {
      row[1 + k] = std::sin(frequencies[k] * t(i));
      row[1 + m + k] = std::cos(frequencies[k] * t(i));
    }
  }
}

std::vector<float> TimeFrequencies(int64_t m, double scale, Rng& rng) {
  std::vector<float> f(m);
  for (float& v : f) v = static_cast<float>(2 * M_PI * scale * rng.Normal());
  return f;
}

double VpBeta(const ScoreSdeModel& m, double t) { return m.beta_min + (m.beta_max - m.beta_min) * t; }

double VpAlpha(const ScoreSdeModel& m, double t) {
  return std::exp(-0.5 * (m.beta_min * t + 0.5 * (m.beta_max - m.beta_min) * t * t));
}

absl::StatusOr<std::shared_ptr<const Target>> ScoreSdePrior(const ScoreSdeModel& m) {
  if (m.dynamics != NoisingDynamics::kGaussianMixture) return std::shared_ptr<const Target>();
  SAMPLED_ASSIGN_OR_RETURN(std::unique_ptr<Target> prior, CreateAnalyticTarget("mixture", m.dim, m.prior));
  return std::shared_ptr<const Target>(std::move(prior));
}

absl::Status DrawScoreSdeBlocks(const ScoreSdeModel& m, const std::vector<float>& params, const Target* prior,
                                const ReverseOptions& options, uint64_t seed, int64_t first_block, int64_t blocks,
                                int threads, PointsF* out) {
  const bool gm = m.dynamics == NoisingDynamics::kGaussianMixture;
  if (gm && prior == nullptr) return absl::InvalidArgumentError("a gm score model draws from its prior: none given");
  const int64_t steps = options.steps > 0 ? options.steps : m.default_steps;
  const int64_t d = m.dim, n = blocks * kDrawBlockRows;
  out->resize(n, d);
  // Each block's generator gives its x_0 and then its noise, step after step.
  std::vector<Rng> rngs;
  rngs.reserve(blocks);
  for (int64_t b = 0; b < blocks; ++b) {
    rngs.emplace_back(DrawBlockSeed(seed, first_block + b));
    if (gm) {
      Points x0;
      SAMPLED_RETURN_IF_ERROR(prior->Sample(kDrawBlockRows, rngs.back(), &x0));
      out->middleRows(b * kDrawBlockRows, kDrawBlockRows) = x0.cast<float>();
    } else {
      rngs.back().FillNormal(out->data() + b * kDrawBlockRows * d, kDrawBlockRows * d);
    }
  }
  const double t_stop = gm ? 0 : m.t_min;
  const double dt = (m.t_end - t_stop) / static_cast<double>(steps);
  PointsF in, s, z(n, d), step, prior_score;
  Eigen::VectorXf t(n);
  Points drift;
  for (int64_t k = 0; k < steps; ++k) {
    if (options.cancelled != nullptr && options.cancelled->load(std::memory_order_relaxed)) {
      return absl::CancelledError(absl::StrCat("the draw was cancelled at reverse step ", k, " of ", steps));
    }
    const double time = m.t_end - k * dt;  // the reverse dynamics at forward time T - t_k
    t.setConstant(static_cast<float>(time));
    ScoreInputs(*out, t, m.frequencies, &in);
    MlpForward(m.shape, params, in, threads, nullptr, &s);
    double a = 0, b = 0;  // x <- x + (a x + b s + prior drift) dt + noise
    double noise = 0;
    if (gm) {
      SAMPLED_RETURN_IF_ERROR(prior->Score(out->cast<double>(), &drift));  // -grad V
      prior_score = drift.cast<float>();
    }
    if (m.residual) {  // the stationary score: the prior's (gm) or -x (vp)
      if (gm) {
        s += prior_score;
      } else {
        s -= *out;
      }
    }
    if (gm) {
      b = options.ode ? 1 : 2;
      noise = std::sqrt(2 * dt);
    } else {
      const double beta = VpBeta(m, time);
      a = beta / 2;
      b = options.ode ? beta / 2 : beta;
      noise = std::sqrt(beta * dt);
    }
    if (!options.ode) {
      for (int64_t blk = 0; blk < blocks; ++blk) {
        rngs[blk].FillNormal(z.data() + blk * kDrawBlockRows * d, kDrawBlockRows * d);
      }
    }
    step = static_cast<float>(b * dt) * s;
    if (a != 0) step += static_cast<float>(a * dt) * *out;
    if (gm) step -= static_cast<float>(dt) * prior_score;  // grad V = -Score
    if (!options.ode) step += static_cast<float>(noise) * z;
    *out += step;
  }
  return absl::OkStatus();
}

}  // namespace sampled::training
