// Training benchmark: our neural-sampler iterations and forward pass beside the reference peer
// (../shared/bench/peer_train.py) in one run, one JSON line per case. See docs/performance.md.
//
//   sampled_train_bench                 FMA probe, then kl/fisher iterations and the 1000-draw forward pass
//   sampled_train_bench --cases kl:5000x400,fisher:500x128 --threads 2 [--no-peer]
//   sampled_train_bench --cases sd-generator:1024x0   002 App. C.4's SD-generator iteration (linear 25 -> 50, batch 1024)
//   sampled_train_bench --service       through the real server: Sample p50/p99 of 1000 draws (200 calls), 10^6
//                                       draws streamed against our in-process forward, and 003 Table 2 (1k
//                                       samples: Sample vs Langevin-500, HMC-500, SVGD-500 flows on MoG2)
//   sampled_train_bench --check         numerics: one iteration's losses and gradients beside the peer's on
//                                       identical weights and batches (float32; relative error per tensor)
//
// An iteration is the peer's: 5 score steps (ssm, exact divergence) and one sampler step on `mixture`, four
// linear layers of the given width, ELU, Adam; each phase draws its own latent batch.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/common/parallel.h"
#include "core/common/rng.h"
#include "core/targets/empirical_target.h"
#include "core/targets/target_family.h"
#include "core/training/ndsm.h"
#include "core/training/neural_sampler.h"
#include "core/training/sampler.h"
#include "core/training/sd_generator.h"
#include "core/training/trainer.h"
#include "client/cpp/sampled_client.h"
#include "tests/bench/bench_util.h"
#include "tests/bench/server_process.h"

namespace sampled {
namespace {

using bench::Now;
using training::MlpShape;

struct Options {
  std::string peer = SAMPLED_PEER_TRAIN_DEFAULT;
  std::string python = SAMPLED_PYTHON_DEFAULT;
  std::string server = SAMPLED_SERVER_BIN_DEFAULT;
  int threads = 2;
  bool run_peer = true;
};

struct Case {
  std::string method;  // kl | fisher | sample
  int64_t batch = 0;
  int64_t width = 0;
};

std::vector<Case> DefaultCases() {
  return {{"kl", 5000, 400},   {"fisher", 5000, 400}, {"kl", 500, 128},
          {"fisher", 500, 128}, {"sample", 1000, 400}, {"sd-generator", 1024, 0}};
}

// sd-generator's case is 002 App. C.4's sizes: x = B xi + mu in R^50 (k = 25), 4096 points, a linear generator,
// batch 1024, the nearest-mean:10 noise (sigma about 25.6 here, what the peer is given).
constexpr int64_t kC4Dim = 50, kC4Latent = 25, kC4Points = 4096;

std::shared_ptr<const Target> C4Data() {
  Rng rng(0);
  Eigen::MatrixXd b(kC4Dim, kC4Latent), xi(kC4Points, kC4Latent);
  rng.FillNormal(b.data(), b.size());
  rng.FillNormal(xi.data(), xi.size());
  Points x = xi * (0.5 * b).transpose();
  Eigen::RowVectorXd mu(kC4Dim);
  rng.FillNormal(mu.data(), mu.size());
  x.rowwise() += (mu.array() + 10.0).matrix();
  return std::shared_ptr<const Target>(*EmpiricalTarget::Create(std::move(x)));
}

std::shared_ptr<const Target> Mixture() {
  return std::shared_ptr<const Target>(*CreateAnalyticTarget("mixture", 2, {}));
}

training::TrainConfig Config(const Case& c, int threads) {
  training::TrainConfig config;
  config.method = c.method;
  config.threads = threads;
  config.batch = c.batch;
  if (c.method == "sd-generator") {
    config.generator = "linear";
    config.latent = kC4Latent;
    config.noise = "nearest-mean:10";
    config.init_std = 0.1;
    return config;
  }
  config.hidden = std::vector<int64_t>(3, c.width);
  config.batch = c.batch;
  config.score_loss = "ssm";
  config.threads = threads;
  return config;
}

std::optional<bench::PeerRun> PeerSeconds(const Options& o, const Case& c, int repeats) {
  const std::string cmd =
      c.method == "sd-generator"
          ? absl::StrFormat("%s%s %s --method sd-generator --layers 1 --latent %d --dim %d --data %d --batch %d "
                            "--sigma 25.6 --threads %d --repeats %d 2>/dev/null",
                            bench::TunedPeerEnv(), o.python, o.peer, kC4Latent, kC4Dim, kC4Points, c.batch, o.threads,
                            repeats)
          : absl::StrFormat("%s%s %s --method %s --target mixture --batch %d --width %d --layers 4 --threads %d "
                            "--repeats %d 2>/dev/null",
                            bench::TunedPeerEnv(), o.python, o.peer, c.method, c.batch, c.width, o.threads, repeats);
  return bench::ParsePeerRun(bench::Capture(cmd));
}

// The float32 multiply-add rate of the machine on `threads` threads (best of five).
double FmaRate(int threads) {
  constexpr int P = Eigen::internal::unpacket_traits<Eigen::internal::packet_traits<float>::type>::size;
  const int64_t iters = 20'000'000;
  double best = 0;
  std::vector<double> sinks(threads);
  for (int trial = 0; trial < 5; ++trial) {
    const double t0 = Now();
    ParallelFor(threads, 1, threads, [&](int64_t b0, int64_t b1, int) {
      for (int64_t b = b0; b < b1; ++b) sinks[b] = bench::FmaLoop(iters, 0.5f + 0.01f * b);
    });
    best = std::max(best, static_cast<double>(iters) * 12 * P * threads / (Now() - t0));
  }
  return best;
}

// Median seconds of our iteration (after one warm-up), and where the time of one goes.
double OurIterationSeconds(const Case& c, int threads, int repeats) {
  auto target = c.method == "sd-generator" ? C4Data() : Mixture();
  auto settings = training::ResolveTrainConfig(Config(c, threads), *target);
  if (!settings.ok()) {
    std::fprintf(stderr, "bench: %s\n", settings.status().ToString().c_str());
    std::exit(1);
  }
  auto state = training::MakeInitialTrainingState(*settings);
  auto trainer = training::CreateTrainer(*settings, target);
  if (!trainer.ok() || !state.ok()) std::exit(1);
  training::TrainStats stats;
  std::vector<double> times;
  for (int r = 0; r <= repeats; ++r) {
    const double t0 = Now();
    absl::Status s = (*trainer)->Step(*state, &stats);
    if (!s.ok()) {
      std::fprintf(stderr, "bench: %s\n", s.ToString().c_str());
      std::exit(1);
    }
    if (r > 0) times.push_back(Now() - t0);
  }
  return bench::Median(times);
}

double OurSampleSeconds(const Case& c, int threads, int repeats) {
  const MlpShape shape{2, 2, std::vector<int64_t>(3, c.width), training::Activation::kElu};
  Rng rng(1);
  const std::vector<float> params = training::InitialParameters(shape, rng);
  PointsF out;
  std::vector<double> times;
  for (int r = 0; r <= repeats; ++r) {
    const double t0 = Now();
    training::Draw(shape, params, r, c.batch, threads, &out);
    if (r > 0) times.push_back(Now() - t0);
  }
  return bench::Median(times);
}

int RunBenchmark(const Options& o, const std::vector<Case>& cases) {
  const double fma = FmaRate(o.threads);
  std::printf("{\"probe\": {\"fma_per_s\": %.3g, \"threads\": %d}}\n", fma, o.threads);
  std::fflush(stdout);
  int rc = 0;
  for (const Case& c : cases) {
    const bool sample = c.method == "sample";
    // SAMPLED_BENCH_REPEATS: more iterations, for a profiler (perf record) to see the steps, not the set-up.
    const char* more = std::getenv("SAMPLED_BENCH_REPEATS");
    const int repeats = more != nullptr ? std::max(1, std::atoi(more)) : sample ? 100 : (c.batch >= 5000 ? 5 : 20);
    const double ours = sample ? OurSampleSeconds(c, o.threads, repeats) : OurIterationSeconds(c, o.threads, repeats);
    std::string line =
        c.method == "sd-generator"
            ? absl::StrFormat("{\"case\": \"sd-generator\", \"target\": \"002 App. C.4 data (4096 x 50)\", "
                              "\"generator\": \"linear 25 -> 50\", \"batch\": %d, \"dtype\": \"float32\", "
                              "\"threads\": %d, \"ours_s\": %.4g",
                              c.batch, o.threads, ours)
            : absl::StrFormat("{\"case\": \"%s\", \"target\": \"mixture\", \"batch\": %d, \"layers\": 4, "
                              "\"width\": %d, \"activation\": \"elu\", \"dtype\": \"float32\", \"threads\": %d, "
                              "\"ours_s\": %.4g",
                              c.method, c.batch, c.width, o.threads, ours);
    if (sample) {
      const MlpShape shape{2, 2, std::vector<int64_t>(3, c.width), training::Activation::kElu};
      const int64_t rows = (c.batch + training::kDrawBlockRows - 1) / training::kDrawBlockRows * training::kDrawBlockRows;
      const double bound = static_cast<double>(rows) * shape.forward_multiply_adds() / fma;
      absl::StrAppendFormat(&line, ", \"flop_bound_s\": %.4g, \"ours_over_bound\": %.3g", bound, ours / bound);
    }
    if (o.run_peer) {
      auto peer = PeerSeconds(o, c, sample ? 100 : (c.batch >= 5000 ? 3 : 10));
      if (!peer) {
        absl::StrAppend(&line, ", \"peer\": \"failed\"");
        rc = 1;
      } else if (peer->blas == "reference") {
        absl::StrAppendFormat(&line, ", \"peer_blas\": \"reference\", \"ratio\": null, \"refused\": \"the peer ran on "
                                     "the reference BLAS; install libopenblas0-pthread\"");
        rc = std::max(rc, 3);
      } else {
        absl::StrAppendFormat(&line, ", \"peer_tuned_s\": %.4g, \"peer_blas\": \"%s\", \"ratio\": %.3g", peer->seconds,
                              peer->blas, peer->seconds / ours);
      }
    }
    std::printf("%s}\n", line.c_str());
    std::fflush(stdout);
  }
  return rc;
}

// --- numerics -------------------------------------------------------------------------------------------

template <typename T>
void WriteNpy(const std::string& path, const std::vector<T>& data, const std::vector<int64_t>& shape) {
  std::string dims;
  for (int64_t s : shape) absl::StrAppend(&dims, s, ",");
  const char* descr = sizeof(T) == 4 ? "<f4" : "<f8";
  std::string header = absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': (", dims, "), }");
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  out.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(T));
  std::ofstream(path, std::ios::binary) << out;
}

// The data of a float32 or float64 .npy file the peer wrote (any shape), as doubles; empty on failure.
std::vector<double> ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  if (bytes.size() < 10 || bytes.compare(1, 5, "NUMPY") != 0) return {};
  const size_t len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
  const bool f8 = bytes.find("<f8") != std::string::npos && bytes.find("<f8") < 10 + len;
  const size_t size = f8 ? 8 : 4;
  std::vector<double> out;
  for (size_t p = 10 + len; p + size <= bytes.size(); p += size) {
    if (f8) {
      double v;
      std::memcpy(&v, bytes.data() + p, 8);
      out.push_back(v);
    } else {
      float v;
      std::memcpy(&v, bytes.data() + p, 4);
      out.push_back(v);
    }
  }
  return out;
}

template <typename T>
void WriteNetwork(const std::string& dir, const std::string& prefix, const MlpShape& shape,
                  const std::vector<T>& params) {
  for (int64_t l = 0; l < shape.layers(); ++l) {
    WriteNpy(absl::StrCat(dir, "/", prefix, "_w", l, ".npy"),
             std::vector<T>(params.begin() + shape.weight_offset(l), params.begin() + shape.bias_offset(l)),
             {shape.out_of(l), shape.in_of(l)});
    WriteNpy(absl::StrCat(dir, "/", prefix, "_b", l, ".npy"),
             std::vector<T>(params.begin() + shape.bias_offset(l),
                            params.begin() + shape.bias_offset(l) + shape.out_of(l)),
             {shape.out_of(l)});
  }
}

// max over the network's tensors of |ours - peer| / |peer| (Frobenius norms per tensor); -1 when missing.
template <typename T>
double GradientError(const std::string& dir, const std::string& prefix, const MlpShape& shape,
                     const std::vector<T>& ours) {
  double worst = 0;
  for (int64_t l = 0; l < shape.layers(); ++l) {
    for (const bool weight : {true, false}) {
      const std::vector<double> peer = ReadNpy(absl::StrCat(dir, "/", prefix, weight ? "_w" : "_b", l, ".npy"));
      const int64_t begin = weight ? shape.weight_offset(l) : shape.bias_offset(l);
      const int64_t n = weight ? shape.out_of(l) * shape.in_of(l) : shape.out_of(l);
      if (static_cast<int64_t>(peer.size()) != n) return -1;
      double diff = 0, norm = 0;
      for (int64_t i = 0; i < n; ++i) {
        diff += (ours[begin + i] - peer[i]) * (ours[begin + i] - peer[i]);
        norm += peer[i] * peer[i];
      }
      worst = std::max(worst, std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30));
    }
  }
  return worst;
}

// One iteration's pieces on identical inputs, computed in T by the code training runs (float32) and in
// float64 through the same templates: the score loss and its gradient (ssm and dsm, on sg(g(z))), the
// sampler objective and its gradient (kl and fisher), on each 2-D family. One JSON line each; false when
// one failed its bound.
template <typename T>
bool CheckDtype(const Options& o, const std::string& dir) {
  const bool f32 = std::is_same_v<T, float>;
  const char* dtype = f32 ? "float32" : "float64";
  const double bound = f32 ? 1e-4 : 1e-9;
  bool ok = true;
  for (const std::string family : {"gaussian", "mixture", "rosenbrock", "donut", "funnel", "squiggle"}) {
    for (const std::string method : {"kl", "fisher"}) {
      for (const std::string score_loss : {"ssm", "dsm"}) {
        if (method == "fisher" && score_loss == "dsm" && family != "mixture") continue;
        auto target = std::shared_ptr<const Target>(*CreateAnalyticTarget(family, 2, {}));
        training::TrainConfig config;
        config.method = method;
        config.hidden = std::vector<int64_t>{64, 64, 64};
        config.batch = 512;
        config.score_loss = score_loss;
        if (score_loss == "dsm") config.dsm_sigma = 0.1;
        config.seed = 5;
        config.threads = o.threads;
        auto settings = training::ResolveTrainConfig(config, *target);
        auto state = training::MakeInitialTrainingState(*settings);
        auto objective = training::MakeSamplerObjective<T>(method, target);
        if (!settings.ok() || !state.ok() || !objective.ok()) return false;
        training::NeuralSamplerGradients<T> gradients(*settings, *std::move(objective));
        const std::vector<T> gen(state->sampler.params.begin(), state->sampler.params.end());
        const std::vector<T> score(state->score.params.begin(), state->score.params.end());
        PointsF zf(512, 2), epsf(512, 2);
        Rng rng(17);
        rng.FillNormal(zf.data(), zf.size());
        zf *= 0.7f;  // inside every family's well-behaved region at initialisation
        rng.FillNormal(epsf.data(), epsf.size());
        const PointsT<T> z = zf.cast<T>(), eps = epsf.cast<T>();
        WriteNetwork(dir, "gen", settings->sampler, gen);
        WriteNetwork(dir, "score", settings->score, score);
        WriteNpy(dir + "/z.npy", std::vector<T>(z.data(), z.data() + z.size()), {512, 2});
        WriteNpy(dir + "/dsm_eps.npy", std::vector<T>(eps.data(), eps.data() + eps.size()), {512, 2});
        const std::string out_dir = dir + "/out";
        bench::Capture(absl::StrFormat("rm -rf %s; %s %s --method %s --target %s --width 64 --layers 4 --batch 512 "
                                       "--score-loss %s --dsm-sigma 0.1 --dtype %s --threads %d --inputs %s --out %s "
                                       ">/dev/null 2>&1",
                                       out_dir, o.python, o.peer, method, family, score_loss, dtype, o.threads, dir,
                                       out_dir));
        double loss;
        std::vector<T> grad;
        PointsT<T> x;
        if (!gradients.Sampler(gen, score, z, &loss, &grad, &x).ok()) return false;
        const double gen_err = GradientError(out_dir, "gen_grad", settings->sampler, grad);
        const std::vector<double> peer_gen_loss = ReadNpy(out_dir + "/gen_loss.npy");
        std::vector<T> score_grad;
        const double score_loss_value = gradients.Score(score, x, eps, &score_grad);
        const double score_err = GradientError(out_dir, "score_grad", settings->score, score_grad);
        const std::vector<double> peer_score_loss = ReadNpy(out_dir + "/score_loss.npy");
        if (peer_gen_loss.size() != 1 || peer_score_loss.size() != 1 || gen_err < 0 || score_err < 0) {
          absl::PrintF("{\"check\": \"%s\", \"target\": \"%s\", \"score_loss\": \"%s\", \"dtype\": \"%s\", "
                       "\"error\": \"the peer wrote no outputs\"}\n", method, family, score_loss, dtype);
          ok = false;
          continue;
        }
        const double gen_loss_err = std::abs(loss - peer_gen_loss[0]) / std::max(std::abs(peer_gen_loss[0]), 1e-30);
        const double score_loss_err =
            std::abs(score_loss_value - peer_score_loss[0]) / std::max(std::abs(peer_score_loss[0]), 1e-30);
        const double worst = std::max({gen_err, score_err, gen_loss_err, score_loss_err});
        const bool pass = worst < bound;
        ok = ok && pass;
        absl::PrintF("{\"check\": \"%s\", \"target\": \"%s\", \"score_loss\": \"%s\", \"dtype\": \"%s\", "
                     "\"sampler_loss_rel\": %.2g, \"sampler_grad_rel\": %.2g, \"score_loss_rel\": %.2g, "
                     "\"score_grad_rel\": %.2g, \"bound\": %g, \"pass\": %s}\n",
                     method, family, score_loss, dtype, gen_loss_err, gen_err, score_loss_err, score_err, bound,
                     pass ? "true" : "false");
        std::fflush(stdout);
      }
    }
  }
  return ok;
}

// sd-generator's iteration (002 Alg. 2) on identical weights, latents, data batch and noise: the SD-moved
// targets y', the regression loss and its gradient, for a linear generator (the peer's --layers 1) and an MLP.
template <typename T>
bool CheckSdGenerator(const Options& o, const std::string& dir) {
  const bool f32 = std::is_same_v<T, float>;
  const char* dtype = f32 ? "float32" : "float64";
  const double bound = f32 ? 1e-4 : 1e-9;
  constexpr int64_t kBatch = 256, kDim = 6, kLatent = 4;
  bool ok = true;
  for (const int layers : {1, 3}) {
    for (const double sigma : {0.5, 3.0}) {
      Rng rng(23 + layers);
      Points data(kBatch, kDim);
      rng.FillNormal(data.data(), data.size());
      data.array() += 2.0;
      auto target = std::shared_ptr<const Target>(*EmpiricalTarget::Create(Points(data)));
      training::TrainConfig config;
      config.method = "sd-generator";
      config.generator = layers == 1 ? "linear" : "mlp";
      if (layers > 1) config.hidden = std::vector<int64_t>(layers - 1, 32);
      config.latent = kLatent;
      config.batch = kBatch;
      config.eta = 1.0;
      config.seed = 9;
      config.threads = o.threads;
      auto settings = training::ResolveTrainConfig(config, *target);
      if (!settings.ok()) return false;
      auto state = training::MakeInitialTrainingState(*settings);
      if (!state.ok()) return false;
      const std::vector<T> gen(state->sampler.params.begin(), state->sampler.params.end());
      PointsF zf(kBatch, kLatent), epsf(kBatch, kDim);
      rng.FillNormal(zf.data(), zf.size());
      rng.FillNormal(epsf.data(), epsf.size());
      const PointsT<T> z = zf.cast<T>(), eps = epsf.cast<T>(), x = data.cast<T>();
      WriteNetwork(dir, "gen", settings->sampler, gen);
      WriteNpy(dir + "/z.npy", std::vector<T>(z.data(), z.data() + z.size()), {kBatch, kLatent});
      WriteNpy(dir + "/eps.npy", std::vector<T>(eps.data(), eps.data() + eps.size()), {kBatch, kDim});
      WriteNpy(dir + "/data.npy", std::vector<T>(x.data(), x.data() + x.size()), {kBatch, kDim});
      const std::string out_dir = dir + "/out";
      bench::Capture(absl::StrFormat("rm -rf %s; %s %s --method sd-generator --dim %d --latent %d --width 32 "
                                     "--layers %d --batch %d --sigma %g --eta 1 --dtype %s --threads %d --inputs %s "
                                     "--out %s >/dev/null 2>&1",
                                     out_dir, o.python, o.peer, kDim, kLatent, layers, kBatch, sigma, dtype, o.threads,
                                     dir, out_dir));
      training::SdGeneratorGradients<T> gradients(*settings);
      gradients.Forward(gen, z);
      PointsT<T> goal;
      gradients.Goal(x, eps, sigma, sigma, &goal);
      std::vector<T> grad;
      const double loss = gradients.Regression(gen, goal, &grad);
      const std::vector<double> peer_goal = ReadNpy(out_dir + "/y_target.npy");
      const std::vector<double> peer_loss = ReadNpy(out_dir + "/gen_loss.npy");
      const double grad_err = GradientError(out_dir, "gen_grad", settings->sampler, grad);
      if (peer_loss.size() != 1 || static_cast<int64_t>(peer_goal.size()) != goal.size() || grad_err < 0) {
        absl::PrintF("{\"check\": \"sd-generator\", \"layers\": %d, \"dtype\": \"%s\", "
                     "\"error\": \"the peer wrote no outputs\"}\n", layers, dtype);
        ok = false;
        continue;
      }
      double diff = 0, norm = 0;
      for (int64_t i = 0; i < goal.size(); ++i) {
        diff += (goal.data()[i] - peer_goal[i]) * (goal.data()[i] - peer_goal[i]);
        norm += peer_goal[i] * peer_goal[i];
      }
      const double goal_err = std::sqrt(diff / norm);
      const double loss_err = std::abs(loss - peer_loss[0]) / std::max(std::abs(peer_loss[0]), 1e-30);
      const bool pass = std::max({goal_err, loss_err, grad_err}) < bound;
      ok = ok && pass;
      absl::PrintF("{\"check\": \"sd-generator\", \"layers\": %d, \"sigma\": %g, \"dtype\": \"%s\", "
                   "\"target_rel\": %.2g, \"loss_rel\": %.2g, \"grad_rel\": %.2g, \"bound\": %g, \"pass\": %s}\n",
                   layers, sigma, dtype, goal_err, loss_err, grad_err, bound, pass ? "true" : "false");
      std::fflush(stdout);
    }
  }
  return ok;
}

// Both dtypes against the peer (exit 77 without it).
int RunCheck(const Options& o) {
  if (access(o.peer.c_str(), R_OK) != 0) {
    std::fprintf(stderr, "bench: no peer at %s; skipping\n", o.peer.c_str());
    return 77;
  }
  char tmpl[] = "/tmp/sampled_train_check_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const bool ok32 = CheckDtype<float>(o, dir);
  const bool ok64 = CheckDtype<double>(o, dir);
  const bool sd32 = CheckSdGenerator<float>(o, dir);
  const bool sd64 = CheckSdGenerator<double>(o, dir);
  bench::Capture("rm -rf " + dir);
  return ok32 && ok64 && sd32 && sd64 ? 0 : 1;
}

// --- through the service --------------------------------------------------------------------------------

template <typename T>
T OrDie(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    std::fprintf(stderr, "bench: %s: %s\n", what, v.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(v);
}

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
}

// The score models' iteration (004 Sec. 4's defaults on four 2-D clusters of 10000 points): iterations per
// second of ndsm, ndsm-cv and dsm, and where an ndsm iteration goes: simulating the noising trajectories
// (MakeGmBatch) against the loss's forward and backward pass (ScoreLossAndGradient), and ndsm-cv's per-row
// gradients (Eq. 22, every cv_every iterations). Ours only: the peer has no score models.
int RunNdsm(const Options& o) {
  Rng rng(1);
  Points data(10000, 2);
  for (int64_t i = 0; i < data.rows(); ++i) {
    data(i, 0) = (i % 2 ? 2 : -2) + 0.3 * rng.Normal();
    data(i, 1) = (i % 4 < 2 ? 2 : -2) + 0.3 * rng.Normal();
  }
  auto target = std::shared_ptr<const Target>(*EmpiricalTarget::Create(Points(data)));
  const auto seconds = [](auto&& f, int reps) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  };
  std::printf("score models, 004 Sec. 4 defaults (7 x 32 GELU, batch 250 = 50 trajectories x 5 times, n_f 50), "
              "%d threads\n", o.threads);
  for (const char* method : {"ndsm", "ndsm-cv", "dsm"}) {
    training::TrainConfig c;
    c.method = method;
    c.seed = 1;
    c.threads = o.threads;
    auto settings = training::ResolveTrainConfig(c, *target);
    auto trainer = training::CreateTrainer(*settings, target);
    auto state = training::MakeInitialTrainingState(*settings);
    if (!trainer.ok() || !state.ok()) return 1;
    for (int i = 0; i < 20; ++i) (void)(*trainer)->Step(*state, nullptr);  // warm up
    const double step = seconds([&] { (void)(*trainer)->Step(*state, nullptr); }, 400);
    std::printf("  %-8s %8.1f iterations/s (%.3f ms each)\n", method, 1 / step, 1e3 * step);
    if (std::string(method) != "ndsm") continue;
    const training::ScoreSdeModel& m = *(*trainer)->score_model();
    auto prior = training::ScoreSdePrior(m);
    training::ScoreBatch batch;
    Rng r(2);
    const double simulate = seconds([&] { (void)training::MakeGmBatch(data, **prior, settings->grid, 50, r, &batch); },
                                    200);
    training::ScoreLossWorkspace ws;
    std::vector<float> grad;
    const double loss = seconds(
        [&] { training::ScoreLossAndGradient(m, state->sampler.params, batch, {}, o.threads, &ws, &grad); }, 200);
    Eigen::MatrixXf g, w;
    const double per_row = seconds([&] { training::PerRowGradients(m, state->sampler.params, batch, &ws, &g, &w); }, 5);
    std::printf("    of an ndsm iteration: trajectories %.3f ms, loss forward + backward %.3f ms; ndsm-cv's per-row "
                "gradients %.2f ms per update (every 20 iterations: %.3f ms per iteration)\n",
                1e3 * simulate, 1e3 * loss, 1e3 * per_row, 1e3 * per_row / 20);
  }
  return 0;
}

int RunService(const Options& o) {
  namespace v1 = ::sampled::v1;
  auto server = bench::ServerProcess::Start(o.server, o.threads);
  if (server == nullptr) {
    std::fprintf(stderr, "bench: cannot start %s\n", o.server.c_str());
    return 1;
  }
  auto client = client::SampledClient::Connect(server->address());
  const std::string session = OrDie(client->CreateSession("train-bench"), "session").id();
  const std::string target = OrDie(client->DefineTarget(session, "mog2", "mixture", 2, {}), "target").id();
  // A 4 x 400 ELU sampler (one iteration: the forward pass costs the same whatever the weights).
  v1::TrainSpec spec;
  spec.set_method("kl");
  spec.set_steps(1);
  spec.set_batch(500);
  const v1::Job trained = OrDie(client->WatchJob(OrDie(client->StartTraining(session, target, spec), "train").id(), nullptr),
                                "watch");
  const std::string sampler = trained.sampler_id();
  const double fma = FmaRate(o.threads);
  const MlpShape shape{2, 2, {400, 400, 400}, training::Activation::kElu};
  const double bound = static_cast<double>(training::kDrawBlockRows) * shape.forward_multiply_adds() / fma;
  std::optional<bench::PeerRun> peer;
  if (o.run_peer) peer = PeerSeconds(o, Case{"sample", 1000, 400}, 100);
  for (const DType dtype : {DType::kFloat32, DType::kFloat64}) {
    std::vector<double> times;
    for (int i = 0; i < 220; ++i) {
      const double t0 = Now();
      OrDie(client->Sample(sampler, 1000, i, dtype), "sample");
      if (i >= 20) times.push_back(Now() - t0);
    }
    absl::PrintF("{\"service\": \"sample\", \"draws\": 1000, \"layers\": 4, \"width\": 400, \"dtype\": \"%s\", "
                 "\"threads\": %d, \"calls\": %d, \"p50_s\": %.4g, \"p99_s\": %.4g, \"flop_bound_s\": %.4g, "
                 "\"goal_s\": %.4g, \"server\": \"%s\"}\n",
                 dtype == DType::kFloat32 ? "float32" : "float64", o.threads, static_cast<int>(times.size()),
                 Percentile(times, 0.5), Percentile(times, 0.99), bound, 2.5 * bound + 5e-4, server->blas_line());
    if (peer) {
      absl::PrintF("{\"service\": \"sample-vs-peer\", \"dtype\": \"%s\", \"peer_in_process_s\": %.4g, \"peer_blas\": "
                   "\"%s\", \"peer_over_our_p50\": %.3g}\n",
                   dtype == DType::kFloat32 ? "float32" : "float64", peer->seconds, peer->blas,
                   peer->seconds / Percentile(times, 0.5));
    }
    std::fflush(stdout);
  }
  // 10^6 draws streamed, against our in-process forward pass of the same draws.
  {
    const double t0 = Now();
    OrDie(client->Sample(sampler, 1'000'000, 1, DType::kFloat32), "sample 1e6");
    const double streamed = Now() - t0;
    auto m = OrDie(client->GetSampler(sampler), "get sampler");
    (void)m;
    Rng rng(1);
    const std::vector<float> params = training::InitialParameters(shape, rng);
    PointsF out;
    const double t1 = Now();
    training::Draw(shape, params, 1, 1'000'000, o.threads, &out);
    const double local = Now() - t1;
    absl::PrintF("{\"service\": \"sample-1e6\", \"dtype\": \"float32\", \"streamed_s\": %.4g, \"in_process_s\": "
                 "%.4g, \"rate_ratio\": %.3g}\n", streamed, local, local / streamed);
    std::fflush(stdout);
  }
  // 003 Table 2: 1000 samples on MoG2 through the same service (flows: 1000 particles, 500 steps; SVGD with
  // 003's bandwidth rule, svgd-median, not our default median-scaled:0.5).
  struct Flow {
    std::string method;
    double step_size;
  };
  for (const Flow& f : {Flow{"langevin", 0.01}, Flow{"hmc", 0.1}, Flow{"svgd", 0.01}}) {
    v1::FlowSpec fs;
    fs.set_method(f.method);
    fs.set_particle_count(1000);
    fs.set_steps(500);
    fs.set_step_size(f.step_size);
    fs.set_seed(1);
    if (f.method == "hmc") (*fs.mutable_options())["leapfrog"] = "10";
    if (f.method == "svgd") fs.set_bandwidth("svgd-median");
    const double t0 = Now();
    const v1::Job job = OrDie(client->StartFlow(session, target, fs), "flow");
    const v1::Job done = OrDie(client->WatchJob(job.id(), nullptr), "watch flow");
    OrDie(client->GetParticles(done.id()), "particles");
    absl::PrintF("{\"table2\": \"%s-500\", \"particles\": 1000, \"seconds\": %.4g, \"state\": %d}\n", f.method,
                 Now() - t0, static_cast<int>(done.state()));
    std::fflush(stdout);
  }
  return 0;
}

std::vector<Case> ParseCases(const std::string& text) {
  std::vector<Case> cases;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    std::vector<std::string> parts = absl::StrSplit(item, absl::ByAnyChar(":x"));
    Case c;
    if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &c.batch) || !absl::SimpleAtoi(parts[2], &c.width)) {
      std::fprintf(stderr, "bench: bad case '%s' (method:BATCHxWIDTH)\n", std::string(item).c_str());
      std::exit(2);
    }
    c.method = parts[0];
    cases.push_back(c);
  }
  return cases;
}

}  // namespace
}  // namespace sampled

int main(int argc, char** argv) {
  sampled::bench::UseServerSpinPolicy(argv);
  sampled::Options o;
  std::vector<sampled::Case> cases = sampled::DefaultCases();
  bool check = false, service = false, score_models = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return sampled::bench::FlagValue(argc, argv, &i); };
    if (a == "--peer") {
      o.peer = value();
    } else if (a == "--python") {
      o.python = value();
    } else if (a == "--threads") {
      o.threads = std::stoi(value());
    } else if (a == "--cases") {
      cases = sampled::ParseCases(value());
    } else if (a == "--no-peer") {
      o.run_peer = false;
    } else if (a == "--check") {
      check = true;
    } else if (a == "--service") {
      service = true;
    } else if (a == "--score-models") {
      score_models = true;
    } else if (a == "--server") {
      o.server = value();
    } else {
      std::fprintf(stderr, "usage: sampled_train_bench [--check | --service | --score-models] [--cases m:BxW,...] [--threads T] [--no-peer]\n");
      return 2;
    }
  }
  sampled::SetDefaultComputeThreads(o.threads);
  if (service) return sampled::RunService(o);
  if (score_models) return sampled::RunNdsm(o);
  return check ? sampled::RunCheck(o) : sampled::RunBenchmark(o, cases);
}
