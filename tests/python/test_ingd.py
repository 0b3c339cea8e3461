"""ingd (000 Alg. 1 with the drift model) through the real server: its defaults on a data target, the sampler it
leaves (a chain of drifts: the Sample RPC's `steps` draws the generator at an earlier time), what it refuses, the
sampler file read with numpy, continuing a chain, samplectl, and a kill -9 mid-run that resumes to the same
drifts."""

import numpy as np
import pytest

import sampled
from conftest import CENTRES, cluster_shares as _shares, four_clusters as _clusters, samplectl, \
    train_killed_and_resumed


def test_defaults_learn_four_clusters(client):
    """No option but the method and 100 iterations (t = 10 at the default epsilon 0.1): RBF statistics give every
    cluster its share of the draws, each near its centre."""
    target = client.upload_target("clusters", _clusters())
    job = client.train(target, "ingd", steps=100, seed=1)
    job.wait()
    assert job.state == "succeeded", job.status()
    sampler = job.sampler()
    info = sampler.info()
    assert info.kind == "drift-chain" and info.default_steps == 100 and info.epsilon == pytest.approx(0.1)
    assert '"epsilon": 0.1' in info.provenance_json
    draws = sampler.sample(4096, seed=2)
    assert draws.shape == (4096, 2) and np.isfinite(draws).all()
    shares, nearest = _shares(draws)
    assert shares.min() > 0.15, shares
    for k in range(4):
        mine = draws[nearest == k]
        assert np.linalg.norm(mine.mean(0) - CENTRES[k]) < 0.4, (k, mine.mean(0))
    # The natural gradient's squared norm (score_loss) falls as the statistics reach the data's (10.9 to 0.015
    # measured); Eq. 7's residual after each fit (sampler_loss) is a fifth of it at the first drift (from h = 0),
    # under 0.2 for the next two, and from the tenth at the level of the Monte Carlo noise (about 0.003).
    history = job.history()
    natural, residual = history["score_loss"], history["sampler_loss"]
    assert natural[-1] < 0.01 * natural[0], (natural[0], natural[-1])
    assert residual.max() < 0.5 * natural[0] and residual[10:].max() < 0.01 * natural[0], residual
    # steps k: the generator at time k epsilon; the first drifts move N(0, I) only part of the way.
    early = sampler.sample(4096, seed=2, steps=3)
    assert np.abs(early).mean() < np.abs(draws).mean() - 0.3
    np.testing.assert_array_equal(sampler.sample(500, seed=2, steps=100), draws[:500])


def test_refusals(client):
    data = client.upload_target("d", _clusters(600))
    job = client.train(data, "ingd", steps=5, batch=200, inner_steps=5, seed=3)
    job.wait()
    sampler = job.sampler()
    for kw, says in ((dict(steps=6), "past the 5 drifts"), (dict(dynamics="ode"), "ode applies to score models"),
                     (dict(steps=0), "must be between 1")):
        with pytest.raises(sampled.SampledError) as e:
            sampler.sample(10, seed=1, **kw)
        assert e.value.code.name == "INVALID_ARGUMENT" and says in e.value.details, (kw, e.value.details)
    cases = [
        (dict(epsilon=0.0), "epsilon must be a finite number > 0"),
        (dict(inner_steps=0), "inner_steps must be between 1"),
        (dict(stats="cubic"), "stats"),
        (dict(stats="gaussian", basis=10), "does not apply to stats=gaussian"),
        (dict(basis=5000), "exceeds the 1600 points"),
        (dict(stats="rbf+pairs"), "pairs"),
        (dict(pairs="0-1"), "applies only to stats=rbf+pairs"),
        (dict(stats="rbf+pairs", pairs="0-1,1-0"), "is given twice"),
        (dict(latent=3), "latent is not used by method 'ingd'"),
        (dict(gmm_components=3), "gmm_components is not used by method 'ingd'"),
        (dict(ridge=-1.0), "ridge must be"),
    ]
    for kw, says in cases:
        with pytest.raises(sampled.SampledError) as e:
            client.train(data, "ingd", steps=5, **kw)
        assert e.value.code.name == "INVALID_ARGUMENT" and says in e.value.details, (kw, e.value.details)
    with pytest.raises(sampled.SampledError) as e:
        client.train(data, "sd-generator", steps=5, epsilon=0.1)
    assert e.value.code.name == "INVALID_ARGUMENT" and "epsilon is not used by method 'sd-generator'" in \
        e.value.details
    density = client.define_target("g", "gaussian", dim=2)
    with pytest.raises(sampled.SampledError) as e:
        client.train(density, "ingd", steps=5)
    assert e.value.code.name == "FAILED_PRECONDITION" and "trains from data" in e.value.details
    # A chain continues only as a chain.
    gen = client.train(data, "sd-generator", steps=2, hidden=[67], batch=64, seed=1)
    gen.wait()
    with pytest.raises(sampled.SampledError) as e:
        client.train(data, "ingd", steps=2, from_sampler=gen.sampler())
    assert e.value.code.name == "INVALID_ARGUMENT" and "not a drift chain" in e.value.details
    assert len(client.session.samplers()) == 2  # nothing stored by the refusals


def test_file_numpy_draws_and_continuing_a_chain(client, tmp_path):
    data = client.upload_target("d", _clusters(1000))
    job = client.train(data, "ingd", steps=40, batch=500, seed=4)
    job.wait()
    sampler = job.sampler()
    path = tmp_path / "chain.sampler"
    sampler.export(str(path))
    back = client.session.import_sampler(str(path))
    assert back.info().kind == "drift-chain" and back.info().default_steps == 40
    np.testing.assert_array_equal(back.sample(700, seed=9, steps=30), sampler.sample(700, seed=9, steps=30))
    # numpy alone runs the same chain (its own random numbers): the same clusters.
    local = sampled.load_sampler(str(path))
    assert local.epsilon == pytest.approx(0.1) and local.drifts == 40
    mine, theirs = local.sample(4096, seed=1), sampler.sample(4096, seed=1)
    np.testing.assert_allclose(_shares(mine)[0], _shares(theirs)[0], atol=0.04)
    # Continuing appends drifts to the chain.
    more = client.train(data, "ingd", steps=10, batch=500, seed=5, from_sampler=sampler)
    more.wait()
    assert more.state == "succeeded", more.status()
    assert more.sampler().info().default_steps == 50
    np.testing.assert_array_equal(more.sampler().sample(300, seed=3, steps=40), sampler.sample(300, seed=3))


def test_samplectl_lists_trains_and_samples(server, tmp_path):
    ctl = samplectl(server)
    listing = ctl("train", "methods")
    for words in ("ingd:", "--stats", "--epsilon", "--inner-steps", "--feature-bandwidth", "--ridge"):
        assert words in listing, words
    session = ctl("session", "create", "--name", "cli").strip()
    np.save(tmp_path / "d.npy", _clusters(500))
    target = ctl("target", "upload", "--session", session, "--name", "d", "--file", str(tmp_path / "d.npy")).strip()
    job = ctl("train", "start", "--session", session, "--target", target, "--method", "ingd", "--stats", "gaussian",
              "--epsilon", "0.2", "--inner-steps", "20", "--batch", "300", "--steps", "8").strip()
    c = server.client()
    j = c.job(job)
    j.wait()
    assert j.state == "succeeded", j.status()
    sampler_id = j.status().sampler_id
    assert "drift chain (8 drifts, epsilon 0.2)" in ctl("sampler", "get", sampler_id)
    out = tmp_path / "draws.npy"
    ctl("sample", "--sampler", sampler_id, "-n", "100", "--steps", "4", "--out", str(out))
    np.testing.assert_array_equal(np.load(out), c.sampler(sampler_id).sample(100, seed=0, steps=4))


def test_kill_mid_run_resumes_to_the_same_drifts(tmp_path):
    expected, resumed = train_killed_and_resumed(
        tmp_path, _clusters(800), "ingd", lambda m: m.sample(300, seed=1), kill_after=60, steps=150, batch=400,
        inner_steps=30, seed=4)
    np.testing.assert_array_equal(resumed, expected)
