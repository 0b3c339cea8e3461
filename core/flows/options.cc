#include "core/flows/options.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sampled {

absl::Status OptionReader::Error(const std::string& name, const std::string& message) const {
  return absl::InvalidArgumentError(absl::StrCat("method '", method_, "', option '", name, "': ", message));
}

absl::StatusOr<double> OptionReader::Double(const std::string& name, double default_value, double min,
                                            double max) {
  known_.insert(name);
  auto it = options_.find(name);
  if (it == options_.end()) return default_value;
  double v;
  if (!absl::SimpleAtod(it->second, &v) || !std::isfinite(v)) {
    return Error(name, absl::StrCat("expected a number, got '", it->second, "'"));
  }
  if (v < min || v > max) return Error(name, absl::StrCat("must be in [", min, ", ", max, "], got ", v));
  return v;
}

absl::StatusOr<int64_t> OptionReader::Int(const std::string& name, int64_t default_value, int64_t min,
                                          int64_t max) {
  known_.insert(name);
  auto it = options_.find(name);
  if (it == options_.end()) return default_value;
  int64_t v;
  if (!absl::SimpleAtoi(it->second, &v)) {
    return Error(name, absl::StrCat("expected an integer, got '", it->second, "'"));
  }
  if (v < min || v > max) return Error(name, absl::StrCat("must be in [", min, ", ", max, "], got ", v));
  return v;
}

absl::StatusOr<bool> OptionReader::Bool(const std::string& name, bool default_value) {
  known_.insert(name);
  auto it = options_.find(name);
  if (it == options_.end()) return default_value;
  bool v;
  if (!absl::SimpleAtob(it->second, &v)) {
    return Error(name, absl::StrCat("expected true or false, got '", it->second, "'"));
  }
  return v;
}

absl::StatusOr<std::string> OptionReader::String(const std::string& name, const std::string& default_value) {
  known_.insert(name);
  auto it = options_.find(name);
  return it == options_.end() ? default_value : it->second;
}

bool OptionReader::Has(const std::string& name) {
  known_.insert(name);
  return options_.count(name) > 0;
}

absl::StatusOr<std::string> OptionReader::Choice(const std::string& name, const std::string& default_value,
                                                 const std::vector<std::string>& choices) {
  known_.insert(name);
  auto it = options_.find(name);
  if (it == options_.end()) return default_value;
  if (std::find(choices.begin(), choices.end(), it->second) == choices.end()) {
    return Error(name, absl::StrCat("expected one of ", absl::StrJoin(choices, ", "), ", got '", it->second, "'"));
  }
  return it->second;
}

absl::Status OptionReader::Finish() const {
  for (const auto& [name, value] : options_) {
    if (known_.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "method '", method_, "' has no option '", name, "'",
          known_.empty() ? std::string("; it takes no options")
                         : absl::StrCat("; its options are: ", absl::StrJoin(known_, ", "))));
    }
  }
  return absl::OkStatus();
}

}  // namespace sampled
