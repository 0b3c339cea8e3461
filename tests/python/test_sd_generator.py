"""sd-generator (002 Alg. 2) through the real server: its defaults on a data target, what it refuses, samplectl's
listing and start, and a restart that resumes it where it stopped."""

import numpy as np
import pytest

import sampled
from conftest import samplectl, train_killed_and_resumed


def _two_clusters(n=600, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[-3.0, 0.0], [3.0, 0.0]])
    return centres[rng.integers(0, 2, n)] + 0.5 * rng.normal(size=(n, 2))


def test_defaults_learn_two_clusters(client):
    """No option but the method: both clusters are populated, each near its centre."""
    target = client.upload_target("clusters", _two_clusters())
    job = client.train(target, "sd-generator", steps=400, eval_every=200, seed=1)
    job.wait()
    assert job.state == "succeeded", job.status()
    draws = job.sampler().sample(4000, seed=2)
    left = draws[draws[:, 0] < 0]
    right = draws[draws[:, 0] >= 0]
    assert 0.3 < len(left) / len(draws) < 0.7
    assert np.linalg.norm(left.mean(0) - [-3, 0]) < 0.75 and np.linalg.norm(right.mean(0) - [3, 0]) < 0.75
    history = job.history()
    assert "cfd" in history and len(history["cfd"]) >= 2


def test_refusals_name_the_parameter(client):
    data = client.upload_target("d", _two_clusters(100))
    density = client.define_target("g", "gaussian", dim=2)
    cases = [
        (density, dict(), "FAILED_PRECONDITION", "trains from data"),
        (data, dict(score_steps=3), "INVALID_ARGUMENT", "score_steps is not used by method 'sd-generator'"),
        (data, dict(generator="linear", hidden=[8]), "INVALID_ARGUMENT", "no hidden layers"),
        (data, dict(noise="nearest-mean:-1"), "INVALID_ARGUMENT", "nearest-mean:F needs a factor F > 0"),
        (data, dict(optimizer="rmsprop"), "INVALID_ARGUMENT", "unknown optimizer"),
        (data, dict(eta=-1.0), "INVALID_ARGUMENT", "eta must be"),
    ]
    for target, kw, code, says in cases:
        with pytest.raises(sampled.SampledError) as e:
            client.train(target, "sd-generator", steps=5, **kw)
        assert e.value.code.name == code and says in e.value.details, (kw, e.value.details)
    with pytest.raises(sampled.SampledError) as e:
        client.train(density, "kl", steps=5, eta=1.0)
    assert e.value.code.name == "INVALID_ARGUMENT" and "eta is not used by method 'kl'" in e.value.details
    assert client.session.samplers() == []  # nothing was left behind


def test_samplectl_lists_and_starts_it(server, tmp_path):
    ctl = samplectl(server)

    listing = ctl("train", "methods")
    assert "sd-generator:" in listing and "--noise" in listing and "nearest-mean" in listing
    session = ctl("session", "create", "--name", "cli").strip()
    np.save(tmp_path / "d.npy", _two_clusters(300))
    target = ctl("target", "upload", "--session", session, "--name", "d", "--file", str(tmp_path / "d.npy")).strip()
    job = ctl("train", "start", "--session", session, "--target", target, "--method", "sd-generator", "--generator",
              "linear", "--noise", "nearest-mean:10", "--init-std", "0.1", "--steps", "50", "--batch", "256").strip()
    c = server.client()
    j = c.job(job)
    j.wait()
    assert j.state == "succeeded", j.status()
    info = c.sampler(j.status().sampler_id).info()
    assert info.method == "sd-generator" and list(info.hidden) == [] and '"generator": "linear"' in info.provenance_json


def test_restart_resumes_it_exactly(tmp_path):
    expected, resumed = train_killed_and_resumed(
        tmp_path, _two_clusters(400), "sd-generator", lambda m: m.sample(512, seed=1), steps=3000, hidden=[32, 32],
        batch=256, noise="nearest-mean:10", seed=4)
    np.testing.assert_array_equal(resumed, expected)
