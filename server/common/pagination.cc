#include "server/common/pagination.h"

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace sampled::server {

absl::StatusOr<PageCursor> ParsePage(const PageRequest& request) {
  PageCursor c;
  if (request.page_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat("page_size must be >= 0, got ", request.page_size));
  }
  c.size = request.page_size == 0 ? kDefaultPageSize : std::min(request.page_size, kMaxPageSize);
  if (!request.page_token.empty()) {
    absl::string_view t = request.page_token;
    if (!absl::ConsumePrefix(&t, "p") || !absl::SimpleAtoi(t, &c.start)) {
      return absl::InvalidArgumentError(
          absl::StrCat("page_token '", request.page_token, "' was not issued by this server"));
    }
  }
  return c;
}

std::string PageToken(uint64_t next_sequence) { return absl::StrCat("p", next_sequence); }

}  // namespace sampled::server
