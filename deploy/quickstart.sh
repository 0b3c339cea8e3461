#!/usr/bin/env bash
# The first command on a fresh Debian 12 machine: installs what is missing, builds, starts sampled in the
# background and drives a short demo through samplectl: SD flow on a 25-Gaussian grid (002 Sec. 7.2.1)
# with a live progress bar and the final metrics; then restarts the server to show that the state in
# build/state (--state-dir) survives. The server keeps running; stop it with
#   kill $(cat build/sampled.pid)
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
./deploy/build.sh

listen="${SAMPLED_LISTEN:-127.0.0.1:50051}"
metrics="${SAMPLED_METRICS_LISTEN:-127.0.0.1:9464}"
if [ -f build/sampled.pid ] && kill -0 "$(cat build/sampled.pid)" 2>/dev/null; then
  echo "quickstart: stopping the sampled started earlier (pid $(cat build/sampled.pid))"
  kill "$(cat build/sampled.pid)"
  while kill -0 "$(cat build/sampled.pid)" 2>/dev/null; do sleep 0.2; done
fi
state="${SAMPLED_STATE_DIR:-build/state}"
start_server() {
  build/server/sampled --listen "$listen" --metrics-listen "$metrics" --state-dir "$state" > build/sampled.log 2>&1 &
  echo $! > build/sampled.pid
  for _ in $(seq 1 300); do
    grep -q "state in" build/sampled.log 2>/dev/null && break
    if ! kill -0 "$(cat build/sampled.pid)" 2>/dev/null; then cat build/sampled.log; exit 1; fi
    sleep 0.1
  done
  head -n 1 build/sampled.log
  grep "state in" build/sampled.log
}
start_server

export SAMPLED_SERVER="$listen"
ctl=build/client/samplectl
$ctl health
session=$($ctl session create --name quickstart)
# The grid: means {-4,-2,0,2,4}^2, std 0.3; 1024 exact draws stored as the target's samples.
means=$(for i in -4 -2 0 2 4; do for j in -4 -2 0 2 4; do printf '%s,%s,' "$i" "$j"; done; done)
target=$($ctl target define --session "$session" --name grid --family mixture \
  --param "means=${means%,}" --param std=0.3 --sample 1024 --seed 1)
echo "session $session, target $target (25-Gaussian grid, 1024 points)"
echo "SD flow: 1024 particles from N((-8, 8), I), 1000 steps, cosine noise 10 -> 0.5, CFD/MMD every 100 steps"
job=$($ctl flow start --session "$session" --target "$target" --method sd --particles 1024 --init-mean -8,8 \
  --steps 1000 --noise cosine:10,0.5 --eval-every 100 --seed 2)
$ctl job watch "$job"
$ctl particles --job "$job" --out build/quickstart_particles.npy
echo
echo "restarting sampled: the session, its target and the finished job come back from $state"
kill "$(cat build/sampled.pid)"
while kill -0 "$(cat build/sampled.pid)" 2>/dev/null; do sleep 0.2; done
start_server
$ctl job status "$job"
$ctl particles --job "$job" --out build/quickstart_particles_after_restart.npy
cmp -s build/quickstart_particles.npy build/quickstart_particles_after_restart.npy && \
  echo "the particles after the restart are the same bytes"
echo
echo "sampled is running at $listen (metrics: http://$metrics/metrics, log: build/sampled.log)."
echo "Stop it with: kill \$(cat build/sampled.pid)"
