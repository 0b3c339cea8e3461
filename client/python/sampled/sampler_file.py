"""Sampler files (docs/api.md, "Sampler files") read and drawn from with numpy alone.

    import sampled
    s = sampled.load_sampler("mog2.sampler")
    x = s.sample(1000, seed=0)        # numpy's generator: other draws than the server's for the same seed

The file: b"SMPSAMPLER\\n", then little-endian u64 fields: version, provenance JSON, input and output widths,
activation name, hidden widths, the final weights and the best checkpoint's (float32, torch.nn.Linear
layout W_0, b_0, W_1, b_1, ...), flags (bit 0: last finite weights of a failed run), and an FNV-1a 64
checksum of every byte before it.
"""

from __future__ import annotations

import json
import math
import struct
from typing import List, Optional

import numpy as np

MAGIC = b"SMPSAMPLER\n"
VERSION = 1


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

        version = u64()
        if version != VERSION:
            raise ValueError(f"sampler file version {version} is not supported (this package reads {VERSION})")
        self.provenance = json.loads(raw(u64()).decode() or "{}")
        self.latent, self.dim = u64(), u64()
        self.activation = raw(u64()).decode()
        self.hidden: List[int] = [u64() for _ in range(u64())]
        self.final_weights = np.frombuffer(raw(4 * u64()), dtype="<f4")
        best = np.frombuffer(raw(4 * u64()), dtype="<f4")
        self.best_weights: Optional[np.ndarray] = best if best.size else None
        self.last_finite = bool(u64() & 1)
        widths = [self.latent] + self.hidden + [self.dim]
        need = sum(widths[i + 1] * widths[i] + widths[i + 1] for i in range(len(widths) - 1))
        if self.final_weights.size != need:
            raise ValueError(f"sampler file holds {self.final_weights.size} weights; its architecture needs {need}")
        self._widths = widths

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

    def forward(self, z: np.ndarray, checkpoint: str = "final") -> np.ndarray:
        """g(z) for latents z (n x latent)."""
        weights = self.best_weights if checkpoint == "best" and self.best_weights is not None else self.final_weights
        h = np.asarray(z, dtype=np.float32)
        layers = self._layers(weights)
        for i, (w, b) in enumerate(layers):
            h = h @ w.T + b
            if i + 1 < len(layers):
                h = _activate(self.activation, h).astype(np.float32)
        return h

    def sample(self, n: int, seed: Optional[int] = None, checkpoint: str = "final") -> np.ndarray:
        """n draws: z ~ N(0, I) from numpy's default generator with `seed`, through the network."""
        rng = np.random.default_rng(seed)
        return self.forward(rng.standard_normal((n, self.latent), dtype=np.float32), checkpoint)


def load_sampler(path: str) -> LocalSampler:
    with open(path, "rb") as f:
        return LocalSampler(f.read())
