// Arrays on the wire: row-major, little-endian float32 or float64 bytes (the layout of the proto's
// chunked uploads and particle downloads). No protobuf here: bytes in, points out.
#ifndef SAMPLED_CORE_IO_ARRAY_CODEC_H_
#define SAMPLED_CORE_IO_ARRAY_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/common/points.h"

namespace sampled {

// Reassembles an array from chunks whose boundaries may fall anywhere (inside a value or a row).
// Not thread-safe.
class ArrayAssembler {
 public:
  // dim >= 1; max_rows bounds the upload (RESOURCE_EXHAUSTED past it). `expected_rows` > 0 (at most
  // max_rows) reserves the whole array up front; otherwise the buffer grows geometrically, so an upload
  // takes time linear in its size either way.
  ArrayAssembler(DType dtype, int64_t dim, int64_t max_rows, int64_t expected_rows = 0);

  // Appends bytes. RESOURCE_EXHAUSTED once more than max_rows rows have arrived.
  absl::Status Append(absl::string_view chunk);
  // The array. INVALID_ARGUMENT when the bytes do not end on a row boundary (a ragged last row) or no
  // row arrived; `expected_rows` > 0 also requires exactly that many rows.
  absl::StatusOr<Points> Finish(int64_t expected_rows = 0);

  int64_t rows_so_far() const { return count_ / dim_; }
  // Bytes the buffer holds now, and would hold after appending `chunk_bytes` more (its geometric growth;
  // while it grows the old buffer is held too): what a memory budget charges before Append.
  int64_t capacity_bytes() const { return static_cast<int64_t>(buffer_.size()) * 8; }
  int64_t CapacityBytesAfter(int64_t chunk_bytes) const;

 private:
  // Makes room for `values` values in buffer_.
  void Reserve(int64_t values);
  // The rows buffer_ grows to for `values` values (its current rows when they fit).
  int64_t GrownRows(int64_t values) const;

  DType dtype_;
  int64_t dim_;
  int64_t max_rows_;
  Points buffer_;        // the array being assembled: its first count_ values are filled
  int64_t count_ = 0;
  std::string partial_;  // bytes of a value split across chunks
};

// Decodes a whole buffer (INVALID_ARGUMENT if its size is not a whole number of rows).
absl::StatusOr<Points> DecodeArray(absl::string_view bytes, DType dtype, int64_t dim);

// Encodes rows [row0, row0 + rows) of `points` as `dtype` bytes.
std::string EncodeRows(const Points& points, int64_t row0, int64_t rows, DType dtype);

}  // namespace sampled

#endif  // SAMPLED_CORE_IO_ARRAY_CODEC_H_
