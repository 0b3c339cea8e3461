// A stored object's metadata as named fields: what the state directory's database holds for a session,
// target, sampler or job. Fields are looked up by name, so a later release adds fields without a new
// layout: a record written before a field existed reads as that field's default.
#ifndef SAMPLED_SERVER_STORE_RECORD_H_
#define SAMPLED_SERVER_STORE_RECORD_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/common/param_map.h"

namespace sampled::server {

class Record {
 public:
  void Set(const std::string& key, std::string value) { fields_[key] = std::move(value); }
  void SetInt(const std::string& key, int64_t value);
  void SetDouble(const std::string& key, double value);
  void SetTime(const std::string& key, absl::Time t);
  void SetParams(const std::string& key, const ParamMap& params);
  void SetStrings(const std::string& key, const std::vector<std::string>& values);
  void SetMetrics(const std::string& key, const std::map<std::string, double>& metrics);
  void SetRecord(const std::string& key, const Record& nested) { fields_[key] = nested.Encode(); }

  bool Has(const std::string& key) const { return fields_.count(key) > 0; }
  std::string Get(const std::string& key, std::string fallback = "") const;
  int64_t GetInt(const std::string& key, int64_t fallback = 0) const;
  double GetDouble(const std::string& key, double fallback = 0) const;
  absl::Time GetTime(const std::string& key) const;  // InfinitePast when absent
  ParamMap GetParams(const std::string& key) const;
  std::vector<std::string> GetStrings(const std::string& key) const;
  std::map<std::string, double> GetMetrics(const std::string& key) const;
  Record GetRecord(const std::string& key) const;
  std::optional<int64_t> GetOptionalInt(const std::string& key) const;
  std::optional<double> GetOptionalDouble(const std::string& key) const;
  std::optional<std::string> GetOptional(const std::string& key) const;

  std::string Encode() const;
  // INVALID_ARGUMENT (DATA_LOSS at the caller) when `bytes` is not an encoded record.
  static absl::StatusOr<Record> Decode(std::string_view bytes);

 private:
  std::map<std::string, std::string> fields_;
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_STORE_RECORD_H_
