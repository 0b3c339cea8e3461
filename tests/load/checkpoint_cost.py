# The cost of checkpointing: one flow on an in-memory server and on a --state-dir server (docs/performance.md).
# Usage: SAMPLED_SERVER_BIN=build/server/sampled PYTHONPATH=client/python:tests/python /usr/bin/python3 tests/load/checkpoint_cost.py N D STEPS [EVERY]
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from conftest import RunningServer
from test_state_dir import StateServer

def run(server, n, d, steps):
    c = server.client(timeout=600)
    s = c.create_session("cost")
    g = s.define_target("g", "gaussian", dim=d)
    t0 = time.time()
    j = s.start_flow(g, "langevin", particles=n, steps=steps, seed=1, step_size=0.01)
    t1 = time.time()
    st = j.wait()
    run_s = (st.end_time.ToNanoseconds() - st.start_time.ToNanoseconds()) / 1e9
    return t1 - t0, run_s

n, d, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
every = sys.argv[4] if len(sys.argv) > 4 else "30s"
a = RunningServer("--max-memory", "0")
try:
    mem = run(a, n, d, steps)
finally:
    a.stop()
tmp = tempfile.mkdtemp()
b = StateServer(tmp + "/state", "--checkpoint-every", every, "--max-memory", "0")
try:
    dur = run(b, n, d, steps)
finally:
    b.stop()
print(f"langevin {n} x {d} ({n*d*8/1e6:.0f} MB of particles), {steps} steps, --checkpoint-every {every}")
print(f"  in memory:   start {mem[0]:.2f} s, run {mem[1]:.2f} s")
print(f"  --state-dir: start {dur[0]:.2f} s (the step-0 checkpoint), run {dur[1]:.2f} s -> {100*(dur[1]/mem[1]-1):+.1f}%")
shutil.rmtree(tmp)
