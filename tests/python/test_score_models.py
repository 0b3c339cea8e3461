"""Score models (004: ndsm, ndsm-cv, dsm) through the real server: their defaults on a data target, the Sample
RPC's reverse SDE and probability-flow ODE with their steps, what they refuse, the sampler file, samplectl, and
a kill -9 mid-run that resumes to the same weights."""

import numpy as np
import pytest

import sampled
from conftest import CENTRES, cluster_shares as _shares, four_clusters as _clusters, samplectl, \
    train_killed_and_resumed


@pytest.mark.parametrize("method", ["ndsm", "ndsm-cv", "dsm"])
def test_defaults_learn_four_clusters(client, method):
    """No option but the method (3000 iterations, 004 trains 50000): the reverse SDE and the probability-flow
    ODE give every cluster its share of the draws, each near its centre and about as wide as the data's (0.3)."""
    target = client.upload_target("clusters", _clusters())
    job = client.train(target, method, steps=3000, seed=1)
    job.wait()
    assert job.state == "succeeded", job.status()
    sampler = job.sampler()
    info = sampler.info()
    assert info.kind == "score-model" and info.default_steps == 1000
    assert info.dynamics == ("vp" if method == "dsm" else "gm")
    assert '"noise_steps": 50' in info.provenance_json or method == "dsm"
    for dynamics in ("sde", "ode"):
        draws = sampler.sample(2048, seed=2, dynamics=dynamics)
        assert draws.shape == (2048, 2) and np.isfinite(draws).all()
        shares, nearest = _shares(draws)
        assert shares.min() > 0.15, (method, dynamics, shares)
        for k in range(4):
            mine = draws[nearest == k]
            assert np.linalg.norm(mine.mean(0) - CENTRES[k]) < 0.4, (method, dynamics, k, mine.mean(0))
            assert 0.2 < mine.std(0).mean() < 0.6, (method, dynamics, k, mine.std(0))


def test_sample_options_and_refusals(client):
    data = client.upload_target("d", _clusters(600))
    job = client.train(data, "ndsm", steps=50, hidden=[16, 16], gmm_components=4, sample_steps=40, seed=3)
    job.wait()
    sampler = job.sampler()
    assert sampler.info().default_steps == 40
    # The same (n, seed, steps, dynamics): the same draws; other steps or dynamics: others.
    a = sampler.sample(300, seed=5, steps=20)
    np.testing.assert_array_equal(a, sampler.sample(300, seed=5, steps=20))
    assert not np.array_equal(a, sampler.sample(300, seed=5, steps=21))
    ode = sampler.sample(300, seed=5, steps=20, dynamics="ode")
    np.testing.assert_array_equal(ode, sampler.sample(300, seed=5, steps=20, dynamics="ode"))
    assert not np.array_equal(a, ode)
    for bad in (0, -1):
        with pytest.raises(sampled.SampledError) as e:
            sampler.sample(10, seed=1, steps=bad)
        assert e.value.code.name == "INVALID_ARGUMENT" and "steps (a score model's reverse steps, a drift chain's drifts) must be" in \
            e.value.details
    with pytest.raises(sampled.SampledError) as e:
        sampler.sample(10, seed=1, steps=10 ** 9)
    assert e.value.code.name == "INVALID_ARGUMENT" and "--max-sample-steps" in e.value.details
    # A generator has no reverse dynamics.
    gen = client.train(data, "sd-generator", steps=5, hidden=[8], batch=64, seed=1)
    gen.wait()
    with pytest.raises(sampled.SampledError) as e:
        gen.sampler().sample(10, seed=1, dynamics="ode")
    assert e.value.code.name == "INVALID_ARGUMENT" and "score models" in e.value.details
    # What the score models do not take, and what they need.
    cases = [
        (dict(latent=3), "latent is not used by method 'ndsm'"),
        (dict(cv_eps=0.5), "cv_eps is not used by method 'ndsm'"),
        (dict(times=7), "times must be >= 1 and divide batch"),
        (dict(gmm_covariance="banded"), "unknown covariance"),
        (dict(eta=1.0), "eta is not used by method 'ndsm'"),
        (dict(dt=0.0), "dt must be a finite number > 0"),
        (dict(dt_last=-1e-3), "dt_last must be a finite number > 0"),
        (dict(sample_steps=0), "sample_steps must be between 1"),
        (dict(gmm_components=1000), "fitting the Gaussian-mixture prior"),
    ]
    for kw, says in cases:
        with pytest.raises(sampled.SampledError) as e:
            client.train(data, "ndsm", steps=5, **kw)
        assert e.value.code.name == "INVALID_ARGUMENT" and says in e.value.details, (kw, e.value.details)
    density = client.define_target("g", "gaussian", dim=2)
    with pytest.raises(sampled.SampledError) as e:
        client.train(density, "dsm", steps=5)
    assert e.value.code.name == "FAILED_PRECONDITION" and "trains from data" in e.value.details


@pytest.mark.parametrize("method", ["dsm", "ndsm"])
def test_the_sampler_file_round_trips_and_draws_with_numpy(client, tmp_path, method):
    data = client.upload_target("d", _clusters())
    job = client.train(data, method, steps=3000, seed=2)
    job.wait()
    sampler = job.sampler()
    path = tmp_path / "score.sampler"
    sampler.export(str(path))
    back = client.session.import_sampler(str(path))
    info = back.info()
    assert info.kind == "score-model" and info.method == method
    np.testing.assert_array_equal(back.sample(500, seed=9, steps=30), sampler.sample(500, seed=9, steps=30))
    # sampled.load_sampler reads it with numpy alone and runs the same reverse dynamics (its own random
    # numbers): the same clusters.
    local = sampled.load_sampler(str(path))
    assert local.score_model["dynamics"] == ("vp" if method == "dsm" else "gm")
    draws = local.sample(1024, seed=1, steps=200)
    shares, nearest = _shares(draws)
    assert shares.min() > 0.15, shares
    for k in range(4):
        assert np.linalg.norm(draws[nearest == k].mean(0) - CENTRES[k]) < 0.4, (k, draws[nearest == k].mean(0))


def test_samplectl_lists_trains_and_samples(server, tmp_path):
    ctl = samplectl(server)

    listing = ctl("train", "methods")
    for words in ("ndsm:", "ndsm-cv:", "dsm:", "--gmm-components", "--dt-last", "--cv-eps", "--sample-steps"):
        assert words in listing, words
    session = ctl("session", "create", "--name", "cli").strip()
    np.save(tmp_path / "d.npy", _clusters(500))
    target = ctl("target", "upload", "--session", session, "--name", "d", "--file", str(tmp_path / "d.npy")).strip()
    job = ctl("train", "start", "--session", session, "--target", target, "--method", "ndsm-cv", "--gmm-components",
              "4", "--cv-every", "5", "--hidden", "16,16", "--steps", "20").strip()
    c = server.client()
    j = c.job(job)
    j.wait()
    assert j.state == "succeeded", j.status()
    sampler_id = j.status().sampler_id
    assert "score model (gm, 1000 steps)" in ctl("sampler", "get", sampler_id)
    out = tmp_path / "draws.npy"
    ctl("sample", "--sampler", sampler_id, "-n", "100", "--steps", "10", "--dynamics", "ode", "--out", str(out))
    np.testing.assert_array_equal(np.load(out), c.sampler(sampler_id).sample(100, seed=0, steps=10, dynamics="ode"))


def test_kill_mid_run_resumes_to_the_same_weights(tmp_path):
    expected, resumed = train_killed_and_resumed(
        tmp_path, _clusters(800), "ndsm-cv", lambda m: m.sample(300, seed=1, steps=25), steps=1200, hidden=[32, 32],
        gmm_components=4, cv_every=5, seed=4)
    np.testing.assert_array_equal(resumed, expected)
