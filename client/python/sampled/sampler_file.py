"""Sampler files (docs/api.md, "Sampler files") read and drawn from with numpy alone.

    import sampled
    s = sampled.load_sampler("mog2.sampler")
    x = s.sample(1000, seed=0)        # numpy's generator: other draws than the server's for the same seed

The file: b"SMPSAMPLER\\n", then little-endian u64 fields: version, provenance JSON, input and output widths,
activation name, hidden widths, the final weights and the best checkpoint's (float32, torch.nn.Linear
layout W_0, b_0, W_1, b_1, ...), flags (bit 0: last finite weights of a failed run; bit 1, version 2: a
score model of 004 follows: its dynamics, time span, time-feature frequencies, default steps and Gaussian-mixture
prior; bit 2, version 3: a drift chain of ingd follows, its epsilon: the weights are its drift networks one
after another), and an FNV-1a 64 checksum of every byte before it. A score model's draws run its reverse SDE or
probability-flow ODE (`LocalSampler.sample(..., steps=, dynamics=)`), as the server's do; a drift chain's move
x_0 ~ N(0, I) by each drift in turn, x <- x + epsilon h_k(x) (`steps`: the first k drifts).
"""

from __future__ import annotations

import json
import math
import struct
from typing import List, Optional

import numpy as np

MAGIC = b"SMPSAMPLER\n"
VERSION = 3


def _fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def _erf(x: np.ndarray) -> np.ndarray:
    """erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7; numpy has no erf), enough for
    float32 networks."""
    p, a1, a2, a3, a4, a5 = 0.3275911, 0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429
    s = np.sign(x)
    ax = np.abs(x)
    t = 1.0 / (1.0 + p * ax)
    y = 1.0 - (((((a5 * t + a4) * t) + a3) * t + a2) * t + a1) * t * np.exp(-ax * ax)
    return s * y


def _activate(name: str, a: np.ndarray) -> np.ndarray:
    if name == "elu":
        return np.where(a > 0, a, np.expm1(np.minimum(a, 0)))
    if name == "gelu":
        return 0.5 * a * (1.0 + _erf(a / math.sqrt(2.0)))
    if name == "silu":
        return a / (1.0 + np.exp(-a))
    if name == "tanh":
        return np.tanh(a)
    if name == "leaky-relu":
        return np.where(a > 0, a, 0.2 * a)
    raise ValueError(f"unknown activation {name!r}")


class LocalSampler:
    """A trained sampler loaded from its file; draws with numpy in float32."""

    def __init__(self, data: bytes):
        if not data.startswith(MAGIC):
            raise ValueError("not a sampler file (it does not start with SMPSAMPLER)")
        if len(data) < len(MAGIC) + 16:
            raise ValueError("sampler file is truncated")
        (stored,) = struct.unpack_from("<Q", data, len(data) - 8)
        if _fnv1a(data[:-8]) != stored:
            raise ValueError("sampler file is corrupted or truncated (its checksum does not match)")
        pos = len(MAGIC)

        def u64() -> int:
            nonlocal pos
            (v,) = struct.unpack_from("<Q", data, pos)
            pos += 8
            return v

        def raw(n: int) -> bytes:
            nonlocal pos
            out = data[pos : pos + n]
            pos += n
            return out

        def f64() -> float:
            nonlocal pos
            (v,) = struct.unpack_from("<d", data, pos)
            pos += 8
            return v

        version = u64()
        if version not in (1, 2, VERSION):
            raise ValueError(f"sampler file version {version} is not supported (this package reads {VERSION})")
        self.provenance = json.loads(raw(u64()).decode() or "{}")
        self.latent, self.dim = u64(), u64()
        self.activation = raw(u64()).decode()
        self.hidden: List[int] = [u64() for _ in range(u64())]
        self.final_weights = np.frombuffer(raw(4 * u64()), dtype="<f4")
        best = np.frombuffer(raw(4 * u64()), dtype="<f4")
        self.best_weights: Optional[np.ndarray] = best if best.size else None
        flags = u64()
        self.last_finite = bool(flags & 1)
        self.score_model: Optional[dict] = None
        if flags & 2:
            m = {"dynamics": raw(u64()).decode(), "dim": u64()}
            m["t_end"], m["t_min"], m["beta_min"], m["beta_max"] = f64(), f64(), f64(), f64()
            m["frequencies"] = np.frombuffer(raw(4 * u64()), dtype="<f4")
            m["default_steps"] = u64()
            m["residual"] = bool(u64())
            prior = {}
            for _ in range(u64()):
                key = raw(u64()).decode()
                prior[key] = np.frombuffer(raw(8 * u64()), dtype="<f8")
            m["prior"] = prior
            self.score_model = m
        self.epsilon: Optional[float] = None  # a drift chain's time step
        if flags & 4:
            if version < 3 or flags & 2:
                raise ValueError("sampler file's drift-chain flag is set in a file that cannot hold one")
            self.epsilon = f64()
            if not (math.isfinite(self.epsilon) and self.epsilon > 0) or self.latent != self.dim:
                raise ValueError("sampler file's drift chain is malformed (epsilon > 0, a d -> d network)")
        widths = [self.latent] + self.hidden + [self.dim]
        need = sum(widths[i + 1] * widths[i] + widths[i + 1] for i in range(len(widths) - 1))
        if self.epsilon is not None:
            if self.final_weights.size == 0 or self.final_weights.size % need or best.size % need or \
                    best.size > self.final_weights.size:
                raise ValueError(f"sampler file holds {self.final_weights.size} weights; a chain of its drifts needs "
                                 f"a multiple of {need}")
            self.drifts = self.final_weights.size // need
        elif self.final_weights.size != need:
            raise ValueError(f"sampler file holds {self.final_weights.size} weights; its architecture needs {need}")
        self._widths = widths
        self._need = need

    def _layers(self, weights: np.ndarray):
        off, out = 0, []
        for i in range(len(self._widths) - 1):
            n_in, n_out = self._widths[i], self._widths[i + 1]
            w = weights[off : off + n_out * n_in].reshape(n_out, n_in)
            off += n_out * n_in
            b = weights[off : off + n_out]
            off += n_out
            out.append((w, b))
        return out

    def forward(self, z: np.ndarray, checkpoint: str = "final", weights: Optional[np.ndarray] = None) -> np.ndarray:
        """g(z) for latents z (n x latent) (a drift chain: one drift network, given as `weights`)."""
        if weights is None:
            weights = self.best_weights if checkpoint == "best" and self.best_weights is not None else self.final_weights
        h = np.asarray(z, dtype=np.float32)
        layers = self._layers(weights)
        for i, (w, b) in enumerate(layers):
            h = h @ w.T + b
            if i + 1 < len(layers):
                h = _activate(self.activation, h).astype(np.float32)
        return h

    def sample(self, n: int, seed: Optional[int] = None, checkpoint: str = "final", steps: int = 0,
               dynamics: str = "sde") -> np.ndarray:
        """n draws from numpy's default generator with `seed`: a generator's g(z), z ~ N(0, I); a score
        model's reverse dynamics (`steps`, 0: its default; `dynamics` "sde" or "ode") from its prior."""
        rng = np.random.default_rng(seed)
        if self.epsilon is not None:  # a drift chain: x_0 ~ N(0, I_d), then its first `steps` drifts (0: all)
            weights = self.best_weights if checkpoint == "best" and self.best_weights is not None else self.final_weights
            chain = weights.size // self._need
            if dynamics != "sde":
                raise ValueError("a drift chain has no ode: dynamics applies to score models")
            if steps < 0 or steps > chain:
                raise ValueError(f"steps must be between 0 (all) and the {chain} drifts of this sampler, got {steps}")
            x = rng.standard_normal((n, self.dim), dtype=np.float32)
            eps = np.float32(self.epsilon)
            for k in range(steps or chain):
                x = x + eps * self.forward(x, weights=weights[k * self._need:(k + 1) * self._need])
            return x
        if self.score_model is None:
            return self.forward(rng.standard_normal((n, self.latent), dtype=np.float32), checkpoint)
        if dynamics not in ("sde", "ode"):
            raise ValueError("dynamics is 'sde' or 'ode'")
        m = self.score_model
        d = m["dim"]
        gm = m["dynamics"] == "gm"
        if gm:
            weights, means, covs = self._prior()
            comp = rng.choice(len(weights), size=n, p=weights)
            chol = np.linalg.cholesky(covs)
            x = means[comp] + np.einsum("nij,nj->ni", chol[comp], rng.standard_normal((n, d)))
        else:
            x = rng.standard_normal((n, d))
        steps = steps or m["default_steps"]
        t_stop = 0.0 if gm else m["t_min"]
        dt = (m["t_end"] - t_stop) / steps
        ode = dynamics == "ode"
        for k in range(steps):
            t = m["t_end"] - k * dt
            s = self.score(x, t, checkpoint).astype(np.float64)
            if m["residual"]:  # the stationary score plus the network
                s = s + (self._prior_score(x) if gm else -x)
            if gm:
                step = (-self._prior_score(x) + (1 if ode else 2) * s) * dt
                noise = math.sqrt(2 * dt)
            else:
                beta = m["beta_min"] + (m["beta_max"] - m["beta_min"]) * t
                step = (beta / 2 * x + (beta / 2 if ode else beta) * s) * dt
                noise = math.sqrt(beta * dt)
            x = x + step
            if not ode:
                x = x + noise * rng.standard_normal((n, d))
        return x.astype(np.float32)

    def score(self, y: np.ndarray, t: float, checkpoint: str = "final") -> np.ndarray:
        """A score model's network at (y, t), on [y, t, sin(f t), cos(f t)] (a residual model's s adds the
        stationary score to it)."""
        f = self.score_model["frequencies"].astype(np.float32)
        n = len(y)
        tt = np.full((n, 1), t, dtype=np.float32)
        inputs = np.hstack([np.asarray(y, dtype=np.float32), tt, np.sin(f * tt), np.cos(f * tt)])
        return self.forward(inputs, checkpoint)

    def _prior(self):
        p, d = self.score_model["prior"], self.score_model["dim"]
        weights = p["weights"] / p["weights"].sum()
        return weights, p["means"].reshape(-1, d), p["cov"].reshape(-1, d, d)

    def _prior_score(self, x: np.ndarray) -> np.ndarray:
        """The mixture prior's score (its -grad V)."""
        if not hasattr(self, "_prior_terms"):
            weights, means, covs = self._prior()
            self._prior_terms = (means, np.linalg.inv(covs), np.log(weights) - 0.5 * np.linalg.slogdet(covs)[1])
        means, prec, log_norm = self._prior_terms
        diff = x[:, None, :] - means[None]
        pd = np.einsum("kij,nkj->nki", prec, diff)
        maha = (diff * pd).sum(-1)
        logp = log_norm[None] - 0.5 * maha
        r = np.exp(logp - logp.max(1, keepdims=True))
        r /= r.sum(1, keepdims=True)
        return -(r[:, :, None] * pd).sum(1)


def load_sampler(path: str) -> LocalSampler:
    with open(path, "rb") as f:
        return LocalSampler(f.read())
