#include "server/store/record.h"

#include "core/common/byte_codec.h"

namespace sampled::server {
namespace {
constexpr std::string_view kMagic = "SDREC1";

std::string Scalar(uint64_t bits) {
  std::string out;
  ByteWriter(&out).U64(bits);
  return out;
}
uint64_t ReadScalar(const std::string& s) {
  uint64_t v = 0;
  ByteReader r(s);
  r.U64(&v);
  return v;
}
}  // namespace

void Record::SetInt(const std::string& key, int64_t value) { fields_[key] = Scalar(static_cast<uint64_t>(value)); }

void Record::SetDouble(const std::string& key, double value) {
  std::string out;
  ByteWriter(&out).F64(value);
  fields_[key] = out;
}

void Record::SetTime(const std::string& key, absl::Time t) {
  if (t == absl::InfinitePast()) {
    fields_.erase(key);
  } else {
    SetInt(key, absl::ToUnixMicros(t));
  }
}

void Record::SetParams(const std::string& key, const ParamMap& params) {
  std::string out;
  ByteWriter w(&out);
  w.U64(params.size());
  for (const auto& [name, values] : params) {
    w.String(name);
    w.U64(values.size());
    for (double v : values) w.F64(v);
  }
  fields_[key] = out;
}

void Record::SetStrings(const std::string& key, const std::vector<std::string>& values) {
  std::string out;
  ByteWriter w(&out);
  w.U64(values.size());
  for (const std::string& v : values) w.String(v);
  fields_[key] = out;
}

void Record::SetMetrics(const std::string& key, const std::map<std::string, double>& metrics) {
  ParamMap p;
  for (const auto& [name, v] : metrics) p[name] = {v};
  SetParams(key, p);
}

std::string Record::Get(const std::string& key, std::string fallback) const {
  auto it = fields_.find(key);
  return it == fields_.end() ? fallback : it->second;
}

std::optional<std::string> Record::GetOptional(const std::string& key) const {
  auto it = fields_.find(key);
  if (it == fields_.end()) return std::nullopt;
  return it->second;
}

int64_t Record::GetInt(const std::string& key, int64_t fallback) const {
  auto it = fields_.find(key);
  return it == fields_.end() || it->second.size() != 8 ? fallback : static_cast<int64_t>(ReadScalar(it->second));
}

std::optional<int64_t> Record::GetOptionalInt(const std::string& key) const {
  if (!Has(key)) return std::nullopt;
  return GetInt(key);
}

double Record::GetDouble(const std::string& key, double fallback) const {
  auto it = fields_.find(key);
  if (it == fields_.end() || it->second.size() != 8) return fallback;
  double v = fallback;
  ByteReader(it->second).F64(&v);
  return v;
}

std::optional<double> Record::GetOptionalDouble(const std::string& key) const {
  if (!Has(key)) return std::nullopt;
  return GetDouble(key);
}

absl::Time Record::GetTime(const std::string& key) const {
  if (!Has(key)) return absl::InfinitePast();
  return absl::FromUnixMicros(GetInt(key));
}

ParamMap Record::GetParams(const std::string& key) const {
  ParamMap out;
  auto it = fields_.find(key);
  if (it == fields_.end()) return out;
  ByteReader r(it->second);
  uint64_t n = 0;
  if (!r.U64(&n)) return out;
  for (uint64_t i = 0; i < n; ++i) {
    std::string name;
    uint64_t count = 0;
    if (!r.String(&name) || !r.U64(&count) || count > it->second.size() / 8) return out;
    std::vector<double>& values = out[name];
    values.resize(count);
    for (double& v : values) {
      if (!r.F64(&v)) return out;
    }
  }
  return out;
}

std::vector<std::string> Record::GetStrings(const std::string& key) const {
  std::vector<std::string> out;
  auto it = fields_.find(key);
  if (it == fields_.end()) return out;
  ByteReader r(it->second);
  uint64_t n = 0;
  if (!r.U64(&n) || n > it->second.size()) return out;
  for (uint64_t i = 0; i < n; ++i) {
    std::string v;
    if (!r.String(&v)) return out;
    out.push_back(std::move(v));
  }
  return out;
}

std::map<std::string, double> Record::GetMetrics(const std::string& key) const {
  std::map<std::string, double> out;
  for (const auto& [name, values] : GetParams(key)) {
    if (!values.empty()) out[name] = values[0];
  }
  return out;
}

Record Record::GetRecord(const std::string& key) const {
  absl::StatusOr<Record> r = Decode(Get(key));
  return r.ok() ? *std::move(r) : Record();
}

std::string Record::Encode() const {
  std::string out(kMagic);
  ByteWriter w(&out);
  w.U64(fields_.size());
  for (const auto& [key, value] : fields_) {
    w.String(key);
    w.String(value);
  }
  return out;
}

absl::StatusOr<Record> Record::Decode(std::string_view bytes) {
  ByteReader r(bytes);
  Record out;
  uint64_t n = 0;
  if (!r.Magic(kMagic) || !r.U64(&n) || n > bytes.size()) return absl::InvalidArgumentError("not a stored record");
  for (uint64_t i = 0; i < n; ++i) {
    std::string key, value;
    if (!r.String(&key) || !r.String(&value)) return absl::InvalidArgumentError("a stored record is truncated");
    out.fields_[std::move(key)] = std::move(value);
  }
  if (!r.Done()) return absl::InvalidArgumentError("a stored record has trailing bytes");
  return out;
}

}  // namespace sampled::server
