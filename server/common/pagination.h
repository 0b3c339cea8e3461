// Page tokens for list calls over collections kept in creation order: a token is the creation sequence
// number of the first item of the next page, as opaque text.
#ifndef SAMPLED_SERVER_COMMON_PAGINATION_H_
#define SAMPLED_SERVER_COMMON_PAGINATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sampled::server {

struct PageRequest {
  int64_t page_size = 0;  // 0: default
  std::string page_token;
};

// Resolved paging: the first sequence number to return and how many.
struct PageCursor {
  uint64_t start = 0;
  int64_t size = 100;
};

constexpr int64_t kDefaultPageSize = 100;
constexpr int64_t kMaxPageSize = 1000;

// INVALID_ARGUMENT for a negative size or a token this server did not issue.
absl::StatusOr<PageCursor> ParsePage(const PageRequest& request);
std::string PageToken(uint64_t next_sequence);

template <typename T>
struct Page {
  std::vector<T> items;
  std::string next_page_token;  // empty on the last page
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_COMMON_PAGINATION_H_
