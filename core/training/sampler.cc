#include "core/training/sampler.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/common/byte_codec.h"
#include "core/common/parallel.h"
#include "core/common/rng.h"

namespace sampled::training {
namespace {

constexpr std::string_view kMagic("SMPSAMPLER\n", 11);
constexpr int64_t kMaxFileWidth = int64_t{1} << 20;
constexpr int64_t kMaxFileLayers = 1024;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t Fnv1a(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace

uint64_t DrawBlockSeed(uint64_t seed, int64_t block) {
  return SplitMix64(SplitMix64(seed) ^ static_cast<uint64_t>(block));
}

void DrawBlocks(const MlpShape& shape, const std::vector<float>& params, uint64_t seed, int64_t first_block,
                int64_t blocks, int threads, PointsF* out) {
  PointsF z(blocks * kDrawBlockRows, shape.in);
  for (int64_t b = 0; b < blocks; ++b) {
    Rng rng(DrawBlockSeed(seed, first_block + b));
    rng.FillNormal(z.data() + b * kDrawBlockRows * shape.in, kDrawBlockRows * shape.in);
  }
  // MlpForward's row blocks divide kDrawBlockRows, so a row's value does not depend on its neighbours.
  MlpForward(shape, params, z, threads, nullptr, out);
}

void Draw(const MlpShape& shape, const std::vector<float>& params, uint64_t seed, int64_t n, int threads,
          PointsF* out) {
  const int64_t blocks = (n + kDrawBlockRows - 1) / kDrawBlockRows;
  DrawBlocks(shape, params, seed, 0, blocks, threads, out);
  out->conservativeResize(n, shape.out);
}

std::string EncodeSamplerFile(const SamplerModel& m) {
  std::string out(kMagic);
  ByteWriter w(&out);
  w.U64(kSamplerFileVersion);
  w.String(m.provenance_json);
  w.I64(m.shape.in);
  w.I64(m.shape.out);
  w.String(ActivationName(m.shape.activation));
  w.U64(m.shape.hidden.size());
  for (int64_t h : m.shape.hidden) w.I64(h);
  w.Floats(m.final_params);
  w.Floats(m.best_params);
  w.U64(m.last_finite ? 1 : 0);
  w.U64(Fnv1a(out));
  return out;
}

absl::StatusOr<SamplerModel> DecodeSamplerFile(std::string_view bytes) {
  ByteReader r(bytes);
  if (!r.Magic(kMagic)) return absl::InvalidArgumentError("not a sampler file (it does not start with SMPSAMPLER)");
  uint64_t version = 0;
  if (!r.U64(&version)) return absl::InvalidArgumentError("sampler file is truncated (no version)");
  if (version != kSamplerFileVersion) {
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
  uint64_t checksum;
  if (!r.U64(&checksum) || !r.Done()) return absl::InvalidArgumentError("sampler file has trailing bytes");
  const size_t count = static_cast<size_t>(m.shape.parameter_count());
  if (m.final_params.size() != count || (!m.best_params.empty() && m.best_params.size() != count)) {
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
