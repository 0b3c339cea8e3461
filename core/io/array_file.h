// Reading and writing N x d arrays as .npy (NumPy format 1.0-3.0, float32/float64, 2-D or 1-D) and
// .csv (comma- or whitespace-separated numbers, one row per line, an optional header line).
#ifndef SAMPLED_CORE_IO_ARRAY_FILE_H_
#define SAMPLED_CORE_IO_ARRAY_FILE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/common/points.h"

namespace sampled {

struct LoadedArray {
  Points points;
  DType dtype = DType::kFloat64;  // the file's element type (csv: float64)
};

// Parses .npy bytes. INVALID_ARGUMENT naming what is wrong (not an npy file, an unsupported dtype such as
// integers or big-endian, more than 2 dimensions, truncated data). A 1-D array is read as N x 1.
absl::StatusOr<LoadedArray> ParseNpy(absl::string_view bytes);
std::string FormatNpy(const Points& points, DType dtype);

// Parses CSV text. INVALID_ARGUMENT for a ragged row (naming the line and both counts), a value that is
// not a number, or no rows.
absl::StatusOr<LoadedArray> ParseCsv(absl::string_view text);
std::string FormatCsv(const Points& points);

// By file extension (.npy or .csv, case-insensitive). NOT_FOUND if the file cannot be opened.
absl::StatusOr<LoadedArray> ReadArrayFile(const std::string& path);
absl::Status WriteArrayFile(const std::string& path, const Points& points, DType dtype = DType::kFloat64);

}  // namespace sampled

#endif  // SAMPLED_CORE_IO_ARRAY_FILE_H_
