#!/usr/bin/env bash
# Sanitizer runs (docs/performance.md, "Sanitizers"):
#   ./deploy/sanitizers.sh address   ASan + UBSan build in build-asan; the unit and integration suites
#                                    (ctest -LE 'slow|paper': C++ tests and the Python tests against the
#                                    instrumented server)
#   ./deploy/sanitizers.sh thread    TSan build in build-tsan (ParallelFor serial: Debian's libgomp is not
#                                    instrumented; Abseil's synchronisation annotated by
#                                    core/common/tsan_absl_sync.cc, gRPC's reactor ordering by
#                                    server/service/reactors.h); the server's concurrency tests: jobs,
#                                    cancellation, shutdown, fair scheduling, concurrent Sample and delete,
#                                    the state store
#   ./deploy/sanitizers.sh           both
# Suppressions (deploy/sanitizers/*.supp) name third-party code only, each with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-all}"
jobs="${SAMPLED_JOBS:-2}"
supp="$PWD/deploy/sanitizers"

run_address() {
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAMPLED_SANITIZE=address
  cmake --build build-asan -j "$jobs"
  # detect_leaks: LeakSanitizer at exit. halt_on_error with UBSan's -fno-sanitize-recover is not used:
  # print_stacktrace and a non-zero exit code (exitcode) make a report fail its test.
  # allocator_may_return_null: an allocation past ASan's limit throws std::bad_alloc, as in the plain build
  # (the hardening tests ask for such allocations and expect RESOURCE_EXHAUSTED, not an abort).
  # SAMPLED_SANITIZED: the tests that compare resident memory with the accounted bytes skip themselves.
  # (The Python suite's timeout is 3600 s in a sanitized build: tests/python/CMakeLists.txt.)
  SAMPLED_SANITIZED=address \
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86:detect_odr_violation=0:allocator_may_return_null=1" \
  LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87:suppressions=$supp/ubsan.supp" \
  GOMP_SPINCOUNT=1000 \
    ctest --test-dir build-asan -LE 'slow|paper' -j "$jobs" --output-on-failure
}

run_thread() {
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAMPLED_SANITIZE=thread
  cmake --build build-tsan -j "$jobs" --target server_unit_test server_integration_test server_training_test
  TSAN_OPTIONS="halt_on_error=1:exitcode=88:suppressions=$supp/tsan.supp:second_deadlock_stack=1" \
    ctest --test-dir build-tsan -j 1 --output-on-failure \
      -R 'WorkQueue|JobTest|FlowJob|TrainingJob|Hardening|Shutdown|Cancel|Fair|Sample|Delete|StateStore|Checkpointer|Retention|Memory'
}

case "$mode" in
  address) run_address ;;
  thread) run_thread ;;
  all) run_address; run_thread ;;
  *) echo "usage: $0 [address|thread]" >&2; exit 2 ;;
esac
