#include "core/targets/params.h"

#include <cmath>

#include <Eigen/Cholesky>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sampled {

absl::Status ParamReader::Error(const std::string& key, const std::string& message) const {
  return absl::InvalidArgumentError(absl::StrCat("family '", family_, "', parameter '", key, "': ", message));
}

absl::StatusOr<std::optional<std::vector<double>>> ParamReader::Get(const std::string& key,
                                                                    std::vector<size_t> sizes) {
  known_.insert(key);
  auto it = params_.find(key);
  if (it == params_.end()) return std::optional<std::vector<double>>();
  const std::vector<double>& v = it->second;
  if (!sizes.empty() && std::find(sizes.begin(), sizes.end(), v.size()) == sizes.end()) {
    return Error(key, absl::StrCat("expected ", absl::StrJoin(sizes, " or "), " values, got ", v.size()));
  }
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) return Error(key, absl::StrCat("value ", i, " is not finite"));
  }
  return std::optional<std::vector<double>>(v);
}

absl::StatusOr<double> ParamReader::Scalar(const std::string& key, double default_value, bool positive) {
  auto v = Get(key, {1});
  if (!v.ok()) return v.status();
  const double value = v->has_value() ? (**v)[0] : default_value;
  if (positive && !(value > 0)) return Error(key, absl::StrCat("must be > 0, got ", value));
  return value;
}

absl::StatusOr<std::optional<MatrixXd>> ParamReader::SpdMatrix(const std::string& key, int64_t d) {
  auto v = Get(key, {static_cast<size_t>(d * d)});
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<MatrixXd>();
  MatrixXd m(d, d);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) m(i, j) = (**v)[i * d + j];
  if (!m.isApprox(m.transpose(), 1e-10)) return Error(key, "matrix is not symmetric");
  Eigen::LLT<MatrixXd> llt(m);
  if (llt.info() != Eigen::Success) return Error(key, "matrix is not positive definite");
  return std::optional<MatrixXd>(std::move(m));
}

absl::Status ParamReader::Finish() const {
  for (const auto& [key, values] : params_) {
    if (known_.count(key) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("family '", family_, "' has no parameter '", key,
                                                     "'; its parameters are: ", absl::StrJoin(known_, ", ")));
    }
  }
  return absl::OkStatus();
}

std::vector<double> FlattenMatrix(const MatrixXd& m) {
  std::vector<double> out;
  out.reserve(m.size());
  for (int64_t i = 0; i < m.rows(); ++i)
    for (int64_t j = 0; j < m.cols(); ++j) out.push_back(m(i, j));
  return out;
}

}  // namespace sampled
