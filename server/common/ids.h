// Opaque resource ids: a one-letter kind, an underscore and 16 random hex digits ("s_4f0c...").
#ifndef SAMPLED_SERVER_COMMON_IDS_H_
#define SAMPLED_SERVER_COMMON_IDS_H_

#include <string>

namespace sampled::server {

// Thread-safe. `kind` is 's' (session), 't' (target) or 'j' (job).
std::string NewId(char kind);

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_COMMON_IDS_H_
