#include "core/targets/target.h"

#include "absl/strings/str_cat.h"

namespace sampled {

absl::Status Target::LogDensity(const Points&, Eigen::VectorXd*) const {
  return absl::FailedPreconditionError(
      absl::StrCat("target of family '", family(), "' has no log-density; it is defined by samples"));
}

absl::Status Target::Score(const Points&, Points*) const {
  return absl::FailedPreconditionError(
      absl::StrCat("target of family '", family(), "' has no score; it is defined by samples"));
}

absl::Status Target::Sample(int64_t, Rng&, Points*) const {
  return absl::FailedPreconditionError(
      absl::StrCat("target of family '", family(), "' cannot draw exact samples"));
}

absl::Status Target::FisherTerms(const Points&, Points*, VectorXd*, Points*) const {
  return absl::UnimplementedError(absl::StrCat("family '", family(), "' has no closed-form Fisher terms"));
}

absl::Status Target::ScoreJacobian(const Points& x, std::vector<MatrixXd>* out) const {
  if (!has_density()) return Score(x, nullptr);  // the same FAILED_PRECONDITION
  const int64_t n = x.rows(), d = x.cols();
  out->assign(n, MatrixXd(d, d));
  Points plus, minus, sp, sm;
  for (int64_t c = 0; c < d; ++c) {
    const Eigen::VectorXd h = 1e-5 * (1.0 + x.col(c).array().abs());
    plus = x;
    minus = x;
    plus.col(c) += h;
    minus.col(c) -= h;
    absl::Status s = Score(plus, &sp);
    if (!s.ok()) return s;
    s = Score(minus, &sm);
    if (!s.ok()) return s;
    for (int64_t i = 0; i < n; ++i) (*out)[i].col(c) = (sp.row(i) - sm.row(i)).transpose() / (2.0 * h(i));
  }
  // A Hessian is symmetric; average out the finite-difference asymmetry.
  for (MatrixXd& m : *out) m = 0.5 * (m + m.transpose()).eval();
  return absl::OkStatus();
}

int64_t Target::bytes() const {
  int64_t total = 0;
  for (const auto& [key, values] : params()) total += static_cast<int64_t>(key.size() + 8 * values.size());
  return total;
}

absl::Status Target::ReferenceSamples(int64_t n, Rng& rng, Points* out) const {
  if (const Points* s = samples(); s != nullptr) {
    *out = *s;
    return absl::OkStatus();
  }
  if (can_sample()) return Sample(n, rng, out);
  return absl::FailedPreconditionError(absl::StrCat(
      "target of family '", family(),
      "' has neither samples nor an exact sampler; use a density metric such as ksd"));
}

}  // namespace sampled
