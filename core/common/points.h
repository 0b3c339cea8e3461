// Dense point sets: N points in R^d stored as a row-major N x d matrix (one point per row), the layout of
// an uploaded array and of a Torch tensor. float64 is the storage type; kernels also run in float32.
#ifndef SAMPLED_CORE_COMMON_POINTS_H_
#define SAMPLED_CORE_COMMON_POINTS_H_

#include <cstdint>
#include <string>

#include <Eigen/Core>

namespace sampled {

template <typename Scalar>
using PointsT = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Points = PointsT<double>;
using PointsF = PointsT<float>;

template <typename Scalar>
using VectorT = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

using Eigen::MatrixXd;
using Eigen::VectorXd;

// Element type of a stored or computed array.
enum class DType { kFloat32, kFloat64 };

inline const char* DTypeName(DType t) { return t == DType::kFloat32 ? "float32" : "float64"; }
inline int64_t DTypeSize(DType t) { return t == DType::kFloat32 ? 4 : 8; }

// Bytes held by a point set in its storage type.
inline int64_t PointsBytes(const Points& p) { return static_cast<int64_t>(p.size()) * 8; }

}  // namespace sampled

#endif  // SAMPLED_CORE_COMMON_POINTS_H_
