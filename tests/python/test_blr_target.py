"""The blr posterior through the real server, against a direct numpy computation; and the definitions it
refuses, with nothing stored changed."""

import grpc
import numpy as np
import pytest

import sampled


def _data(n=120, p=4, seed=0):
    rng = np.random.default_rng(seed)
    x = np.hstack([rng.normal(size=(n, p - 1)), np.ones((n, 1))])
    y = (rng.random(n) < 1 / (1 + np.exp(-x @ np.linspace(-1, 1, p)))).astype(float)
    return x, y


def _numpy_score(theta, x, y, a0=1.0, b0=0.01):
    """grad of log q(w, s) = sum_i [y_i t_i - log(1 + e^t_i)] - e^s (|w|^2/2 + b0) + s (p/2 + a0)."""
    p = x.shape[1]
    w, s = theta[:p], theta[p]
    t = x @ w
    gw = x.T @ (y - 1 / (1 + np.exp(-t))) - np.exp(s) * w
    gs = -np.exp(s) * (0.5 * w @ w + b0) + 0.5 * p + a0
    return np.append(gw, gs)


def test_score_matches_numpy(client):
    """One step of wgf with a single particle moves it by step_size * score exactly (its kernel density
    estimate has zero gradient at its only point), so the server's score is read off the move."""
    x, y = _data()
    data = client.upload_target("bc", np.hstack([x, y[:, None]]))
    post = client.define_target("post", "blr", data=data, params={"prior_rate": 0.05})
    assert post.dim == 5 and post.data_target_id == data.id and post.family == "blr"
    rng = np.random.default_rng(1)
    for k in range(4):
        theta = rng.normal(scale=0.5, size=5)
        job = client.start_flow(post, "wgf", init=theta[None, :], steps=0, step_size=1e-3, bandwidth="constant:1",
                                dtype=np.float64, seed=k)
        job.step(1)
        moved = job.particles()[0]
        expected = _numpy_score(theta, x, y, b0=0.05)
        np.testing.assert_allclose((moved - theta) / 1e-3, expected, rtol=1e-8, atol=1e-8)


def test_bad_definitions_are_refused_and_change_nothing(client):
    x, y = _data()
    data = client.upload_target("bc", np.hstack([x, y[:, None]]))
    before = [t.id for t in client.session.targets()]
    cases = [
        (dict(data="t-missing"), grpc.StatusCode.NOT_FOUND, "data_target_id"),
        (dict(), grpc.StatusCode.INVALID_ARGUMENT, "give data_target_id"),
        (dict(data=data, dim=3), grpc.StatusCode.INVALID_ARGUMENT, "has dimension 5, not 3"),
        (dict(data=data, params={"batch": -1}), grpc.StatusCode.INVALID_ARGUMENT, "batch"),
    ]
    bad = y.copy()
    bad[7] = 2.0
    bad_labels = client.upload_target("bad-labels", np.hstack([x, bad[:, None]]))
    cases.append((dict(data=bad_labels), grpc.StatusCode.INVALID_ARGUMENT, "row 7 holds 2"))
    gauss = client.define_target("g", "gaussian")
    cases.append((dict(data=gauss), grpc.StatusCode.INVALID_ARGUMENT, "must hold samples"))
    before = [t.id for t in client.session.targets()]
    for kw, code, words in cases:
        with pytest.raises(sampled.SampledError) as e:
            client.define_target("post", "blr", **kw)
        assert e.value.code == code, (kw, e.value)
        assert words in e.value.details, (kw, e.value.details)
    assert [t.id for t in client.session.targets()] == before
    with pytest.raises(sampled.SampledError) as e:
        client.define_target("g2", "gaussian", data=data)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "takes no data target" in e.value.details
    families = {f.name: f for f in client.families()}
    assert families["blr"].needs_data and not families["gaussian"].needs_data


def test_posterior_keeps_its_own_data(client):
    """Deleting the data target leaves a posterior defined over it unchanged."""
    x, y = _data()
    data = client.upload_target("bc", np.hstack([x, y[:, None]]))
    post = client.define_target("post", "blr", data=data)
    theta = np.array([[0.3, -0.2, 0.1, 0.05, -0.4]])
    def moved():
        job = client.start_flow(post, "wgf", init=theta, steps=0, step_size=1e-3, bandwidth="constant:1",
                                dtype=np.float64, seed=1)
        job.step(1)
        return job.particles()
    before = moved()
    client.session.delete_target(data)
    assert data.id not in [t.id for t in client.session.targets()]
    np.testing.assert_array_equal(moved(), before)


def test_every_density_method_runs_on_it(client):
    """MALA, HMC, SVGD and Langevin run on a minibatched blr posterior and move toward its mode."""
    x, y = _data(n=300)
    data = client.upload_target("bc", np.hstack([x, y[:, None]]))
    post = client.define_target("post", "blr", data=data, params={"batch": 100})
    for method, kw in (("mala", dict(step_size=1e-3)), ("hmc", dict(step_size=0.02, leapfrog=5)),
                       ("svgd", dict(step_size=0.05, optimizer="adagrad")), ("langevin", dict(step_size=1e-3))):
        job = client.start_flow(post, method, particles=40, steps=60, init_std=0.1, seed=2, **kw)
        job.wait()
        assert job.state == "succeeded", method
        w = job.particles()[:, :4].mean(0)
        assert np.all(np.isfinite(w)), method
        assert np.corrcoef(w, np.linspace(-1, 1, 4))[0, 1] > 0.5, (method, w)  # toward the generating weights
