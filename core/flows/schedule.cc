#include "core/flows/schedule.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sampled {
namespace {

constexpr double kPi = 3.14159265358979323846;

absl::Status Malformed(const std::string& field, const std::string& spec, const std::string& why) {
  const std::string follow = field == "bandwidth" ? "noise" : "bandwidth";
  return absl::InvalidArgumentError(absl::StrCat(
      field, " '", spec, "': ", why,
      "; expected SIGMA, constant:SIGMA, cosine:S2MAX,S2MIN, median, svgd-median, median-distance, median-scaled:F "
      "(each median rule also as initial-RULE: over the initial particles, held)",
      field == "noise" ? ", none" : "", " or ", follow));
}

}  // namespace

absl::StatusOr<SigmaRule> SigmaRule::Parse(const std::string& spec, const std::string& field) {
  constexpr absl::string_view kInitial = "initial-";
  if (absl::StartsWith(spec, kInitial)) {
    absl::StatusOr<SigmaRule> r = Parse(spec.substr(kInitial.size()), field);
    if (!r.ok() || !r->is_median() || r->initial_) {
      return Malformed(field, spec, "initial- takes a median rule (initial-median, initial-svgd-median, ...)");
    }
    r->initial_ = true;
    return r;
  }
  SigmaRule r;
  const std::string follow = field == "bandwidth" ? "noise" : "bandwidth";
  if (spec == "median") {
    r.kind_ = Kind::kMedian;
  } else if (spec == "svgd-median") {
    r.kind_ = Kind::kSvgdMedian;
  } else if (spec == "median-distance") {
    r.kind_ = Kind::kMedianScaled;
    r.a_ = 1.0;
  } else if (absl::StartsWith(spec, "median-scaled:")) {
    if (!absl::SimpleAtod(spec.substr(14), &r.a_) || !(r.a_ > 0 && std::isfinite(r.a_))) {
      return Malformed(field, spec, "median-scaled takes a factor F > 0");
    }
    r.kind_ = Kind::kMedianScaled;
  } else if (spec == follow) {
    r.kind_ = Kind::kFollow;
  } else if (spec == "none") {
    if (field != "noise") return Malformed(field, spec, "only the noise can be none");
    r.kind_ = Kind::kNone;
  } else if (absl::StartsWith(spec, "cosine:")) {
    std::vector<std::string> parts = absl::StrSplit(spec.substr(7), ',');
    if (parts.size() != 2 || !absl::SimpleAtod(parts[0], &r.a_) || !absl::SimpleAtod(parts[1], &r.b_)) {
      return Malformed(field, spec, "cosine takes two variances");
    }
    if (!(r.b_ > 0 && r.a_ >= r.b_ && std::isfinite(r.a_))) {
      return Malformed(field, spec, "cosine needs S2MAX >= S2MIN > 0");
    }
    r.kind_ = Kind::kCosine;
  } else {
    absl::string_view text = spec;
    absl::ConsumePrefix(&text, "constant:");
    if (!absl::SimpleAtod(text, &r.a_)) return Malformed(field, spec, "not a rule or a number");
    if (!(r.a_ > 0 && std::isfinite(r.a_))) return Malformed(field, spec, "sigma must be a finite number > 0");
    r.kind_ = Kind::kConstant;
  }
  return r;
}

double SigmaRule::Sigma(int64_t step, int64_t total, const SigmaMedians& medians, int64_t n) const {
  const double median_sq = initial_ ? medians.initial : medians.now;
  switch (kind_) {
    case Kind::kNone:
    case Kind::kFollow:
      return 0.0;
    case Kind::kConstant:
      return a_;
    case Kind::kCosine: {
      // 002 Sec. 7.1: sigma^2(t) = S2MAX cos(pi t / 2), t in [0, t_max], t_max = 2/pi acos(S2MIN/S2MAX).
      const double t_max = 2.0 / kPi * std::acos(b_ / a_);
      const double frac = total > 1 ? std::min(1.0, static_cast<double>(step) / (total - 1)) : 0.0;
      return std::sqrt(std::max(b_, a_ * std::cos(kPi * t_max * frac / 2.0)));
    }
    case Kind::kMedian:  // 002 footnote 15
      return std::sqrt(2.0 * median_sq / std::log(n + 1.0));
    case Kind::kSvgdMedian:  // Liu & Wang (2016)
      return std::sqrt(median_sq / (2.0 * std::log(n + 1.0)));
    case Kind::kMedianScaled:
      return std::sqrt(a_ * median_sq);
  }
  return 0.0;
}

std::string SigmaRule::ToString() const {
  if (initial_) {
    SigmaRule now = *this;
    now.initial_ = false;
    return absl::StrCat("initial-", now.ToString());
  }
  switch (kind_) {
    case Kind::kNone: return "none";
    case Kind::kFollow: return "follow";
    case Kind::kConstant: return absl::StrCat("constant:", a_);
    case Kind::kCosine: return absl::StrCat("cosine:", a_, ",", b_);
    case Kind::kMedian: return "median";
    case Kind::kSvgdMedian: return "svgd-median";
    case Kind::kMedianScaled: return absl::StrCat("median-scaled:", a_);
  }
  return "";
}

absl::StatusOr<KernelSigmas> KernelSigmas::Resolve(const std::optional<std::string>& bandwidth,
                                                   const std::optional<std::string>& noise,
                                                   const std::string& default_bandwidth,
                                                   const std::string& default_noise, int64_t schedule_steps) {
  std::string b = default_bandwidth, n = default_noise;
  if (bandwidth.has_value() && noise.has_value()) {
    b = *bandwidth;
    n = *noise;
  } else if (noise.has_value()) {
    n = *noise;
    b = *noise == "none" ? default_bandwidth : "noise";
  } else if (bandwidth.has_value()) {
    b = *bandwidth;
  }
  KernelSigmas s;
  auto br = SigmaRule::Parse(b, "bandwidth");
  if (!br.ok()) return br.status();
  auto nr = SigmaRule::Parse(n, "noise");
  if (!nr.ok()) return nr.status();
  s.bandwidth_ = *br;
  s.noise_ = *nr;
  if (s.bandwidth_.kind() == SigmaRule::Kind::kFollow && s.noise_.kind() == SigmaRule::Kind::kFollow) {
    return absl::InvalidArgumentError("bandwidth 'noise' and noise 'bandwidth' follow each other; set one of them");
  }
  if (s.bandwidth_.kind() == SigmaRule::Kind::kFollow && s.noise_.kind() == SigmaRule::Kind::kNone) {
    return absl::InvalidArgumentError("bandwidth 'noise' cannot follow noise 'none'; give a bandwidth");
  }
  if ((s.bandwidth_.needs_schedule_length() || s.noise_.needs_schedule_length()) && schedule_steps <= 0) {
    return absl::InvalidArgumentError(
        "a cosine schedule needs its length: give steps > 0 (or schedule_steps for interactive stepping)");
  }
  s.schedule_steps_ = schedule_steps;
  return s;
}

void KernelSigmas::At(int64_t step, const SigmaMedians& median_sq, int64_t n, double* bandwidth,
                      double* noise) const {
  if (bandwidth_.kind() == SigmaRule::Kind::kFollow) {
    *noise = noise_.Sigma(step, schedule_steps_, median_sq, n);
    *bandwidth = *noise;
  } else {
    *bandwidth = bandwidth_.Sigma(step, schedule_steps_, median_sq, n);
    *noise = noise_.kind() == SigmaRule::Kind::kFollow ? *bandwidth
                                                       : noise_.Sigma(step, schedule_steps_, median_sq, n);
  }
}

}  // namespace sampled
