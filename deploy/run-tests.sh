#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test (unit, integration and the
# papers' experiments at a scaled size, label "slow"; not their full-size runs, label "paper", which take
# hours). Exits non-zero when any test fails.
#   deploy/run-tests.sh                     everything but "paper" (what CI runs)
#   deploy/run-tests.sh -LE 'slow|paper'    skip the experiments (any ctest arguments replace the default)
#   deploy/run-tests.sh -L paper            only the full-size runs
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
./deploy/build.sh
cd build
if [ "$#" -eq 0 ]; then set -- -LE paper; fi
ctest --output-on-failure -j "${SAMPLED_TEST_JOBS:-2}" --timeout 1800 "$@"
