"""Stein KiNG through the server (docs/experiments.md "Stein KiNG's defaults"; a script, not a test).

  SAMPLED_SERVER_BIN=build/server/sampled /usr/bin/python3 tests/experiments/stein_king_mog2.py \
      '[{}, {"feature_bandwidth": "median-scaled:0.1"}]' [STEPS [EVERY [SEEDS]]]   (default 1000 250 1)

For each JSON dict of flow arguments: 500 particles from N(0, I) on 003's MoG2, stepped EVERY steps at a time;
prints unbiased MMD^2 to 4000 exact draws (kernel exp(-D^2 / median D^2)), the share with x0 > 0, the mean
per-coordinate std (the target's 2.12), the share within 1.5 of a mode's centre (exact: 0.89), and KSD.
FAMILIES=gaussian,rosenbrock,... runs those 2-D families instead, printing the final KSD only."""
import json
import os
from pathlib import Path
import sys
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from conftest import RunningServer  # noqa: E402


def exact(n, rng):
    z = rng.integers(0, 2, size=n)
    means = np.array([[-2.0, 2.0], [2.0, -2.0]])
    return means[z] + np.sqrt(0.5) * rng.normal(size=(n, 2))


def mmd2(x, y):
    xy = np.concatenate([x, y])
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    h2 = np.median(d2[d2 > 0]) / 2
    k = np.exp(-d2 / (2 * h2))
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean())


def main():
    configs = json.loads(sys.argv[1])
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    every = int(sys.argv[3]) if len(sys.argv) > 3 else 250
    seeds = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    ref = exact(4000, np.random.default_rng(123))
    s = RunningServer("--workers", "1")
    try:
        c = s.client(timeout=600)
        c.create_session("x")

        fams = os.environ.get("FAMILIES", "mixture").split(",")
        for fam, cfg in [(f, g) for g in configs for f in fams]:
            t = c.define_target(fam + json.dumps(cfg), fam, dim=2)
            for seed in range(seeds):
                if fam != "mixture":
                    j = c.start_flow(t, "stein-king", particles=500, steps=steps, seed=seed, **cfg)
                    j.wait()
                    print(fam, json.dumps(cfg), seed, j.state, c.evaluate(t, job=j, metrics=["ksd"]), flush=True)
                    j.delete()
                    continue
                cfg = dict(cfg)
                t0 = time.time()
                j = c.start_flow(t, "stein-king", particles=500, steps=0, seed=seed, **cfg)
                row = []
                for k in range(steps // every):
                    try:
                        j.step(every)
                    except Exception as e:  # noqa: BLE001
                        row.append(f"fail@{(k + 1) * every}: {str(e)[:80]}")
                        break
                    p = j.particles()
                    dm = np.minimum(np.linalg.norm(p - [-2, 2], axis=1), np.linalg.norm(p - [2, -2], axis=1))
                    row.append("%d: mmd2 %.4f x0>0 %.2f std %.2f near %.2f" % ((k + 1) * every, mmd2(p, ref), (p[:, 0] > 0).mean(),
                                                                    p.std(0).mean(), (dm < 1.5).mean()))
                try:
                    ksd = c.evaluate(t, job=j, metrics=["ksd"])
                except Exception as e:  # noqa: BLE001
                    ksd = str(e)[:60]
                print(json.dumps(cfg), "seed", seed, "%.0fs" % (time.time() - t0), " | ".join(row), "ksd", ksd, flush=True)
                j.delete()
    finally:
        s.stop()


if __name__ == "__main__":
    main()
