#include "core/io/array_codec.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sampled {
namespace {

static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE 754 types expected");

// The host is little-endian on every platform we build for (x86_64, aarch64); the codec copies bytes.
double ReadValue(const char* p, DType dtype) {
  if (dtype == DType::kFloat32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  double d;
  std::memcpy(&d, p, 8);
  return d;
}

}  // namespace

ArrayAssembler::ArrayAssembler(DType dtype, int64_t dim, int64_t max_rows, int64_t expected_rows)
    : dtype_(dtype), dim_(dim), max_rows_(max_rows) {
  if (expected_rows > 0 && expected_rows <= max_rows) values_.reserve(static_cast<size_t>(expected_rows * dim));
}

absl::Status ArrayAssembler::Append(absl::string_view chunk) {
  const size_t width = static_cast<size_t>(DTypeSize(dtype_));
  if (!partial_.empty()) {
    const size_t take = std::min(width - partial_.size(), chunk.size());
    partial_.append(chunk.data(), take);
    chunk.remove_prefix(take);
    if (partial_.size() == width) {
      values_.push_back(ReadValue(partial_.data(), dtype_));
      partial_.clear();
    }
  }
  const size_t whole = chunk.size() / width;
  // Grow geometrically: reserving exactly one more chunk each time made an upload quadratic in its size.
  if (values_.size() + whole > values_.capacity()) {
    // Never past the limit (plus the row that tells it was passed), whatever the doubling asks for.
    const size_t cap = static_cast<size_t>(std::min<int64_t>(max_rows_, INT64_MAX / 8 / dim_ - 1) + 1) * dim_;
    values_.reserve(std::max(values_.size() + whole, std::min(2 * values_.capacity(), cap)));
  }
  for (size_t i = 0; i < whole; ++i) values_.push_back(ReadValue(chunk.data() + i * width, dtype_));
  partial_.append(chunk.data() + whole * width, chunk.size() - whole * width);
  if (rows_so_far() > max_rows_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("upload exceeds the server's limit of ", max_rows_, " rows per array"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Points> ArrayAssembler::Finish(int64_t expected_rows) {
  const int64_t n = static_cast<int64_t>(values_.size());
  if (!partial_.empty() || n % dim_ != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the array's bytes do not end on a row boundary: ", n, " whole ", DTypeName(dtype_), " values and ",
        partial_.size(), " stray bytes for rows of ", dim_, " values; every row needs exactly ", dim_,
        " values (ragged or truncated data?)"));
  }
  const int64_t rows = n / dim_;
  if (rows == 0) return absl::InvalidArgumentError("the array has no rows");
  if (expected_rows > 0 && rows != expected_rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected ", expected_rows, " rows as the header said, received ", rows));
  }
  Points out = Eigen::Map<const Points>(values_.data(), rows, dim_);
  values_.clear();
  values_.shrink_to_fit();
  return out;
}

absl::StatusOr<Points> DecodeArray(absl::string_view bytes, DType dtype, int64_t dim) {
  if (dim < 1) return absl::InvalidArgumentError(absl::StrCat("dim must be >= 1, got ", dim));
  ArrayAssembler a(dtype, dim, INT64_MAX / 8);
  absl::Status s = a.Append(bytes);
  if (!s.ok()) return s;
  return a.Finish();
}

std::string EncodeRows(const Points& points, int64_t row0, int64_t rows, DType dtype) {
  const int64_t count = rows * points.cols();
  const double* src = points.data() + row0 * points.cols();
  std::string out;
  if (dtype == DType::kFloat32) {
    out.resize(count * 4);
    for (int64_t i = 0; i < count; ++i) {
      const float f = static_cast<float>(src[i]);
      std::memcpy(&out[i * 4], &f, 4);
    }
  } else {
    out.assign(reinterpret_cast<const char*>(src), count * 8);
  }
  return out;
}

}  // namespace sampled
