#include "core/flows/flow_state.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/targets/empirical_target.h"

namespace sampled {
namespace {

constexpr char kMagic[8] = {'S', 'M', 'P', 'F', 'L', 'O', 'W', '2'};

void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void PutMatrix(std::string& out, const Points& m) {
  PutU64(out, static_cast<uint64_t>(m.rows()));
  PutU64(out, static_cast<uint64_t>(m.cols()));
  for (int64_t i = 0; i < m.size(); ++i) {
    uint64_t bits;
    std::memcpy(&bits, m.data() + i, 8);
    PutU64(out, bits);
  }
}

class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  bool U64(uint64_t* v) {
    if (bytes_.size() - pos_ < 8) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i) *v |= static_cast<uint64_t>(static_cast<unsigned char>(bytes_[pos_ + i])) << (8 * i);
    pos_ += 8;
    return true;
  }
  bool Matrix(Points* m) {
    uint64_t rows, cols;
    if (!U64(&rows) || !U64(&cols)) return false;
    if (cols != 0 && rows > (bytes_.size() - pos_) / 8 / cols) return false;
    m->resize(static_cast<int64_t>(rows), static_cast<int64_t>(cols));
    for (int64_t i = 0; i < m->size(); ++i) {
      uint64_t bits;
      if (!U64(&bits)) return false;
      std::memcpy(m->data() + i, &bits, 8);
    }
    return true;
  }
  bool String(std::string* s) {
    uint64_t n;
    if (!U64(&n) || n > bytes_.size() - pos_) return false;
    s->assign(bytes_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool Done() const { return pos_ == bytes_.size(); }
  bool Magic() {
    if (bytes_.size() < sizeof(kMagic) || std::memcmp(bytes_.data(), kMagic, sizeof(kMagic)) != 0) return false;
    pos_ = sizeof(kMagic);
    return true;
  }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<FlowState> MakeInitialState(const InitialParticles& init, int64_t dim, uint64_t seed) {
  FlowState state;
  state.rng = Rng(seed);
  if (init.given != nullptr) {
    if (init.count != 0 || !init.mean.empty() || init.std.has_value()) {
      return absl::InvalidArgumentError(
          "give either initial particles or a particle count with mean/std, not both");
    }
    if (init.given->cols() != dim) {
      return absl::InvalidArgumentError(absl::StrCat("initial particles have dimension ", init.given->cols(),
                                                     " but the target has dimension ", dim));
    }
    if (init.given->rows() < 1) return absl::InvalidArgumentError("initial particles are empty");
    SAMPLED_RETURN_IF_ERROR(CheckFinite(*init.given, "initial particles"));
    state.particles = *init.given;
    return state;
  }
  if (init.count < 1) {
    return absl::InvalidArgumentError(absl::StrCat("particle count must be >= 1, got ", init.count));
  }
  VectorXd mean = VectorXd::Zero(dim);
  if (init.mean.size() == 1) {
    mean.setConstant(init.mean[0]);
  } else if (static_cast<int64_t>(init.mean.size()) == dim) {
    mean = Eigen::Map<const VectorXd>(init.mean.data(), dim);
  } else if (!init.mean.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("init mean needs 1 or ", dim, " values, got ", init.mean.size()));
  }
  if (!mean.allFinite()) return absl::InvalidArgumentError("init mean must be finite");
  const double std = init.std.value_or(1.0);
  if (!(std >= 0 && std::isfinite(std))) {
    return absl::InvalidArgumentError(absl::StrCat("init std must be a finite number >= 0, got ", std));
  }
  state.particles.resize(init.count, dim);
  state.rng.FillNormal(state.particles.data(), state.particles.size());
  state.particles = (std * state.particles).rowwise() + mean.transpose();
  return state;
}

std::string SerializeFlowState(const FlowState& state) {
  std::string out(kMagic, sizeof(kMagic));
  PutU64(out, static_cast<uint64_t>(state.step));
  PutMatrix(out, state.particles);
  PutMatrix(out, state.optimizer_state);
  const std::string rng = state.rng.Serialize();
  PutU64(out, rng.size());
  out += rng;
  PutU64(out, state.values.size());
  for (const auto& [key, value] : state.values) {
    PutU64(out, key.size());
    out += key;
    uint64_t bits;
    std::memcpy(&bits, &value, 8);
    PutU64(out, bits);
  }
  return out;
}

absl::StatusOr<FlowState> ParseFlowState(std::string_view bytes) {
  Reader r(bytes);
  FlowState state;
  uint64_t step;
  std::string rng;
  if (!r.Magic()) return absl::InvalidArgumentError("not a flow state (bad magic)");
  uint64_t count = 0;
  if (!r.U64(&step) || !r.Matrix(&state.particles) || !r.Matrix(&state.optimizer_state) || !r.String(&rng) ||
      !r.U64(&count)) {
    return absl::InvalidArgumentError("flow state is truncated or malformed");
  }
  for (uint64_t i = 0; i < count; ++i) {
    std::string key;
    uint64_t bits;
    if (!r.String(&key) || !r.U64(&bits)) return absl::InvalidArgumentError("flow state is truncated or malformed");
    double value;
    std::memcpy(&value, &bits, 8);
    state.values[key] = value;
  }
  if (!r.Done()) return absl::InvalidArgumentError("flow state has trailing bytes");
  state.step = static_cast<int64_t>(step);
  SAMPLED_RETURN_IF_ERROR(state.rng.Deserialize(rng));
  return state;
}

void DisplacementStats(const Points& displacement, StepStats* stats) {
  double sum = 0, max = 0;
  for (int64_t i = 0; i < displacement.rows(); ++i) {
    const double n = displacement.row(i).norm();
    sum += n;
    max = std::max(max, n);
  }
  stats->mean_displacement = displacement.rows() > 0 ? sum / displacement.rows() : 0.0;
  stats->max_displacement = max;
}

}  // namespace sampled
