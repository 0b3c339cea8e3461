// Named real-valued parameters (of a target family, a request): a scalar is a vector of length 1, a matrix
// is stored row-major. A header of its own so that the client library can use it without core's targets.
#ifndef SAMPLED_CORE_COMMON_PARAM_MAP_H_
#define SAMPLED_CORE_COMMON_PARAM_MAP_H_

#include <map>
#include <string>
#include <vector>

namespace sampled {

using ParamMap = std::map<std::string, std::vector<double>>;

}  // namespace sampled

#endif  // SAMPLED_CORE_COMMON_PARAM_MAP_H_
