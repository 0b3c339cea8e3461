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

// n values of type T from unaligned little-endian bytes, widened to double (a loop the compiler vectorises).
template <typename T>
void DecodeValues(const char* src, size_t n, double* out) {
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    out[i] = static_cast<double>(v);
  }
}

}  // namespace

ArrayAssembler::ArrayAssembler(DType dtype, int64_t dim, int64_t max_rows, int64_t expected_rows)
    : dtype_(dtype), dim_(dim), max_rows_(max_rows) {
  // The array is decoded straight into its final storage: one allocation when the header gives the rows.
  if (expected_rows > 0 && expected_rows <= max_rows) buffer_.resize(expected_rows, dim);
}

int64_t ArrayAssembler::GrownRows(int64_t values) const {
  if (values <= static_cast<int64_t>(buffer_.size())) return buffer_.rows();
  // Grow geometrically (reserving exactly one more chunk each time made an upload quadratic in its size),
  // never past the limit plus the row that tells it was passed.
  const int64_t limit_rows = std::min<int64_t>(max_rows_, INT64_MAX / 8 / dim_ - 1) + 1;
  return std::max((values + dim_ - 1) / dim_, std::min(limit_rows, std::max<int64_t>(2 * buffer_.rows(), 1024)));
}

int64_t ArrayAssembler::CapacityBytesAfter(int64_t chunk_bytes) const {
  const int64_t values = count_ + (static_cast<int64_t>(partial_.size()) + chunk_bytes) / DTypeSize(dtype_);
  const int64_t rows = std::min<int64_t>(GrownRows(values), INT64_MAX / 16 / dim_);
  return rows * dim_ * 8;
}

void ArrayAssembler::Reserve(int64_t values) {
  const int64_t capacity = buffer_.size();
  if (values <= capacity) return;
  const int64_t rows = GrownRows(values);
  Points grown(rows, dim_);
  std::copy(buffer_.data(), buffer_.data() + count_, grown.data());
  buffer_.swap(grown);
}

absl::Status ArrayAssembler::Append(absl::string_view chunk) {
  const size_t width = static_cast<size_t>(DTypeSize(dtype_));
  if (!partial_.empty()) {
    const size_t take = std::min(width - partial_.size(), chunk.size());
    partial_.append(chunk.data(), take);
    chunk.remove_prefix(take);
    if (partial_.size() == width) {
      Reserve(count_ + 1);
      buffer_.data()[count_++] = ReadValue(partial_.data(), dtype_);
      partial_.clear();
    }
  }
  const size_t whole = chunk.size() / width;
  // Refuse before growing: a chunk that passes the limit is not decoded.
  if ((count_ + static_cast<int64_t>(whole)) / dim_ > max_rows_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("upload exceeds the server's limit of ", max_rows_, " rows per array"));
  }
  Reserve(count_ + static_cast<int64_t>(whole));
  double* out = buffer_.data() + count_;
  if (dtype_ == DType::kFloat32) {
    DecodeValues<float>(chunk.data(), whole, out);
  } else {
    DecodeValues<double>(chunk.data(), whole, out);
  }
  count_ += static_cast<int64_t>(whole);
  partial_.append(chunk.data() + whole * width, chunk.size() - whole * width);
  return absl::OkStatus();
}

absl::StatusOr<Points> ArrayAssembler::Finish(int64_t expected_rows) {
  const int64_t n = count_;
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
  Points out;
  out.swap(buffer_);
  count_ = 0;
  // Row-major with the columns unchanged: dropping the unused rows keeps the data in place.
  if (out.rows() != rows) out.conservativeResize(rows, dim_);
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
