#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test (unit, integration and the
# papers' experiments under the "slow" label). Exits non-zero when any test fails.
#   deploy/run-tests.sh                 everything (what CI runs)
#   deploy/run-tests.sh -LE slow        skip the slow experiments (any ctest arguments pass through)
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
./deploy/build.sh
cd build
ctest --output-on-failure -j "${SAMPLED_TEST_JOBS:-2}" --timeout 1800 "$@"
