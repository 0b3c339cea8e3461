#include "core/training/sampler.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/common/byte_codec.h"
#include "core/common/parallel.h"
#include "core/common/rng.h"
#include "core/common/status_macros.h"

namespace sampled::training {
namespace {

constexpr std::string_view kMagic("SMPSAMPLER\n", 11);
constexpr int64_t kMaxFileWidth = int64_t{1} << 20;
constexpr int64_t kMaxFileLayers = 1024;

uint64_t Fnv1a(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

// A score model's block of a sampler file, checked: it must fit the network (in = dim + 1 + 2 m, out = dim)
// and its prior must build.
absl::Status ReadScoreModel(ByteReader& r, const MlpShape& shape, ScoreSdeModel* sm) {
  std::string dynamics;
  uint64_t keys = 0, residual = 0;
  if (!r.String(&dynamics) || !r.I64(&sm->dim) || !r.F64(&sm->t_end) || !r.F64(&sm->t_min) || !r.F64(&sm->beta_min) ||
      !r.F64(&sm->beta_max) || !r.Floats(&sm->frequencies) || !r.I64(&sm->default_steps) || !r.U64(&residual) ||
      residual > 1 || !r.U64(&keys) || keys > 16) {
    return absl::InvalidArgumentError("sampler file's score model is truncated or malformed");
  }
  auto d = ParseNoisingDynamics(dynamics);
  if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat("sampler file: ", d.status().message()));
  sm->dynamics = *d;
  sm->residual = residual == 1;
  for (uint64_t k = 0; k < keys; ++k) {
    std::string key;
    uint64_t n = 0;
    if (!r.String(&key) || !r.U64(&n) || n > (uint64_t{1} << 26)) {
      return absl::InvalidArgumentError("sampler file's score-model prior is malformed");
    }
    std::vector<double>& values = sm->prior[key];
    values.resize(n);
    for (double& v : values) {
      if (!r.F64(&v)) return absl::InvalidArgumentError("sampler file's score-model prior is truncated");
    }
  }
  const int64_t m = static_cast<int64_t>(sm->frequencies.size());
  if (sm->dim != shape.out || shape.in != sm->dim + 1 + 2 * m) {
    return absl::InvalidArgumentError(absl::StrCat("sampler file's score model (dimension ", sm->dim, ", ", m,
                                                   " time features) does not fit its network (", shape.in, " -> ",
                                                   shape.out, ")"));
  }
  const bool times_ok = std::isfinite(sm->t_end) && sm->t_end > 0 && std::isfinite(sm->t_min) && sm->t_min >= 0 &&
                        sm->t_min < sm->t_end && std::isfinite(sm->beta_min) && std::isfinite(sm->beta_max);
  if (!times_ok || sm->default_steps < 1 || sm->default_steps > 100000) {
    return absl::InvalidArgumentError("sampler file's score model has times or steps out of range");
  }
  for (float f : sm->frequencies) {
    if (!std::isfinite(f)) return absl::InvalidArgumentError("sampler file's time features are not finite");
  }
  sm->shape = shape;
  auto prior = ScoreSdePrior(*sm);
  if (!prior.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("sampler file's score-model prior: ", prior.status().message()));
  }
  return absl::OkStatus();
}

}  // namespace

uint64_t DrawBlockSeed(uint64_t seed, int64_t block) { return BlockSeed(seed, block); }

namespace {
// The latents of blocks [first_block, first_block + blocks) of the seed's stream, `width` per row, into z.
void BlockLatents(uint64_t seed, int64_t first_block, int64_t blocks, int64_t width, PointsF* z) {
  z->resize(blocks * kDrawBlockRows, width);
  for (int64_t b = 0; b < blocks; ++b) {
    Rng rng(DrawBlockSeed(seed, first_block + b));
    rng.FillNormal(z->data() + b * kDrawBlockRows * width, kDrawBlockRows * width);
  }
}
}  // namespace

void DrawBlocks(const MlpShape& shape, const std::vector<float>& params, uint64_t seed, int64_t first_block,
                int64_t blocks, int threads, PointsF* out) {
  PointsF z;
  BlockLatents(seed, first_block, blocks, shape.in, &z);
  // MlpForward's row blocks divide kDrawBlockRows, so a row's value does not depend on its neighbours.
  MlpForward(shape, params, z, threads, nullptr, out);
}

int64_t DriftSteps(const MlpShape& shape, const std::vector<float>& params) {
  const size_t p = static_cast<size_t>(shape.parameter_count());
  return p == 0 || params.size() % p != 0 ? 0 : static_cast<int64_t>(params.size() / p);
}

absl::Status ApplyDrifts(const MlpShape& shape, const std::vector<float>& params, int64_t first, int64_t count,
                         double epsilon, int threads, const std::atomic<bool>* cancelled, PointsF* x) {
  const int64_t p = shape.parameter_count();
  std::vector<float> drift(static_cast<size_t>(p));
  PointsF h;
  for (int64_t k = first; k < first + count; ++k) {
    if (cancelled != nullptr && cancelled->load(std::memory_order_relaxed)) {
      return absl::CancelledError(absl::StrCat("the draw was cancelled at drift ", k - first, " of ", count));
    }
    std::copy(params.begin() + k * p, params.begin() + (k + 1) * p, drift.begin());
    MlpForward(shape, drift, *x, threads, nullptr, &h);
    *x += static_cast<float>(epsilon) * h;
  }
  return absl::OkStatus();
}

void Draw(const MlpShape& shape, const std::vector<float>& params, uint64_t seed, int64_t n, int threads,
          PointsF* out) {
  const int64_t blocks = (n + kDrawBlockRows - 1) / kDrawBlockRows;
  DrawBlocks(shape, params, seed, 0, blocks, threads, out);
  out->conservativeResize(n, shape.out);
}

int64_t SamplerModel::bytes() const {
  int64_t n = static_cast<int64_t>((final_params.size() + best_params.size()) * sizeof(float) + provenance_json.size());
  if (drift) n += static_cast<int64_t>(sizeof(DriftChain));
  if (score_model) {
    n += static_cast<int64_t>(score_model->frequencies.size() * sizeof(float));
    for (const auto& [k, v] : score_model->prior) n += static_cast<int64_t>(k.size() + v.size() * sizeof(double));
  }
  return n;
}

absl::StatusOr<std::shared_ptr<const Target>> DrawPrior(const SamplerModel& model) {
  if (!model.score_model) return std::shared_ptr<const Target>();
  return ScoreSdePrior(*model.score_model);
}

absl::Status DrawModelBlocks(const SamplerModel& model, const Target* prior, bool best, const DrawOptions& options,
                             uint64_t seed, int64_t first_block, int64_t blocks, int threads, PointsF* out) {
  if (model.drift) {  // x_0 ~ N(0, I_d) per block, then the chain's first `steps` drifts (all by default)
    const std::vector<float>& params = model.params(best);
    const int64_t available = DriftSteps(model.shape, params);
    if (options.steps > available) {
      return absl::InvalidArgumentError(absl::StrCat("steps ", options.steps, " is past the ", available,
                                                     " drifts this sampler holds"));
    }
    BlockLatents(seed, first_block, blocks, model.shape.out, out);
    return ApplyDrifts(model.shape, params, 0, options.steps > 0 ? options.steps : available, model.drift->epsilon,
                       threads, options.cancelled, out);
  }
  if (!model.score_model) {
    DrawBlocks(model.shape, model.params(best), seed, first_block, blocks, threads, out);
    return absl::OkStatus();
  }
  return DrawScoreSdeBlocks(*model.score_model, model.params(best), prior, options, seed, first_block, blocks,
                            threads, out);
}

absl::Status DrawModel(const SamplerModel& model, bool best, const DrawOptions& options, uint64_t seed, int64_t n,
                       int threads, PointsF* out) {
  const int64_t blocks = (n + kDrawBlockRows - 1) / kDrawBlockRows;
  SAMPLED_ASSIGN_OR_RETURN(std::shared_ptr<const Target> prior, DrawPrior(model));
  SAMPLED_RETURN_IF_ERROR(DrawModelBlocks(model, prior.get(), best, options, seed, 0, blocks, threads, out));
  out->conservativeResize(n, model.dim());
  return absl::OkStatus();
}

int64_t DrawMultiplyAdds(const SamplerModel& model, const DrawOptions& options) {
  const int64_t pass = model.shape.forward_multiply_adds();
  if (model.drift) return (options.steps > 0 ? options.steps : DriftSteps(model.shape, model.final_params)) * pass;
  if (!model.score_model) return pass;
  const int64_t steps = options.steps > 0 ? options.steps : model.score_model->default_steps;
  return steps * pass;
}

std::string EncodeSamplerFile(const SamplerModel& m) {
  std::string out(kMagic);
  ByteWriter w(&out);
  w.U64(m.drift ? 3 : m.score_model ? 2 : 1);
  w.String(m.provenance_json);
  w.I64(m.shape.in);
  w.I64(m.shape.out);
  w.String(ActivationName(m.shape.activation));
  w.U64(m.shape.hidden.size());
  for (int64_t h : m.shape.hidden) w.I64(h);
  w.Floats(m.final_params);
  w.Floats(m.best_params);
  w.U64((m.last_finite ? 1 : 0) | (m.score_model ? 2 : 0) | (m.drift ? 4 : 0));
  if (const ScoreSdeModel* sm = m.score_model ? &*m.score_model : nullptr) {
    w.String(NoisingDynamicsName(sm->dynamics));
    w.I64(sm->dim);
    for (double v : {sm->t_end, sm->t_min, sm->beta_min, sm->beta_max}) w.F64(v);
    w.Floats(sm->frequencies);
    w.I64(sm->default_steps);
    w.U64(sm->residual ? 1 : 0);
    w.U64(sm->prior.size());
    for (const auto& [key, values] : sm->prior) {
      w.String(key);
      w.U64(values.size());
      for (double v : values) w.F64(v);
    }
  }
  if (m.drift) w.F64(m.drift->epsilon);
  w.U64(Fnv1a(out));
  return out;
}

absl::StatusOr<SamplerModel> DecodeSamplerFile(std::string_view bytes) {
  ByteReader r(bytes);
  if (!r.Magic(kMagic)) return absl::InvalidArgumentError("not a sampler file (it does not start with SMPSAMPLER)");
  uint64_t version = 0;
  if (!r.U64(&version)) return absl::InvalidArgumentError("sampler file is truncated (no version)");
  if (version < 1 || version > kSamplerFileVersion) {
    return absl::InvalidArgumentError(absl::StrCat("sampler file version ", version, " is not supported (this build "
                                                   "reads version ", kSamplerFileVersion, ")"));
  }
  if (bytes.size() < 8) return absl::InvalidArgumentError("sampler file is truncated");
  uint64_t stored = 0;
  {
    ByteReader tail(bytes.substr(bytes.size() - 8));
    tail.U64(&stored);
  }
  if (Fnv1a(bytes.substr(0, bytes.size() - 8)) != stored) {
    return absl::InvalidArgumentError("sampler file is corrupted or truncated (its checksum does not match)");
  }
  SamplerModel m;
  std::string activation;
  uint64_t hidden = 0, flags = 0;
  if (!r.String(&m.provenance_json) || !r.I64(&m.shape.in) || !r.I64(&m.shape.out) || !r.String(&activation) ||
      !r.U64(&hidden) || hidden > kMaxFileLayers) {
    return absl::InvalidArgumentError("sampler file's architecture is malformed");
  }
  for (uint64_t i = 0; i < hidden; ++i) {
    int64_t width;
    if (!r.I64(&width) || width <= 0 || width > kMaxFileWidth) {
      return absl::InvalidArgumentError("sampler file's hidden widths are malformed");
    }
    m.shape.hidden.push_back(width);
  }
  if (m.shape.in <= 0 || m.shape.in > kMaxFileWidth || m.shape.out <= 0 || m.shape.out > kMaxFileWidth) {
    return absl::InvalidArgumentError("sampler file's input or output width is out of range");
  }
  auto act = ParseActivation(activation);
  if (!act.ok()) return absl::InvalidArgumentError(absl::StrCat("sampler file: ", act.status().message()));
  m.shape.activation = *act;
  if (!r.Floats(&m.final_params) || !r.Floats(&m.best_params) || !r.U64(&flags)) {
    return absl::InvalidArgumentError("sampler file's weights are truncated");
  }
  if ((flags & 2) != 0) {
    if (version < 2) return absl::InvalidArgumentError("sampler file version 1 cannot hold a score model");
    SAMPLED_RETURN_IF_ERROR(ReadScoreModel(r, m.shape, &m.score_model.emplace()));
  }
  if ((flags & 4) != 0) {
    double epsilon = 0;
    if (version < 3 || (flags & 2) != 0) {
      return absl::InvalidArgumentError("sampler file's drift-chain flag is set in a file that cannot hold one");
    }
    if (!r.F64(&epsilon) || !(epsilon > 0) || !std::isfinite(epsilon) || m.shape.in != m.shape.out) {
      return absl::InvalidArgumentError("sampler file's drift chain is malformed (epsilon > 0, a d -> d network)");
    }
    m.drift = DriftChain{epsilon};
  }
  uint64_t checksum;
  if (!r.U64(&checksum) || !r.Done()) return absl::InvalidArgumentError("sampler file has trailing bytes");
  const size_t count = static_cast<size_t>(m.shape.parameter_count());
  if (m.drift) {  // whole networks, at least one; the best checkpoint a prefix of the chain
    const size_t steps = m.final_params.size() / count, best = m.best_params.size() / count;
    if (m.final_params.empty() || m.final_params.size() % count != 0 || m.best_params.size() % count != 0 ||
        best > steps) {
      return absl::InvalidArgumentError(absl::StrCat("sampler file holds ", m.final_params.size(),
                                                     " weights; a chain of its drifts needs a multiple of ", count));
    }
  } else if (m.final_params.size() != count || (!m.best_params.empty() && m.best_params.size() != count)) {
    return absl::InvalidArgumentError(absl::StrCat("sampler file holds ", m.final_params.size(),
                                                   " weights; its architecture needs ", count));
  }
  for (const auto* v : {&m.final_params, &m.best_params}) {
    for (float f : *v) {
      if (!std::isfinite(f)) return absl::InvalidArgumentError("sampler file holds non-finite weights");
    }
  }
  m.last_finite = (flags & 1) != 0;
  return m;
}

std::string WithTrainingResult(std::string_view provenance_json, const TrainingResult& r) {
  std::string out(provenance_json);
  const size_t close = out.rfind('}');
  if (close == std::string::npos) return out;
  const bool empty = out.find_first_not_of(" \t\n\r", out.find('{') + 1) == close;
  out.insert(close, absl::StrCat(empty ? "" : ", ", "\"result\": {\"method\": ", JsonString(r.method),
                                 ", \"steps\": ", r.steps, ", \"best_step\": ", r.best_step, "}"));
  return out;
}

TrainingResult ReadTrainingResult(std::string_view json) {
  TrainingResult r;
  constexpr std::string_view kKey = "\"result\": {\"method\": \"", kSteps = "\"steps\": ",
                             kBest = "\"best_step\": ";
  const size_t at = json.rfind(kKey);
  if (at == std::string_view::npos) return r;
  std::string_view rest = json.substr(at + kKey.size());
  const size_t end = rest.find('"');
  if (end == std::string_view::npos || end > 64) return r;
  const std::string_view method = rest.substr(0, end);
  for (char c : method) {
    if (!(absl::ascii_isalnum(c) || c == '-' || c == '_')) return r;
  }
  rest = rest.substr(end);
  int64_t steps = 0, best = -1;
  const size_t s = rest.find(kSteps), b = rest.find(kBest);
  if (s == std::string_view::npos || b == std::string_view::npos) return r;
  auto number = [](std::string_view v, int64_t* out) {  // the digits before the next , or }
    const size_t stop = v.find_first_of(",}");
    return stop != std::string_view::npos && absl::SimpleAtoi(absl::string_view(v.data(), stop), out);
  };
  if (!number(rest.substr(s + kSteps.size()), &steps) || !number(rest.substr(b + kBest.size()), &best) || steps < 0) {
    return r;
  }
  r.method = std::string(method);
  r.steps = steps;
  r.best_step = best;
  return r;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

}  // namespace sampled::training
