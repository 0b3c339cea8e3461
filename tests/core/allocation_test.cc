// "Allocates nothing per step once a flow has started": counts every heap allocation of the process
// (malloc and friends are interposed below, so operator new, Eigen and the OpenMP runtime are all seen)
// while a started kernel flow takes more steps. Covered: the kernel-sum flows (sd, svgd, mmd, mmd-gaussian,
// wgf) in both precisions, with batches, noise and the median rule. Not covered: the KiNG family, whose
// b x b solves use Eigen temporaries (a few hundred small allocations per step, small beside the solve).
//
// This test lives in its own executable: the interposed allocator replaces glibc's for the whole process.
#include <execinfo.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <ostream>
#include <string>

#include <gtest/gtest.h>

#include "core/common/rng.h"
#include "core/flows/flow.h"
#include "core/flows/flow_state.h"
#include "core/kernels/kernel_sums.h"
#include "core/kernels/pairwise_median.h"
#include "core/targets/empirical_target.h"
#include "core/targets/target_family.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};

// The call stacks of the first few counted allocations, printed when a test fails.
constexpr int kTraced = 4, kFrames = 24;
void* g_stacks[kTraced][kFrames];
int g_depths[kTraced];
thread_local bool t_in_backtrace = false;

inline void Count() {
  if (!g_counting.load(std::memory_order_relaxed) || t_in_backtrace) return;
  const long n = g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (n < kTraced) {
    t_in_backtrace = true;
    g_depths[n] = backtrace(g_stacks[n], kFrames);
    t_in_backtrace = false;
  }
}

// backtrace() loads libgcc_s on first use; do that before anything is counted.
const int kBacktraceWarmUp = [] {
  void* frame[1];
  return backtrace(frame, 1);
}();

void PrintStacks() {
  for (int i = 0; i < std::min<long>(kTraced, g_allocations.load()); ++i) {
    const char header[] = "--- allocation stack (addr2line -Cfe <binary> <offsets>):\n";
    (void)!write(2, header, sizeof(header) - 1);
    backtrace_symbols_fd(g_stacks[i], g_depths[i], 2);
  }
}
}  // namespace

extern "C" {
void* malloc(size_t size) {
  Count();
  return __libc_malloc(size);
}
void* calloc(size_t n, size_t size) {
  Count();
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t size) {
  Count();
  return __libc_realloc(p, size);
}
void* memalign(size_t alignment, size_t size) {
  Count();
  return __libc_memalign(alignment, size);
}
void* aligned_alloc(size_t alignment, size_t size) {
  Count();
  return __libc_memalign(alignment, size);
}
int posix_memalign(void** out, size_t alignment, size_t size) {
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
  Count();
  void* p = __libc_memalign(alignment, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void free(void* p) { __libc_free(p); }
}

namespace sampled {
namespace {

// Counts the allocations made while `fn` runs.
template <typename Fn>
long AllocationsDuring(Fn&& fn) {
  g_allocations = 0;
  g_counting = true;
  fn();
  g_counting = false;
  return g_allocations.load();
}

Points RandomPoints(int64_t n, int64_t d, uint64_t seed, double shift = 0) {
  Rng rng(seed);
  Points p(n, d);
  rng.FillNormal(p.data(), p.size());
  return p.array() + shift;
}

// Where the allocations below escape to, so that the compiler cannot elide them.
void* volatile g_escape;

TEST(AllocationTest, TheCounterSeesAllocations) {
  // The test must be able to fail: an Eigen temporary, a std::string and operator new are all counted.
  EXPECT_GE(AllocationsDuring([] {
              Points p = Points::Zero(100, 3);
              g_escape = p.data();
              std::string s(1000, 'x');
              g_escape = s.data();
              auto v = std::make_unique<int>(3);
              g_escape = v.get();
            }),
            3);
}

// N(2, I) in 3-D with a score that allocates nothing once `out` has its shape: what SVGD itself does is
// under test here, not a target family's score (those may use Eigen temporaries).
class ShiftedNormal final : public Target {
 public:
  int64_t dim() const override { return 3; }
  const std::string& family() const override { return family_; }
  const ParamMap& params() const override { return params_; }
  bool has_density() const override { return true; }
  absl::Status Score(const Points& x, Points* out) const override {
    out->resize(x.rows(), x.cols());
    *out = 2.0 - x.array();
    return absl::OkStatus();
  }

 private:
  std::string family_ = "test-shifted-normal";
  ParamMap params_;
};

struct Case {
  std::string method;
  DType dtype;
  std::string bandwidth;  // "" = the method's default
  std::string noise;
  int64_t batch = 0;
};

std::string Name(const Case& c) {
  return c.method + (c.dtype == DType::kFloat32 ? "/float32" : "/float64") + " bandwidth=" +
         (c.bandwidth.empty() ? "default" : c.bandwidth) + " noise=" + (c.noise.empty() ? "default" : c.noise) +
         " batch=" + std::to_string(c.batch);
}

void PrintTo(const Case& c, std::ostream* os) { *os << Name(c); }

class FlowAllocationTest : public ::testing::TestWithParam<Case> {};

TEST_P(FlowAllocationTest, StepsAfterTheFirstAllocateNothing) {
  const Case& k = GetParam();
  const Points x = RandomPoints(600, 3, 1, 2.0);
  FlowConfig c;
  c.method = k.method;
  c.dtype = k.dtype;
  c.threads = 2;
  if (!k.bandwidth.empty()) c.bandwidth = k.bandwidth;
  if (!k.noise.empty()) c.noise = k.noise;
  if (k.batch > 0) c.batch_size = k.batch;
  c.step_size = 0.05;
  c.schedule_steps = 100;
  std::shared_ptr<const Target> target;
  if (k.method == "svgd") {  // needs a score
    target = std::make_shared<ShiftedNormal>();
  } else {
    target = *EmpiricalTarget::Create(x);
  }
  auto flow = CreateFlow(c, target);
  ASSERT_TRUE(flow.ok()) << flow.status();
  FlowState state;
  state.particles = RandomPoints(500, 3, 2);
  StepStats stats;
  for (int i = 0; i < 2; ++i) ASSERT_TRUE((*flow)->Step(state, &stats).ok());  // the flow has started
  const long allocations = AllocationsDuring([&] {
    for (int i = 0; i < 5; ++i) ASSERT_TRUE((*flow)->Step(state, &stats).ok());
  });
  EXPECT_EQ(allocations, 0) << Name(k) << ": heap allocations in 5 steps after the first two";
  if (allocations > 0) PrintStacks();
}

INSTANTIATE_TEST_SUITE_P(
    KernelFlows, FlowAllocationTest,
    ::testing::Values(Case{"sd", DType::kFloat32, "", "", 0}, Case{"sd", DType::kFloat64, "", "", 0},
                      Case{"sd", DType::kFloat32, "cosine:10,0.5", "bandwidth", 0},
                      Case{"sd", DType::kFloat64, "0.7", "none", 128}, Case{"svgd", DType::kFloat32, "", "", 0},
                      Case{"svgd", DType::kFloat64, "", "", 0}, Case{"mmd", DType::kFloat32, "", "", 0},
                      Case{"mmd", DType::kFloat64, "", "", 0}, Case{"mmd-gaussian", DType::kFloat32, "", "", 0},
                      Case{"wgf", DType::kFloat32, "", "", 0}, Case{"wgf", DType::kFloat64, "", "", 64},
                      Case{"mmd", DType::kFloat32, "", "", 100}),
    [](const ::testing::TestParamInfo<Case>& info) { return "case" + std::to_string(info.index); });

TEST(KernelSumsAllocationTest, WeightedMeansAndTheMedianReuseTheirWorkspaces) {
  for (int d : {2, 12}) {  // the fused path and the GEMM path
    const PointsF q = RandomPoints(700, d, 3).cast<float>(), p = RandomPoints(900, d, 4).cast<float>();
    KernelWorkspace<float> ws;
    PairwiseMedianWorkspace<float> median_ws;
    Points out;
    GaussianWeightedMeans(q, p, 1.3, ws, 2, &out);
    MedianPairwiseSquaredDistance(q, 2, median_ws);
    const long allocations = AllocationsDuring([&] {
      for (int i = 0; i < 3; ++i) {
        GaussianWeightedMeans(q, p, 1.3, ws, 2, &out);
        MedianPairwiseSquaredDistance(q, 2, median_ws);
      }
    });
    EXPECT_EQ(allocations, 0) << "d=" << d;
    if (allocations > 0) PrintStacks();
  }
}

}  // namespace
}  // namespace sampled
