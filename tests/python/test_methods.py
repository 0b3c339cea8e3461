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


def test_median_pairs_zero_is_the_exact_rule_and_the_default_a_subset(client, targets):
    # 120 targets and 60 particles: 1,770 pairs, fewer than the default subset of 16,384, so both rules give
    # the exact median and the same step; with more particles than that the subset rule differs slightly.
    data, _ = targets
    a = client.start_flow(data, "sd", particles=60, steps=0, seed=4).step(1)[0]
    b = client.start_flow(data, "sd", particles=60, steps=0, seed=4, median_pairs=0).step(1)[0]
    assert abs(a.bandwidth / b.bandwidth - 1) < 1e-6  # the exact rule computes in the float32 default
    c = client.start_flow(data, "sd", particles=400, steps=0, seed=4).step(1)[0]
    d = client.start_flow(data, "sd", particles=400, steps=0, seed=4, median_pairs=0).step(1)[0]
    assert c.bandwidth != d.bandwidth and abs(c.bandwidth / d.bandwidth - 1) < 0.03


def test_methods_list_their_parameters_with_defaults(client):
    sd = next(m for m in client.methods() if m.name == "sd")
    docs = {d.name: d.doc for d in sd.field_docs}
    assert set(docs) == set(sd.fields)
    assert "float32 (default" in docs["dtype"] and "16384 (default)" in docs["median_pairs"]


@pytest.mark.parametrize("kind,method,kwargs,code,needle", [
    ("data", "sd", dict(bandwidth="-1"), grpc.StatusCode.INVALID_ARGUMENT, "bandwidth"),
    ("data", "mmd-gaussian", dict(bandwidth="-0.5"), grpc.StatusCode.INVALID_ARGUMENT, "bandwidth"),
    ("data", "wgf", dict(bandwidth="-1"), grpc.StatusCode.INVALID_ARGUMENT, "bandwidth"),
    ("data", "king", dict(bandwidth="-1"), grpc.StatusCode.INVALID_ARGUMENT, "bandwidth"),
    ("data", "king", dict(basis=500), grpc.StatusCode.INVALID_ARGUMENT, "option 'basis' (500) exceeds the 180 points"),
    ("data", "ntking", dict(basis=181), grpc.StatusCode.INVALID_ARGUMENT, "option 'basis'"),
    ("data", "king", dict(stats="rbf+pairs", pairs="0-3"), grpc.StatusCode.INVALID_ARGUMENT, "pairs"),
    ("data", "king", dict(stats="rbf+pairs", pairs="1-1"), grpc.StatusCode.INVALID_ARGUMENT, "pairs"),
    ("data", "king", dict(stats="gaussian", basis=10), grpc.StatusCode.INVALID_ARGUMENT, "option 'basis'"),
    ("data", "king", dict(stats="cubic"), grpc.StatusCode.INVALID_ARGUMENT, "option 'stats'"),
    ("data", "ntking", dict(hidden="0"), grpc.StatusCode.INVALID_ARGUMENT, "option 'hidden'"),
    ("data", "sd", dict(first_step_norm=0.5, step_size=0.1), grpc.StatusCode.INVALID_ARGUMENT, "first_step_norm"),
    ("data", "mmd", dict(noise="constant:1"), grpc.StatusCode.INVALID_ARGUMENT, "'noise'"),
    ("data", "sd", dict(leapfrog=3), grpc.StatusCode.INVALID_ARGUMENT, "'leapfrog'"),
    ("data", "sd", dict(median_pairs=-1), grpc.StatusCode.INVALID_ARGUMENT, "median_pairs must be in [0,"),
    ("data", "mmd", dict(median_pairs=100), grpc.StatusCode.INVALID_ARGUMENT, "does not use 'median_pairs'"),
    ("data", "svgd", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs the target's score"),
    ("data", "mala", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs the target's score"),
    ("data", "hmc", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs the target's score"),
    ("data", "stein-king", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs the target's score"),
    ("density", "hmc", dict(leapfrog=0), grpc.StatusCode.INVALID_ARGUMENT, "option 'leapfrog'"),
    ("density", "hmc", dict(mass=-1), grpc.StatusCode.INVALID_ARGUMENT, "option 'mass'"),
    ("density", "hmc", dict(bandwidth="1"), grpc.StatusCode.INVALID_ARGUMENT, "'bandwidth'"),
    ("density", "svgd", dict(bandwidth="-1"), grpc.StatusCode.INVALID_ARGUMENT, "bandwidth"),
    ("density", "stein-king", dict(basis=61), grpc.StatusCode.INVALID_ARGUMENT, "option 'basis' (61) exceeds the 60 points"),
    ("density", "stein-king", dict(stats="rbf"), grpc.StatusCode.INVALID_ARGUMENT, "no option 'stats'"),
    ("density", "langevin", dict(step_size=0), grpc.StatusCode.INVALID_ARGUMENT, "step_size"),
    ("density", "sd", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs a sample target"),
    ("density", "king", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs a sample target"),
    ("density", "ntking", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs a sample target"),
    ("density", "mmd", {}, grpc.StatusCode.FAILED_PRECONDITION, "needs a sample target"),
])
def test_bad_parameters_are_refused_naming_them(client, targets, kind, method, kwargs, code, needle):
    data, density = targets
    target = data if kind == "data" else density
    got, details = refused(lambda: client.start_flow(target, method, particles=60, steps=1, **kwargs))
    assert got == code, details
    assert needle in details
