"""The "gmm" family through the real server: a Gaussian mixture fitted by EM to a data target (004's prior), held
against Debian's python3-sklearn GaussianMixture on the same data by held-out log likelihood, and its refusals."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import sampled
from conftest import RunningServer, server_binary

mixture = pytest.importorskip("sklearn.mixture")


def _data(n, seed):
    """Three unequal, anisotropic 2-D components (weights 0.6, 0.3, 0.1)."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [5.0, 3.0], [-4.0, 4.0]])
    chols = [np.array([[1.5, 0.0], [0.9, 0.4]]), np.array([[0.5, 0.0], [-0.3, 1.2]]), np.array([[0.3, 0.0], [0.0, 0.3]])]
    k = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    return means[k] + np.einsum("nij,nj->ni", np.array(chols)[k], rng.normal(size=(n, 2)))


def _mean_loglik(target, x):
    """The held-out mean log density of the mixture the server stored (its weights, means and covariances)."""
    w = np.array(target.params["weights"].values)
    d = x.shape[1]
    mu = np.array(target.params["means"].values).reshape(len(w), d)
    cov = np.array(target.params["cov"].values).reshape(len(w), d, d)
    logs = []
    for k in range(len(w)):
        diff = x - mu[k]
        sol = np.linalg.solve(cov[k], diff.T).T
        logs.append(np.log(w[k]) - 0.5 * (diff * sol).sum(1) - 0.5 * np.linalg.slogdet(2 * np.pi * cov[k])[1])
    logs = np.array(logs).T
    m = logs.max(1)
    return float(np.mean(m + np.log(np.exp(logs - m[:, None]).sum(1))))


@pytest.mark.parametrize("cov_type,params", [("full", {}), ("diag", {"diagonal": 1}), ("spherical", {"spherical": 1})])
def test_fit_matches_sklearn_on_held_out_data(client, cov_type, params):
    train, held = _data(3000, 0), _data(2000, 1)
    data = client.upload_target("d", train)
    fitted = client.define_target(f"gmm-{cov_type}", "gmm", data=data, params=dict(components=3, seed=2, **params))
    assert fitted.family == "mixture" and len(fitted.params["weights"].values) == 3
    ours = _mean_loglik(fitted, held)
    ref = mixture.GaussianMixture(3, covariance_type=cov_type, random_state=0).fit(train)
    theirs = float(ref.score(held))
    print(f"\ngmm {cov_type}: held-out mean log likelihood ours {ours:.4f}, sklearn {theirs:.4f}")
    assert ours > theirs - 0.01


def test_bic_chooses_the_number_of_components(client):
    data = client.upload_target("d", _data(3000, 0))
    fitted = client.define_target("gmm-bic", "gmm", data=data, params=dict(max_components=6, seed=1))
    chosen = len(fitted.params["weights"].values)
    ref = [mixture.GaussianMixture(k, random_state=0).fit(_data(3000, 0)).bic(_data(3000, 0)) for k in range(1, 7)]
    assert chosen == 1 + int(np.argmin(ref)) == 3


def test_refusals_and_regularisation(client):
    few = client.upload_target("few", _data(5, 0))
    with pytest.raises(sampled.SampledError) as e:
        client.define_target("g", "gmm", data=few, params=dict(components=8))
    assert e.value.code.name == "INVALID_ARGUMENT" and "components" in e.value.details
    with pytest.raises(sampled.SampledError) as e:
        client.define_target("g", "gmm", data=few, params=dict(reg_covar=0))
    assert e.value.code.name == "INVALID_ARGUMENT" and "reg_covar" in e.value.details
    with pytest.raises(sampled.SampledError) as e:
        client.define_target("g", "gmm", data=few, params=dict(diagonal=1, spherical=1))
    assert e.value.code.name == "INVALID_ARGUMENT" and "diagonal" in e.value.details
    with pytest.raises(sampled.SampledError) as e:
        client.define_target("g", "gmm", dim=2)
    assert e.value.code.name == "INVALID_ARGUMENT" and "data" in e.value.details
    # Identical points: the covariance is regularised (reg_covar on the diagonal), not refused.
    same = client.upload_target("same", np.ones((50, 2)))
    fitted = client.define_target("g", "gmm", data=same, params=dict(components=1))
    cov = np.array(fitted.params["cov"].values).reshape(2, 2)
    np.testing.assert_allclose(cov, 1e-6 * np.eye(2), rtol=1e-6, atol=1e-12)


def test_a_restart_keeps_the_fitted_mixture(tmp_path):
    """Stored as the mixture it found: the restart neither refits it nor needs the data (deleted here)."""
    state = str(tmp_path / "state")
    s = RunningServer("--state-dir", state)
    try:
        c = s.client()
        c.create_session("g")
        data = c.upload_target("d", _data(2000, 3))
        fitted = c.define_target("gmm", "gmm", data=data, params=dict(components=3, seed=5))
        c.session.delete_target(data)
        sid = c.session.id
        assert s.terminate() == 0
    finally:
        s.stop()
    s = RunningServer("--state-dir", state)
    try:
        c = s.client()
        session = c.use_session(sid)
        [back] = session.targets()
        assert back.family == "mixture"
        for key in ("weights", "means", "cov"):
            assert list(back.params[key].values) == list(fitted.params[key].values)
    finally:
        s.stop()


def test_the_fit_is_charged_to_the_memory_budget():
    """EM works in n x K responsibilities and log densities: a fit that would pass --max-memory is refused before it
    runs, naming the fit; a small one on the same server fits."""
    s = RunningServer("--max-memory", str(64 << 20))
    try:
        c = s.client().create_session("m")
        data = c.upload_target("d", _data(200_000, 0))  # 200000 x 2: 3.2 MB
        with pytest.raises(sampled.SampledError) as e:
            c.define_target("g", "gmm", data=data, params=dict(components=100, max_iter=1))
        assert e.value.code.name == "RESOURCE_EXHAUSTED" and "fitting the target 'g'" in e.value.details, e.value
        fitted = c.define_target("g", "gmm", data=data, params=dict(components=2, max_points=5000))
        assert fitted.dim == 2
    finally:
        s.stop()


def test_samplectl_fit_gmm(tmp_path):
    """`samplectl target fit-gmm` stores the mixture EM finds on a data target (K by BIC, or given), the same one the
    gmm family gives for the same parameters; bad flags are usage errors naming them."""
    s = RunningServer()
    try:
        samplectl = Path(server_binary()).resolve().parents[1] / "client" / "samplectl"
        env = dict(os.environ, SAMPLED_SERVER=s.address)

        def ctl(*args, rc=0):
            r = subprocess.run([str(samplectl), *args], env=env, capture_output=True, text=True, timeout=300)
            assert r.returncode == rc, r.stderr
            return r.stdout + r.stderr

        session = ctl("session", "create", "--name", "cli").strip()
        np.save(tmp_path / "d.npy", _data(3000, 0))
        data = ctl("target", "upload", "--session", session, "--name", "d", "--file", str(tmp_path / "d.npy")).strip()
        out = ctl("target", "fit-gmm", "--session", session, "--name", "bic", "--data", data, "--seed", "1")
        assert out.split()[1:] == ["3", "components", "in", "2-D"], out
        out = ctl("target", "fit-gmm", "--session", session, "--name", "two", "--data", data, "--components", "2",
                  "--covariance", "diagonal", "--max-points", "2000")
        sess = s.client().use_session(session)
        fitted = next(t for t in sess.targets() if t.id == out.split()[0])
        same = sess.define_target(
            "same", "gmm", data=data, params=dict(components=2, diagonal=1, max_points=2000))
        np.testing.assert_allclose(fitted.params["means"].values, same.params["means"].values, rtol=0, atol=0)
        cov = np.array(fitted.params["cov"].values).reshape(2, 2, 2)
        assert np.all(cov[:, 0, 1] == 0)  # diagonal
        assert "--covariance" in ctl("target", "fit-gmm", "--session", session, "--name", "x", "--data", data,
                                     "--covariance", "tied", rc=2)
        assert "--data is required" in ctl("target", "fit-gmm", "--session", session, "--name", "x", rc=2)
    finally:
        s.stop()
