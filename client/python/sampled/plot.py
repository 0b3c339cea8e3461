"""Plots (matplotlib, Agg backend): samples over a 2-D density's contours, and a training job's curves.

    import sampled.plot
    sampled.plot.samples(x, "mog2.png", target=client.session.targets()[0])
    sampled.plot.history(job, "training.png")

The contours use numpy forms of the families' log-densities (log_density below) built from the parameters
the server reports for the target (targets_pb2.Target.params, defaults filled in), the same formulas as
core/targets/torch_forms.cc.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np


def _param(target, key) -> np.ndarray:
    return np.asarray(list(target.params[key].values), dtype=np.float64)


def _gauss(z: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    prec = np.linalg.inv(cov)
    c = z - mean
    return -0.5 * np.einsum("ni,ij,nj->n", c, prec, c) - 0.5 * np.linalg.slogdet(cov)[1]


def log_density(target, x: np.ndarray) -> np.ndarray:
    """log q(x) up to a constant for a density target (targets_pb2.Target) of a built-in family; x: n x d."""
    x = np.asarray(x, dtype=np.float64)
    f, d = target.family, x.shape[1]
    if f == "gaussian":
        return _gauss(x, _param(target, "mean"), _param(target, "cov").reshape(d, d))
    if f == "mixture":
        means, weights = _param(target, "means").reshape(-1, d), _param(target, "weights")
        covs = _param(target, "cov").reshape(-1, d, d)
        terms = np.stack([_gauss(x, means[k], covs[k]) + np.log(weights[k]) for k in range(len(weights))], 1)
        m = terms.max(1, keepdims=True)
        return (m + np.log(np.exp(terms - m).sum(1, keepdims=True)))[:, 0]
    x0, x1 = x[:, 0], x[:, 1]
    if f == "rosenbrock":
        return _gauss(np.stack([-x0, -x1 - x0 ** 2 - 1], 1), _param(target, "mean"), _param(target, "cov").reshape(2, 2))
    if f == "squiggle":
        freq = _param(target, "freq")[0]
        return _gauss(np.stack([x0, x1 + np.sin(freq * x0)], 1), _param(target, "mean"),
                      _param(target, "cov").reshape(2, 2))
    if f == "donut":
        r = np.linalg.norm(x, axis=1)
        return -(r - _param(target, "radius")[0]) ** 2 / _param(target, "width")[0]
    if f == "funnel":
        vm, vs, xm = _param(target, "v_mean")[0], _param(target, "v_std")[0], _param(target, "x_mean")[0]
        return -0.5 * (x1 - vm) ** 2 / vs ** 2 - 0.5 * (x0 - xm) ** 2 * np.exp(-x1) - 0.5 * x1
    raise ValueError(f"no numpy form for family {f!r}")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def samples(x, path: str, target=None, bounds: Optional[Sequence[float]] = None, title: str = "",
            grid: int = 200) -> str:
    """Scatter of 2-D samples, over the contours of `target`'s density when it is a 2-D density target.
    bounds: (xmin, xmax, ymin, ymax); default: the samples' range, padded. Writes a PNG; returns its path."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"samples.plot draws 2-D samples, got shape {x.shape}")
    if bounds is None:
        lo, hi = np.percentile(x, 0.5, axis=0), np.percentile(x, 99.5, axis=0)
        pad = 0.15 * (hi - lo) + 1e-9
        bounds = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if target is not None and target.kind == 2 and target.dim == 2:  # TARGET_KIND_DENSITY
        gx, gy = np.meshgrid(np.linspace(bounds[0], bounds[1], grid), np.linspace(bounds[2], bounds[3], grid))
        lq = log_density(target, np.stack([gx.ravel(), gy.ravel()], 1)).reshape(grid, grid)
        ax.contour(gx, gy, np.exp(lq - lq.max()), levels=8, cmap="viridis", linewidths=0.8)
    ax.scatter(x[:, 0], x[:, 1], s=3, alpha=0.5, color="tab:red")
    ax.set_xlim(bounds[0], bounds[1])
    ax.set_ylim(bounds[2], bounds[3])
    ax.set_title(title or (f"{len(x)} samples" + (f" over {target.family}" if target is not None else "")))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def history(job_or_history, path: str, title: str = "") -> str:
    """A training job's curves: score and sampler losses against the step, and its metrics (KSD) at the steps
    it evaluated. Takes a Job or the dict Job.history() returns. Writes a PNG; returns its path."""
    h: Dict[str, np.ndarray] = job_or_history.history() if hasattr(job_or_history, "history") else job_or_history
    metrics = [k for k in h if k not in ("step", "score_loss", "sampler_loss", "sampler_grad_norm", "seconds")]
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2 if metrics else 1, figsize=(10 if metrics else 5, 4), dpi=100, squeeze=False)
    ax = axes[0][0]
    ax.plot(h["step"], h["score_loss"], label="score loss", lw=0.8)
    ax.plot(h["step"], h["sampler_loss"], label="sampler loss", lw=0.8)
    ax.set_xlabel("iteration")
    ax.legend()
    if metrics:
        ax = axes[0][1]
        for m in metrics:
            ok = np.isfinite(h[m])
            ax.plot(h["step"][ok], h[m][ok], "o-", label=m, ms=3)
        ax.set_xlabel("iteration")
        ax.set_yscale("log")
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
