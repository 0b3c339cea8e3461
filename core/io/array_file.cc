#include "core/io/array_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/io/array_codec.h"

namespace sampled {
namespace {

constexpr char kNpyMagic[] = "\x93NUMPY";

absl::Status NpyError(const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("not a readable .npy array: ", why));
}

// Extracts the value text of 'key' from the header dict, e.g. 'descr': '<f8'.
bool HeaderValue(absl::string_view header, absl::string_view key, std::string* value) {
  const std::string quoted = absl::StrCat("'", key, "'");
  size_t pos = header.find(quoted);
  if (pos == absl::string_view::npos) return false;
  pos = header.find(':', pos);
  if (pos == absl::string_view::npos) return false;
  absl::string_view rest = absl::StripLeadingAsciiWhitespace(header.substr(pos + 1));
  size_t end;
  if (!rest.empty() && rest[0] == '(') {
    end = rest.find(')');
    if (end == absl::string_view::npos) return false;
    *value = std::string(rest.substr(0, end + 1));
  } else {
    end = rest.find_first_of(",}");
    *value = std::string(absl::StripAsciiWhitespace(rest.substr(0, end)));
  }
  return true;
}

std::string Lower(const std::string& s) { return absl::AsciiStrToLower(s); }

}  // namespace

absl::StatusOr<LoadedArray> ParseNpy(absl::string_view bytes) {
  if (bytes.size() < 10 || bytes.substr(0, 6) != absl::string_view(kNpyMagic, 6)) {
    return NpyError("missing the \\x93NUMPY magic");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, offset;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return NpyError("truncated header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    return NpyError(absl::StrCat("unsupported format version ", major));
  }
  if (bytes.size() < offset + header_len) return NpyError("truncated header");
  const absl::string_view header = bytes.substr(offset, header_len);
  std::string descr, fortran, shape;
  if (!HeaderValue(header, "descr", &descr) || !HeaderValue(header, "fortran_order", &fortran) ||
      !HeaderValue(header, "shape", &shape)) {
    return NpyError("header lacks descr, fortran_order or shape");
  }
  LoadedArray out;
  if (descr == "'<f8'" || descr == "'=f8'") {
    out.dtype = DType::kFloat64;
  } else if (descr == "'<f4'" || descr == "'=f4'") {
    out.dtype = DType::kFloat32;
  } else {
    return NpyError(absl::StrCat("dtype ", descr, " is not supported; save float32 or float64 (little-endian)"));
  }
  std::vector<int64_t> dims;
  for (absl::string_view part : absl::StrSplit(absl::StripPrefix(absl::StripSuffix(shape, ")"), "("), ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) continue;
    int64_t v;
    if (!absl::SimpleAtoi(part, &v) || v < 0) return NpyError(absl::StrCat("bad shape ", shape));
    dims.push_back(v);
  }
  if (dims.empty() || dims.size() > 2) {
    return NpyError(absl::StrCat("shape ", shape, " is not 1-D or 2-D; save an N x d array"));
  }
  const int64_t rows = dims[0], cols = dims.size() == 2 ? dims[1] : 1;
  if (cols < 1 || rows < 1) return NpyError(absl::StrCat("shape ", shape, " is empty"));
  const absl::string_view data = bytes.substr(offset + header_len);
  const size_t need = static_cast<size_t>(rows * cols * DTypeSize(out.dtype));
  if (data.size() < need) {
    return NpyError(absl::StrCat("data truncated: shape ", shape, " needs ", need, " bytes, file has ", data.size()));
  }
  const bool fortran_order = fortran == "True";
  absl::StatusOr<Points> decoded =
      DecodeArray(data.substr(0, need), out.dtype, fortran_order ? rows : cols);
  if (!decoded.ok()) return decoded.status();
  out.points = fortran_order ? Points(decoded->transpose()) : *std::move(decoded);
  return out;
}

std::string FormatNpy(const Points& points, DType dtype) {
  std::string header = absl::StrCat("{'descr': '", dtype == DType::kFloat32 ? "<f4" : "<f8",
                                    "', 'fortran_order': False, 'shape': (", points.rows(), ", ", points.cols(),
                                    "), }");
  // Pad so that magic + version + length + header ends on a multiple of 64 bytes, header ends in '\n'.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out(kNpyMagic, 6);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  out += EncodeRows(points, 0, points.rows(), dtype);
  return out;
}

absl::StatusOr<LoadedArray> ParseCsv(absl::string_view text) {
  std::vector<double> values;
  int64_t cols = -1, rows = 0, first_data_line = 0;
  int64_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(", \t;"), absl::SkipEmpty());
    std::vector<double> row;
    bool numeric = true;
    for (absl::string_view f : fields) {
      double v;
      if (!absl::SimpleAtod(f, &v)) {
        numeric = false;
        if (rows == 0 && first_data_line == 0) break;  // a header line
        return absl::InvalidArgumentError(
            absl::StrCat("csv line ", line_no, ": '", f, "' is not a number"));
      }
      row.push_back(v);
    }
    if (!numeric) {
      first_data_line = line_no;  // skip one header line
      continue;
    }
    if (cols < 0) cols = static_cast<int64_t>(row.size());
    if (static_cast<int64_t>(row.size()) != cols) {
      return absl::InvalidArgumentError(absl::StrCat("csv line ", line_no, " has ", row.size(),
                                                     " values but the first row has ", cols,
                                                     "; every row needs the same number of columns"));
    }
    values.insert(values.end(), row.begin(), row.end());
    ++rows;
  }
  if (rows == 0) return absl::InvalidArgumentError("csv has no numeric rows");
  LoadedArray out;
  out.points = Eigen::Map<const Points>(values.data(), rows, cols);
  return out;
}

std::string FormatCsv(const Points& points) {
  std::string out;
  for (int64_t i = 0; i < points.rows(); ++i) {
    for (int64_t j = 0; j < points.cols(); ++j) {
      if (j > 0) out.push_back(',');
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.17g", points(i, j));
      out += buf;
    }
    out.push_back('\n');
  }
  return out;
}

absl::StatusOr<LoadedArray> ReadArrayFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open '", path, "': ", std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  const std::string lower = Lower(path);
  if (absl::EndsWith(lower, ".npy")) return ParseNpy(bytes);
  if (absl::EndsWith(lower, ".csv") || absl::EndsWith(lower, ".txt")) return ParseCsv(bytes);
  return absl::InvalidArgumentError(absl::StrCat("'", path, "': unknown extension; use .npy or .csv"));
}

absl::Status WriteArrayFile(const std::string& path, const Points& points, DType dtype) {
  const std::string lower = Lower(path);
  std::string bytes;
  if (absl::EndsWith(lower, ".npy")) {
    bytes = FormatNpy(points, dtype);
  } else if (absl::EndsWith(lower, ".csv") || absl::EndsWith(lower, ".txt")) {
    bytes = FormatCsv(points);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "': unknown extension; use .npy or .csv"));
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write '", path, "': ", std::strerror(errno)));
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) return absl::InternalError(absl::StrCat("write to '", path, "' failed"));
  return absl::OkStatus();
}

}  // namespace sampled
