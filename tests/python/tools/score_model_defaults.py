"""Measures what docs/experiments.md ("004: score models, first checks") reports of the score models' defaults:
per method and number of iterations, the draws' shares of the four clusters, the share farther than 1 from every
centre, and the per-cluster std, for the reverse SDE and the probability-flow ODE.

    SAMPLED_SERVER_BIN=build/server/sampled PYTHONPATH=client/python:tests/python \
        /usr/bin/python3 tests/python/tools/score_model_defaults.py ndsm,ndsm-cv,dsm 3000
"""

import sys

import numpy as np

from conftest import RunningServer
from test_score_models import CENTRES, _clusters, _shares


def main(methods, iterations):
    server = RunningServer()
    try:
        c = server.client()
        c.create_session("defaults")
        target = c.upload_target("clusters", _clusters())
        for method in methods:
            for steps in iterations:
                job = c.train(target, method, steps=steps, seed=1)
                job.wait()
                sampler = job.sampler()
                for dynamics in ("sde", "ode"):
                    d = sampler.sample(2048, seed=2, dynamics=dynamics)
                    shares, nearest = _shares(d)
                    far = np.mean(np.min(((d[:, None, :] - CENTRES[None]) ** 2).sum(-1), 1) > 1.0)
                    stds = [d[nearest == k].std(0).mean() for k in range(4)]
                    print(f"{method:8s} {steps:6d} {dynamics}  shares {np.round(shares, 3)}  far {far:.3f}  "
                          f"std {np.round(stds, 3)}", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1].split(","), [int(s) for s in sys.argv[2].split(",")])
