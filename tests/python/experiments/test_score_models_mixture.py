"""004 Sec. 4 (Figs. 2-3) in our terms, at a scaled size: a 2-D Gaussian mixture with unequal weights and
anisotropic components; GM + NDSM-CV (learned eps_phi), GM + NDSM (eps = 0), both at their defaults (the
residual score form), GM + NDSM with eps = 0 and with eps = 1 in 004's plain form (where Thm 3.1's variance
matters: with the residual form an untrained network already leaves the prior's dynamics, so a noisy one does
little harm), and OU + DSM; each at its defaults but the iteration count (SAMPLED_SCORE_ITERATIONS, default
3000; 004 trains 50000), over 3 seeds (SAMPLED_SCORE_SEEDS; the documented tables ran 5).

Measured per run on 4096 reverse-SDE draws (1000 steps): the total-variation distance between the draws' mode
frequencies (nearest component by Mahalanobis distance) and the true weights, each mode's standard deviation
along its principal axes against the truth, and the MMD^2 (Gaussian kernel, bandwidth 0.5) to 4096 held-out
points. Asserted (means over the seeds): GM + NDSM-CV and GM + NDSM below OU + DSM in TV, and in the plain form
eps = 1 worse than eps = 0 in MMD. Printed: the table for docs/experiments.md, and (at 50000 iterations or with
SAMPLED_SCORE_DTN=1) the plain GM + NDSM's TV and MMD over Delta t_N.
"""

import os

import numpy as np
import pytest

WEIGHTS = np.array([0.6, 0.3, 0.1])
MEANS = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.5]])


def _cov(sx, sy, angle):
    c, s = np.cos(angle), np.sin(angle)
    r = np.array([[c, -s], [s, c]])
    return r @ np.diag([sx * sx, sy * sy]) @ r.T


COVS = np.array([_cov(1.0, 0.2, 0.5), _cov(0.6, 0.15, -0.9), _cov(0.3, 0.3, 0.0)])
ITERATIONS = int(os.environ.get("SAMPLED_SCORE_ITERATIONS", "3000"))
# 3 seeds in the test command; the documented tables ran 5 (SAMPLED_SCORE_SEEDS=5).
SEEDS = range(int(os.environ.get("SAMPLED_SCORE_SEEDS", "3")))


def _mixture(n, seed):
    rng = np.random.default_rng(seed)
    k = rng.choice(3, size=n, p=WEIGHTS)
    chol = np.linalg.cholesky(COVS)
    return MEANS[k] + np.einsum("nij,nj->ni", chol[k], rng.normal(size=(n, 2)))


def _assign(x):
    prec = np.linalg.inv(COVS)
    diff = x[:, None, :] - MEANS[None]
    return np.einsum("nki,kij,nkj->nk", diff, prec, diff).argmin(1)


def _mmd2(x, y, h=0.5):
    def k(a, b):
        d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
        return np.exp(-d2 / (2 * h * h))
    n, m = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * k(x, y).mean())


def _measure(draws, held_out):
    k = _assign(draws)
    freq = np.bincount(k, minlength=3) / len(draws)
    tv = 0.5 * np.abs(freq - WEIGHTS).sum()
    # Each mode's std along the truth's principal axes, relative to the truth's: 1 is right.
    ratios = []
    for j in range(3):
        mine = draws[k == j] - MEANS[j]
        vals, vecs = np.linalg.eigh(COVS[j])
        if len(mine) > 10:
            ratios.append(np.sqrt(((mine @ vecs) ** 2).mean(0) / vals))
    return tv, np.mean(ratios), _mmd2(draws, held_out)


RUNS = [("GM + NDSM-CV", "ndsm-cv", {}), ("GM + NDSM (eps = 0)", "ndsm", {}),
        ("GM + NDSM (eps = 0), plain", "ndsm", {"score_form": "plain"}),
        ("GM + NDSM-CV (eps = 1), plain", "ndsm-cv", {"cv_eps": 1.0, "score_form": "plain"}),
        ("OU + DSM", "dsm", {})]


def test_mode_balance_against_dsm(client):
    data = _mixture(10000, 100)
    held_out = _mixture(4096, 101)
    target = client.upload_target("mixture", data)
    results = {}
    for label, method, kw in RUNS:
        for seed in SEEDS:
            job = client.train(target, method, steps=ITERATIONS, seed=seed, **kw)
            job.wait()
            assert job.state == "succeeded", (label, job.status())
            draws = job.sampler().sample(4096, seed=1000 + seed)
            results.setdefault(label, []).append(_measure(draws, held_out))
            print(f"{label}, seed {seed}: TV {results[label][-1][0]:.4f}, MMD^2 {results[label][-1][2]:.5f}", flush=True)
    print(f"\n004 Sec. 4 in our terms: {ITERATIONS} iterations, {len(SEEDS)} seeds (mean +- standard error)")
    print("| method | TV of mode frequencies | per-mode std / truth | MMD^2 to held-out |")
    print("| --- | --- | --- | --- |")
    stats = {}
    for label, rows in results.items():
        a = np.array(rows)
        mean, se = a.mean(0), a.std(0, ddof=1) / np.sqrt(len(a))
        stats[label] = mean
        print(f"| {label} | {mean[0]:.4f} +- {se[0]:.4f} | {mean[1]:.3f} +- {se[1]:.3f} | {mean[2]:.5f} +- {se[2]:.5f} |")
    # Delta t_N (004 Fig. 3), for GM + NDSM with 004's plain network on one seed: printed, not asserted, so
    # only at 004's length or when asked (SAMPLED_SCORE_DTN=1), not in the test command.
    sweep = ITERATIONS >= 50000 or os.environ.get("SAMPLED_SCORE_DTN") == "1"
    if sweep:
        print("\nGM + NDSM (plain) over Delta t_N (seed 0): | Delta t_N | TV | MMD^2 |")
    for dt_last in (1e-2, 1e-3, 1e-4) if sweep else ():
        job = client.train(target, "ndsm", steps=ITERATIONS, seed=0, dt_last=dt_last, score_form="plain")
        job.wait()
        tv, _, mmd = _measure(job.sampler().sample(4096, seed=1000), held_out)
        print(f"| {dt_last:g} | {tv:.4f} | {mmd:.5f} |")
    assert stats["GM + NDSM-CV"][0] < stats["OU + DSM"][0]
    assert stats["GM + NDSM (eps = 0)"][0] < stats["OU + DSM"][0]
    assert stats["GM + NDSM-CV (eps = 1), plain"][2] > stats["GM + NDSM (eps = 0), plain"][2]
