// samplectl's commands, as a function so tests can run them in-process. See README.md for the commands.
#ifndef SAMPLED_CLIENT_CPP_CLI_H_
#define SAMPLED_CLIENT_CPP_CLI_H_

#include <ostream>
#include <string>
#include <vector>

namespace sampled::client {

// Runs samplectl with `args` (without the program name). Writes results to `out`, errors (gRPC code name
// and message) to `err`. Returns the exit status: 0 on success, 1 for a failed call or a job that ended
// failed or cancelled, 2 for a usage error.
int RunSamplectl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace sampled::client

#endif  // SAMPLED_CLIENT_CPP_CLI_H_
