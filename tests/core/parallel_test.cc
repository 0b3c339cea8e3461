#include "core/common/parallel.h"

#include <atomic>
#include <cfloat>
#include <new>
#include <vector>

#include <gtest/gtest.h>

namespace sampled {
namespace {

// Computed at run time so the compiler cannot fold it: FLT_MIN * 2^-10 is a denormal.
float Denormal(volatile float scale) { return FLT_MIN * scale; }

// Blocks run with denormals flushed to zero, on one thread or many, and the caller's mode is restored.
TEST(ParallelForTest, BlocksFlushDenormalsAndRestoreTheMode) {
  ASSERT_GT(Denormal(0x1.0p-10f), 0.0f);  // the caller computes denormals
  for (int threads : {1, 2}) {
    std::atomic<int> nonzero{0};
    ParallelFor(8, 1, threads, [&](int64_t, int64_t, int) {
      if (Denormal(0x1.0p-10f) != 0.0f) nonzero.fetch_add(1);
    });
    EXPECT_EQ(nonzero.load(), 0) << threads << " thread(s)";
    EXPECT_GT(Denormal(0x1.0p-10f), 0.0f) << "mode restored after " << threads << " thread(s)";
  }
}

// Every item is visited once, in blocks of the grain, whatever the thread count.
TEST(ParallelForTest, VisitsEveryItemOnceInFixedBlocks) {
  for (int threads : {1, 2, 3}) {
    std::vector<int> seen(103, 0);
    ParallelFor(103, 10, threads, [&](int64_t b, int64_t e, int) {
      EXPECT_EQ(b % 10, 0);
      EXPECT_EQ(e, std::min<int64_t>(103, b + 10));
      for (int64_t i = b; i < e; ++i) ++seen[i];
    });
    for (int v : seen) EXPECT_EQ(v, 1);
  }
}

}  // namespace
}  // namespace sampled

namespace sampled {
namespace {

// An exception thrown in a block reaches the caller (not std::terminate), on one thread and on a team;
// the pool works afterwards.
TEST(ParallelForTest, ExceptionsReachTheCaller) {
  for (const int threads : {1, 2}) {
    std::atomic<int> ran{0};
    EXPECT_THROW(ParallelFor(64, 1, threads,
                             [&](int64_t begin, int64_t, int) {
                               ran.fetch_add(1);
                               if (begin == 5) throw std::bad_alloc();
                             }),
                 std::bad_alloc)
        << threads;
    EXPECT_GE(ran.load(), 1);
    std::atomic<int64_t> sum{0};
    ParallelFor(100, 7, threads, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) sum.fetch_add(i);
    });
    EXPECT_EQ(sum.load(), 4950);
  }
}

// A stop flag set while blocks run stops the loop between blocks (StopRequested on the caller, blocks
// after the stop skipped); without a flag in scope, or with it clear, every block runs.
TEST(ParallelForTest, AStopFlagEndsTheLoopBetweenBlocks) {
  for (const int threads : {1, 2}) {
    std::atomic<bool> stop{false};
    std::atomic<int> ran{0};
    {
      ScopedStopFlag scope(&stop);
      EXPECT_THROW(ParallelFor(1000, 1, threads,
                               [&](int64_t begin, int64_t, int) {
                                 ran.fetch_add(1);
                                 if (begin == 10) stop.store(true);
                               }),
                   StopRequested)
          << threads;
      EXPECT_LT(ran.load(), 1000);
      EXPECT_GE(ran.load(), 11);
      stop.store(false);
      ran.store(0);
      ParallelFor(100, 1, threads, [&](int64_t, int64_t, int) { ran.fetch_add(1); });
      EXPECT_EQ(ran.load(), 100);
      stop.store(true);
      EXPECT_THROW(ThrowIfStopRequested(), StopRequested);
    }
    ran.store(0);
    ParallelFor(100, 1, threads, [&](int64_t, int64_t, int) { ran.fetch_add(1); });  // out of scope
    EXPECT_EQ(ran.load(), 100);
    EXPECT_NO_THROW(ThrowIfStopRequested());
  }
}

}  // namespace
}  // namespace sampled
