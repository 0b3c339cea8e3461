"""TorchScript model targets through the real server: a scripted MoG2 drives the density flows exactly as
the built-in mixture does, and every kind of bad model is refused with the right code, storing nothing."""

import io
from typing import Tuple

import grpc
import numpy as np
import pytest
import torch

import sampled


def archive(module) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buf)
    return buf.getvalue()


class Mixture(torch.nn.Module):
    """log sum_k w_k N(x; m_k, C_k), the built-in mixture's density, written as a user would."""

    def __init__(self, weights, means, covs):
        super().__init__()
        self.register_buffer("log_w", torch.log(torch.as_tensor(weights, dtype=torch.float64)))
        self.register_buffer("means", torch.as_tensor(means, dtype=torch.float64))
        covs = torch.as_tensor(covs, dtype=torch.float64)
        self.register_buffer("prec", torch.linalg.inv(covs))
        self.register_buffer("log_det", torch.logdet(covs))

    def forward(self, x):
        d = x.to(torch.float64).unsqueeze(1) - self.means  # [n, K, d]
        quad = torch.einsum("nkd,kde,nke->nk", d, self.prec, d)
        return torch.logsumexp(self.log_w - 0.5 * quad - 0.5 * self.log_det, dim=1)


class Printing(torch.nn.Module):
    def forward(self, x):
        print("hello")
        return -(x * x).sum(1)


class ReadsFile(torch.nn.Module):
    def forward(self, x):
        y = torch.from_file("/etc/passwd", size=4)
        return -(x * x).sum(1) + y.sum()


class WrongShape(torch.nn.Module):
    def forward(self, x):
        return -(x * x)


class NotFinite(torch.nn.Module):
    def forward(self, x):
        return torch.log(x[:, 0])  # NaN for negative x


class InPlace(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(1))

    def forward(self, x):
        self.calls.add_(1.0)  # state that changes between evaluations
        return -(x * x).sum(1)


class Random(torch.nn.Module):
    def forward(self, x):
        return -(x * x).sum(1) + torch.randn_like(x[:, 0])


class Loops(torch.nn.Module):
    def forward(self, x):
        total = torch.zeros_like(x[:, 0])
        for k in range(x.shape[1]):
            total = total - x[:, k] * x[:, k]
        return total


class SetState(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = 1.0

    def forward(self, x):
        return -self.scale * (x * x).sum(1)

    @torch.jit.export
    def __getstate__(self):
        return (self.scale, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[float, bool]):
        print("runs at load")
        self.scale = state[0]
        self.training = state[1]


class Gaussian(torch.nn.Module):
    def forward(self, x):
        return -0.5 * (x * x).sum(1)


def test_scripted_mixture_drives_flows_as_the_builtin_family(ts_client):
    c = ts_client
    builtin = c.define_target("mog2", "mixture", dim=2)
    p = {k: np.asarray(v.values) for k, v in builtin.params.items()}
    k = len(p["weights"])
    model = c.upload_model("mog2-script", archive(Mixture(p["weights"], p["means"].reshape(k, 2),
                                                        p["cov"].reshape(k, 2, 2))), dim=2)
    assert model.family == "torchscript" and model.dim == 2 and model.kind == 2  # a density
    for method, kw in (("langevin", dict(step_size=0.01)), ("svgd", dict(step_size=0.1, dtype=np.float64)),
                       ("mala", dict(step_size=0.05)), ("hmc", dict(step_size=0.1, leapfrog=5)),
                       ("wgf", dict(step_size=0.05, dtype=np.float64))):
        runs = []
        for target in (builtin, model):
            job = c.start_flow(target, method, particles=200, steps=50, seed=11, init_std=2.0, **kw)
            job.wait()
            runs.append(job.particles())
        np.testing.assert_allclose(runs[1], runs[0], rtol=0, atol=1e-10, err_msg=method)
        assert np.abs(runs[0]).max() > 0.5  # the particles moved


def test_energy_sign_flag(ts_client):
    c = ts_client
    class Energy(torch.nn.Module):
        def forward(self, x):
            return 0.5 * (x * x).sum(1)  # E; log q = -E: a standard normal
    e = c.upload_model("energy", archive(Energy()), dim=3, energy=True)
    g = c.upload_model("logq", archive(Gaussian()), dim=3)
    runs = []
    for target in (e, g):
        job = c.start_flow(target, "langevin", particles=50, steps=20, seed=3, step_size=0.05)
        job.wait()
        runs.append(job.particles())
    np.testing.assert_allclose(runs[0], runs[1], rtol=0, atol=1e-12)


def test_bad_models_are_refused_and_change_nothing(ts_client):
    c = ts_client
    c.define_target("keep", "gaussian")
    before = [t.id for t in c.session.targets()]
    cases = [
        (b"not a zip archive at all", 2, grpc.StatusCode.INVALID_ARGUMENT, "not a TorchScript archive"),
        (archive(Printing()), 2, grpc.StatusCode.INVALID_ARGUMENT, "prim::Print"),
        (archive(ReadsFile()), 2, grpc.StatusCode.INVALID_ARGUMENT, "aten::from_file, which reads a file"),
        (archive(WrongShape()), 2, grpc.StatusCode.INVALID_ARGUMENT, "returned shape [5, 2]"),
        (archive(NotFinite()), 2, grpc.StatusCode.INVALID_ARGUMENT, "not finite at the float64 probe points"),
        (archive(Gaussian()), 0, grpc.StatusCode.INVALID_ARGUMENT, "dim must be >= 1"),
        (archive(InPlace()), 2, grpc.StatusCode.INVALID_ARGUMENT, "aten::add_"),
        (archive(Random()), 2, grpc.StatusCode.INVALID_ARGUMENT, "aten::randn_like"),
        (archive(Loops()), 2, grpc.StatusCode.INVALID_ARGUMENT, "prim::Loop, which loops"),
        (archive(SetState()), 2, grpc.StatusCode.INVALID_ARGUMENT, "defines __setstate__"),
        (b"x" * 300000, 2, grpc.StatusCode.RESOURCE_EXHAUSTED, "--max-model-bytes"),
    ]
    for data, dim, code, words in cases:
        with pytest.raises(sampled.SampledError) as e:
            c.upload_model("bad", data, dim=dim)
        assert e.value.code == code, (words, e.value)
        assert words in e.value.details, (words, e.value.details)
    # Raw streams: the cap while chunks arrive (no size announced), and a size that does not match.
    from sampled.v1 import targets_pb2
    def upload(header, chunks):
        def requests():
            yield targets_pb2.UploadModelRequest(header=header)
            for chunk in chunks:
                yield targets_pb2.UploadModelRequest(chunk=chunk)
        with pytest.raises(grpc.RpcError) as e:
            c._targets.UploadModel(requests(), timeout=30)
        return e.value
    header = targets_pb2.UploadModelHeader(session_id=c.session.id, name="raw", dim=2)
    big = upload(header, [b"x" * 100000] * 3)
    assert big.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "--max-model-bytes" in big.details()
    header.expected_bytes = 10
    short = upload(header, [archive(Gaussian())])
    assert short.code() == grpc.StatusCode.INVALID_ARGUMENT and "announced 10" in short.details()
    assert [t.id for t in c.session.targets()] == before


def test_off_by_default(client):
    with pytest.raises(sampled.SampledError) as e:
        client.upload_model("g", archive(Gaussian()), dim=2)
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "--allow-torchscript" in e.value.details
    families = {f.name: f for f in client.families()}
    assert families["torchscript"].uploaded
