// Rules for the two sigmas of a kernel flow at each step: the kernel bandwidth and the level of the noise
// injected into the particles (002 Sec. 3.1 sets them equal; Sec. 7.1 varies both).
//
// Grammar of a rule (the text of --bandwidth and --noise):
//   S | constant:S         a fixed sigma S > 0
//   cosine:S2MAX,S2MIN     002 Sec. 7.1: sigma^2(t) = S2MAX cos(pi t / 2), t from 0 to
//                          t_max = (2/pi) acos(S2MIN / S2MAX) over the schedule's steps (variances, as in
//                          the paper: cosine:10,0.5 for the 25-Gaussian grid)
//   median                 002 footnote 15: sigma^2 = 2 median(|y - y'|^2) / log(N + 1) over the particles
//   svgd-median            Liu & Wang's SVGD rule: sigma^2 = median(|y - y'|^2) / (2 log(N + 1))
//   median-distance        the plain median heuristic: sigma = median |y - y'| (000 App. F)
//   median-scaled:F        sigma^2 = F median(|y - y'|^2) (F > 0; median-scaled:0.5 is k = exp(-D^2 / median D^2))
//   initial-RULE           any median rule above over the *initial* particles (the base data), measured at
//                          the first step and held: initial-median is 002 Sec. 7.1's constant schedule as its
//                          text reads ("the median squared pairwise distance among the source (base) data")
//   none                   (noise only) no noise is injected: z = y
//   noise | bandwidth      follow the other rule: the bandwidth equals the noise level, or the noise level
//                          equals the bandwidth (002 Remark 2)
#ifndef SAMPLED_CORE_FLOWS_SCHEDULE_H_
#define SAMPLED_CORE_FLOWS_SCHEDULE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace sampled {

// The median pairwise squared distances the median rules read: over the particles now, and over the
// initial particles (the initial- rules).
struct SigmaMedians {
  double now = 0;
  double initial = 0;
};

class SigmaRule {
 public:
  enum class Kind { kNone, kConstant, kCosine, kMedian, kSvgdMedian, kMedianScaled, kFollow };

  // `field` is "bandwidth" or "noise" (it decides which follow word and whether "none" is accepted).
  // INVALID_ARGUMENT with the grammar when `spec` does not parse or a value is out of range.
  static absl::StatusOr<SigmaRule> Parse(const std::string& spec, const std::string& field);

  Kind kind() const { return kind_; }
  bool is_median() const {
    return kind_ == Kind::kMedian || kind_ == Kind::kSvgdMedian || kind_ == Kind::kMedianScaled;
  }
  // Whether the rule reads the median of the particles now, or of the initial particles (initial-).
  bool needs_median() const { return is_median() && !initial_; }
  bool needs_initial_median() const { return is_median() && initial_; }
  bool needs_schedule_length() const { return kind_ == Kind::kCosine; }

  // Sigma at 0-based `step` of a schedule of `total` steps, for `n` particles whose median pairwise
  // squared distances are `medians` (used by the median rules only). 0 for kNone; kFollow is resolved
  // by the caller.
  double Sigma(int64_t step, int64_t total, const SigmaMedians& medians, int64_t n) const;
  // The same with one median for both (the rules that read none, or a caller that measured the one it needs).
  double Sigma(int64_t step, int64_t total, double median_sq, int64_t n) const {
    return Sigma(step, total, SigmaMedians{median_sq, median_sq}, n);
  }

  std::string ToString() const;

 private:
  Kind kind_ = Kind::kNone;
  bool initial_ = false;  // a median rule over the initial particles
  double a_ = 0, b_ = 0;  // constant: a_ = sigma; cosine: a_ = S2MAX, b_ = S2MIN; median-scaled: a_ = F
};

// The bandwidth and noise rules of one flow, defaults applied: when neither is given both take the
// method's defaults; when one is given the other follows it (so the kernel bandwidth equals the noise
// level, Eq. 17) unless it is "none".
class KernelSigmas {
 public:
  static absl::StatusOr<KernelSigmas> Resolve(const std::optional<std::string>& bandwidth,
                                              const std::optional<std::string>& noise,
                                              const std::string& default_bandwidth,
                                              const std::string& default_noise, int64_t schedule_steps);

  bool needs_median() const { return bandwidth_.needs_median() || noise_.needs_median(); }
  bool needs_initial_median() const { return bandwidth_.needs_initial_median() || noise_.needs_initial_median(); }
  // Bandwidth and noise sigma at `step`.
  void At(int64_t step, const SigmaMedians& medians, int64_t n, double* bandwidth, double* noise) const;
  void At(int64_t step, double median_sq, int64_t n, double* bandwidth, double* noise) const {
    At(step, SigmaMedians{median_sq, median_sq}, n, bandwidth, noise);
  }

 private:
  SigmaRule bandwidth_, noise_;
  int64_t schedule_steps_ = 0;
};

}  // namespace sampled

#endif  // SAMPLED_CORE_FLOWS_SCHEDULE_H_
