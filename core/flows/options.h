// Reading a method's options (name -> text) with types, defaults and ranges; any option the method did
// not ask for is refused by Finish, so a misspelt or misplaced option is an error, never ignored.
#ifndef SAMPLED_CORE_FLOWS_OPTIONS_H_
#define SAMPLED_CORE_FLOWS_OPTIONS_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sampled {

// Not thread-safe; one per Create call.
class OptionReader {
 public:
  OptionReader(const std::map<std::string, std::string>& options, std::string method)
      : options_(options), method_(std::move(method)) {}

  // INVALID_ARGUMENT naming the option when the text is not a number or out of [min, max].
  absl::StatusOr<double> Double(const std::string& name, double default_value, double min, double max);
  absl::StatusOr<int64_t> Int(const std::string& name, int64_t default_value, int64_t min, int64_t max);
  absl::StatusOr<bool> Bool(const std::string& name, bool default_value);
  // Any text.
  absl::StatusOr<std::string> String(const std::string& name, const std::string& default_value);
  // Whether the option was given (marks it known).
  bool Has(const std::string& name);
  // One of `choices`.
  absl::StatusOr<std::string> Choice(const std::string& name, const std::string& default_value,
                                     const std::vector<std::string>& choices);
  // INVALID_ARGUMENT naming the first option nobody asked for.
  absl::Status Finish() const;

  absl::Status Error(const std::string& name, const std::string& message) const;

 private:
  const std::map<std::string, std::string>& options_;
  std::string method_;
  std::set<std::string> known_;
};

}  // namespace sampled

#endif  // SAMPLED_CORE_FLOWS_OPTIONS_H_
