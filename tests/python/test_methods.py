"""Every flow method through the Python client, and each method's bad parameters refused with
INVALID_ARGUMENT or FAILED_PRECONDITION and a message naming the parameter."""

import grpc
import numpy as np
import pytest

import sampled

DATA_METHODS = ["sd", "mmd", "mmd-gaussian", "wgf", "king", "ntking"]
DENSITY_METHODS = ["svgd", "langevin", "mala", "hmc", "wgf", "stein-king"]


@pytest.fixture
def targets(client):
    data = client.upload_target("data", np.random.default_rng(0).normal(size=(120, 3)) + 1.0)
    density = client.define_target("density", "gaussian", dim=3)
    return data, density


def refused(call):
    with pytest.raises(sampled.SampledError) as e:
        call()
    return e.value.code, e.value.details


@pytest.mark.parametrize("method", DATA_METHODS)
def test_data_methods_run_and_report_statistics(client, targets, method):
    data, _ = targets
    job = client.start_flow(data, method, particles=60, steps=0, seed=1)
    stats = job.step(3)
    assert [s.step for s in stats] == [1, 2, 3]
    assert all(s.HasField("step_size") and s.max_displacement >= s.mean_displacement >= 0 for s in stats)
    x = job.particles()
    assert x.shape == (60, 3) and np.isfinite(x).all()


@pytest.mark.parametrize("method", DENSITY_METHODS)
def test_density_methods_run_and_report_statistics(client, targets, method):
    _, density = targets
    job = client.start_flow(density, method, particles=60, steps=5, eval_every=5, seed=2)
    final = job.wait()
    assert final.step == 5 and "ksd" in final.metrics
    if method in ("mala", "hmc"):
        assert 0.0 <= final.last_stats.acceptance_rate <= 1.0
    else:
        assert not final.last_stats.HasField("acceptance_rate")


@pytest.mark.parametrize("method,kwargs,code,needle", [
    ("sd", dict(bandwidth="-1"), grpc.StatusCode.INVALID_ARGUMENT, "bandwidth"),
    ("mmd-gaussian", dict(bandwidth="-0.5"), grpc.StatusCode.INVALID_ARGUMENT, "bandwidth"),
    ("wgf", dict(bandwidth="-1"), grpc.StatusCode.INVALID_ARGUMENT, "bandwidth"),
    ("king", dict(bandwidth="-1"), grpc.StatusCode.INVALID_ARGUMENT, "bandwidth"),
    ("king", dict(basis=500), grpc.StatusCode.INVALID_ARGUMENT, "option 'basis' (500) exceeds the 180 points"),
    ("ntking", dict(basis=181), grpc.StatusCode.INVALID_ARGUMENT, "option 'basis'"),
    ("king", dict(stats="rbf+pairs", pairs="0-3"), grpc.StatusCode.INVALID_ARGUMENT, "pairs"),
    ("king", dict(stats="rbf+pairs", pairs="1-1"), grpc.StatusCode.INVALID_ARGUMENT, "pairs"),
    ("king", dict(stats="gaussian", basis=10), grpc.StatusCode.INVALID_ARGUMENT, "option 'basis'"),
    ("king", dict(stats="cubic"), grpc.StatusCode.INVALID_ARGUMENT, "option 'stats'"),
    ("ntking", dict(hidden="0"), grpc.StatusCode.INVALID_ARGUMENT, "option 'hidden'"),
    ("sd", dict(first_step_norm=0.5, step_size=0.1), grpc.StatusCode.INVALID_ARGUMENT, "first_step_norm"),
    ("mmd", dict(noise="constant:1"), grpc.StatusCode.INVALID_ARGUMENT, "'noise'"),
    ("sd", dict(leapfrog=3), grpc.StatusCode.INVALID_ARGUMENT, "'leapfrog'"),
    ("svgd", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs the target's score"),
    ("mala", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs the target's score"),
    ("hmc", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs the target's score"),
    ("stein-king", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs the target's score"),
])
def test_bad_parameters_on_the_data_target(client, targets, method, kwargs, code, needle):
    data, _ = targets
    got, details = refused(lambda: client.start_flow(data, method, particles=60, steps=1, **kwargs))
    assert got == code, details
    assert needle in details


@pytest.mark.parametrize("method,kwargs,code,needle", [
    ("hmc", dict(leapfrog=0), grpc.StatusCode.INVALID_ARGUMENT, "option 'leapfrog'"),
    ("hmc", dict(mass=-1), grpc.StatusCode.INVALID_ARGUMENT, "option 'mass'"),
    ("hmc", dict(bandwidth="1"), grpc.StatusCode.INVALID_ARGUMENT, "'bandwidth'"),
    ("svgd", dict(bandwidth="-1"), grpc.StatusCode.INVALID_ARGUMENT, "bandwidth"),
    ("stein-king", dict(basis=61), grpc.StatusCode.INVALID_ARGUMENT, "option 'basis' (61) exceeds the 60 points"),
    ("stein-king", dict(stats="rbf"), grpc.StatusCode.INVALID_ARGUMENT, "no option 'stats'"),
    ("langevin", dict(step_size=0), grpc.StatusCode.INVALID_ARGUMENT, "step_size"),
    ("sd", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs a sample target"),
    ("king", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs a sample target"),
    ("ntking", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs a sample target"),
    ("mmd", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs a sample target"),
])
def test_bad_parameters_on_the_density_target(client, targets, method, kwargs, code, needle):
    _, density = targets
    got, details = refused(lambda: client.start_flow(density, method, particles=60, steps=1, **kwargs))
    assert got == code, details
    assert needle in details
