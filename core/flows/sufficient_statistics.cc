#include "core/flows/sufficient_statistics.h"

#include <algorithm>

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/common/parallel.h"
#include "core/common/status_macros.h"

namespace sampled {
namespace {

class Gaussian final : public SufficientStatistics {
 public:
  explicit Gaussian(int64_t d) : d_(d) {}
  int64_t size() const override { return d_ + d_ * (d_ + 1) / 2; }
  absl::Status Evaluate(const Points& x, Points* t, Points* jac) const override {
    const int64_t n = x.rows(), b = size();
    t->resize(n, b);
    if (jac != nullptr) jac->setZero(n, d_ * b);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t a = 0; a < d_; ++a) {
        (*t)(i, a) = x(i, a);
        if (jac != nullptr) (*jac)(i, a * b + a) = 1.0;
      }
      int64_t m = d_;
      for (int64_t a = 0; a < d_; ++a) {
        for (int64_t c = a; c < d_; ++c, ++m) {
          (*t)(i, m) = x(i, a) * x(i, c);
          if (jac != nullptr) {
            // d(x_a x_c)/dx_e = delta_ea x_c + delta_ec x_a.
            (*jac)(i, a * b + m) += x(i, c);
            (*jac)(i, c * b + m) += x(i, a);
          }
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  int64_t d_;
};

class Rbf final : public SufficientStatistics {
 public:
  Rbf(Points basis, double sigma) : basis_(std::move(basis)), basis_t_(basis_.transpose()), sigma_(sigma) {}
  int64_t size() const override { return basis_.rows(); }
  std::optional<RbfStructure> rbf() const override { return RbfStructure{&basis_, sigma_}; }
  absl::Status Evaluate(const Points& x, Points* t, Points* jac) const override {
    const int64_t n = x.rows(), d = x.cols(), b = size();
    const double inv_s2 = 1.0 / (sigma_ * sigma_);
    // |x - b|^2 by the expansion (exact differences would cost d passes; the clamp keeps it >= 0).
    *t = ((-2.0 * x * basis_.transpose()).colwise() + x.rowwise().squaredNorm()).rowwise() +
         basis_.rowwise().squaredNorm().transpose();
    *t = (-0.5 * inv_s2 * t->array().max(0.0)).exp().matrix();
    if (jac != nullptr) {
      jac->resize(n, d * b);
      ParallelFor(n, 16, /*threads=*/0, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) {
          for (int64_t a = 0; a < d; ++a) {
            // dT_m/dx_a = -(x_a - b_ma) / sigma^2 T_m.
            jac->row(i).segment(a * b, b) =
                (-inv_s2 * (x(i, a) - basis_t_.row(a).array()) * t->row(i).array()).matrix();
          }
        }
      });
    }
    return absl::OkStatus();
  }

 private:
  Points basis_;
  Points basis_t_;  // d x b: the coordinates of the basis points as contiguous rows
  double sigma_;
};

class Pairs final : public SufficientStatistics {
 public:
  Pairs(int64_t d, std::vector<std::pair<int, int>> pairs) : d_(d), pairs_(std::move(pairs)) {}
  int64_t size() const override { return static_cast<int64_t>(pairs_.size()); }
  absl::Status Evaluate(const Points& x, Points* t, Points* jac) const override {
    const int64_t n = x.rows(), b = size();
    t->resize(n, b);
    if (jac != nullptr) jac->setZero(n, d_ * b);
    for (int64_t m = 0; m < b; ++m) {
      const auto [p, q] = pairs_[m];
      t->col(m) = x.col(p).cwiseProduct(x.col(q));
      if (jac != nullptr) {
        jac->col(p * b + m) += x.col(q);
        jac->col(q * b + m) += x.col(p);
      }
    }
    return absl::OkStatus();
  }

 private:
  int64_t d_;
  std::vector<std::pair<int, int>> pairs_;
};

class Concat final : public SufficientStatistics {
 public:
  explicit Concat(std::vector<std::unique_ptr<SufficientStatistics>> parts) : parts_(std::move(parts)) {
    for (const auto& p : parts_) size_ += p->size();
  }
  int64_t size() const override { return size_; }
  absl::Status Evaluate(const Points& x, Points* t, Points* jac) const override {
    const int64_t n = x.rows(), d = x.cols();
    t->resize(n, size_);
    if (jac != nullptr) jac->resize(n, d * size_);
    int64_t offset = 0;
    Points pt, pj;
    for (const auto& part : parts_) {
      const int64_t b = part->size();
      SAMPLED_RETURN_IF_ERROR(part->Evaluate(x, &pt, jac != nullptr ? &pj : nullptr));
      t->middleCols(offset, b) = pt;
      if (jac != nullptr) {
        for (int64_t a = 0; a < d; ++a) jac->middleCols(a * size_ + offset, b) = pj.middleCols(a * b, b);
      }
      offset += b;
    }
    return absl::OkStatus();
  }

 private:
  std::vector<std::unique_ptr<SufficientStatistics>> parts_;
  int64_t size_ = 0;
};

class Stein final : public SufficientStatistics {
 public:
  Stein(std::shared_ptr<const Target> target, Points basis, double sigma)
      : target_(std::move(target)), basis_(std::move(basis)), sigma_(sigma) {}
  int64_t size() const override { return target_->dim() * basis_.rows(); }

  // T_{a,m} = s_a f_m + d_a f_m, stored at column a * B + m;
  // dT_{a,m}/dx_c = (d_c s_a) f_m + s_a d_c f_m + d_c d_a f_m, with
  // d_c f_m = -(x_c - b_mc)/s^2 f_m and d_c d_a f_m = ((x_a - b_ma)(x_c - b_mc)/s^4 - delta_ac/s^2) f_m.
  absl::Status Evaluate(const Points& x, Points* t, Points* jac) const override {
    const int64_t n = x.rows(), d = x.cols(), nb = basis_.rows(), b = size();
    const double inv_s2 = 1.0 / (sigma_ * sigma_);
    Points score;
    SAMPLED_RETURN_IF_ERROR(target_->Score(x, &score));
    std::vector<MatrixXd> hess;
    if (jac != nullptr) SAMPLED_RETURN_IF_ERROR(target_->ScoreJacobian(x, &hess));
    t->resize(n, b);
    if (jac != nullptr) jac->resize(n, d * b);
    Eigen::RowVectorXd f(nb);
    Points diff(nb, d);  // x - b_m
    for (int64_t i = 0; i < n; ++i) {
      diff = (-basis_).rowwise() + x.row(i);
      f = (-0.5 * inv_s2 * diff.rowwise().squaredNorm().array()).exp().matrix().transpose();
      for (int64_t a = 0; a < d; ++a) {
        // d_a f_m = -(x_a - b_ma)/s^2 f_m
        t->row(i).segment(a * nb, nb) =
            (score(i, a) * f.array() - inv_s2 * diff.col(a).transpose().array() * f.array()).matrix();
      }
      if (jac == nullptr) continue;
      for (int64_t c = 0; c < d; ++c) {
        const Eigen::ArrayXd dc_f = -inv_s2 * diff.col(c).array() * f.transpose().array();
        for (int64_t a = 0; a < d; ++a) {
          const Eigen::ArrayXd dca_f =
              (inv_s2 * inv_s2 * diff.col(a).array() * diff.col(c).array() - (a == c ? inv_s2 : 0.0)) *
              f.transpose().array();
          jac->row(i).segment(c * b + a * nb, nb) =
              (hess[i](a, c) * f.transpose().array() + score(i, a) * dc_f + dca_f).matrix().transpose();
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<const Target> target_;
  Points basis_;
  double sigma_;
};

}  // namespace

std::unique_ptr<SufficientStatistics> GaussianStatistics(int64_t d) { return std::make_unique<Gaussian>(d); }
std::unique_ptr<SufficientStatistics> RbfStatistics(Points basis, double sigma) {
  return std::make_unique<Rbf>(std::move(basis), sigma);
}
std::unique_ptr<SufficientStatistics> PairStatistics(int64_t d, std::vector<std::pair<int, int>> pairs) {
  return std::make_unique<Pairs>(d, std::move(pairs));
}
std::unique_ptr<SufficientStatistics> ConcatStatistics(std::vector<std::unique_ptr<SufficientStatistics>> parts) {
  return std::make_unique<Concat>(std::move(parts));
}
std::unique_ptr<SufficientStatistics> SteinStatistics(std::shared_ptr<const Target> target, Points basis,
                                                      double sigma) {
  return std::make_unique<Stein>(std::move(target), std::move(basis), sigma);
}

absl::StatusOr<std::vector<std::pair<int, int>>> ParsePairs(const std::string& text, int64_t d) {
  std::vector<std::pair<int, int>> pairs;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<std::string> ends = absl::StrSplit(item, '-');
    int i, j;
    if (ends.size() != 2 || !absl::SimpleAtoi(ends[0], &i) || !absl::SimpleAtoi(ends[1], &j)) {
      return absl::InvalidArgumentError(absl::StrCat("option 'pairs': '", item, "' is not I-J"));
    }
    if (i < 0 || j < 0 || i >= d || j >= d) {
      return absl::InvalidArgumentError(absl::StrCat("option 'pairs': pair ", item, " is out of range for dimension ",
                                                     d, " (indices are 0 to ", d - 1, ")"));
    }
    if (i == j) return absl::InvalidArgumentError(absl::StrCat("option 'pairs': pair ", item, " repeats a coordinate"));
    const std::pair<int, int> pair(std::min(i, j), std::max(i, j));
    if (std::find(pairs.begin(), pairs.end(), pair) != pairs.end() ||
        std::find(pairs.begin(), pairs.end(), std::make_pair(pair.second, pair.first)) != pairs.end()) {
      return absl::InvalidArgumentError(absl::StrCat("option 'pairs': pair ", item, " is given twice"));
    }
    pairs.emplace_back(i, j);
  }
  if (pairs.empty()) return absl::InvalidArgumentError("option 'pairs': give at least one pair I-J");
  return pairs;
}

}  // namespace sampled
