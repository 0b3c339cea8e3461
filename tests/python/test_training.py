"""Training, samplers and Sample through the real server from Python; sampler files read with numpy alone."""

import numpy as np
import pytest
import torch

import sampled
import sampled.plot


def _train(client, steps=40, **kw):
    target = client.define_target("mog2", "mixture", dim=2)
    job = client.train(target, "kl", steps=steps, batch=256, hidden=[32, 32], lr=1e-3, score_steps=2, seed=3, **kw)
    return target, job


def test_train_sample_export_import_and_history(client, tmp_path):
    _, job = _train(client, eval_every=20)
    final = job.wait()
    assert final.kind == "training" and final.step == 40 and final.sampler_id
    sampler = job.sampler()
    assert sampler.last.method == "kl" and list(sampler.last.hidden) == [32, 32]
    a = sampler.sample(2000, seed=7)
    b = sampler.sample(2000, seed=7, dtype=np.float32)
    assert a.shape == (2000, 2) and b.dtype == np.float32
    np.testing.assert_array_equal(a, b.astype(np.float64))
    assert not np.array_equal(a, sampler.sample(2000, seed=8))
    assert [s.id for s in client.session.samplers()] == [sampler.id]

    # Evaluate by sampler id: n fresh seeded draws, the same metrics as for an array of them.
    target = client.session.targets()[0]
    by_id = client.evaluate(target, sampler=sampler, n=500, seed=3, metrics=["ksd"])
    assert by_id["ksd"] == pytest.approx(client.evaluate(target, samples=sampler.sample(500, seed=3),
                                                         metrics=["ksd"])["ksd"], rel=1e-9)

    history = job.history()
    assert history["step"].tolist() == list(range(1, 41))
    assert np.isfinite(history["ksd"][19]) and np.isnan(history["ksd"][20])

    path = str(tmp_path / "mog2.sampler")
    assert sampler.export(path) > 0
    other = client.create_session("other")
    imported = other.import_sampler(path)
    np.testing.assert_array_equal(imported.sample(2000, seed=7), a)

    # numpy alone: the file's network is the server's (checked against torch on the same latents).
    local = sampled.load_sampler(path)
    assert (local.latent, local.dim, local.hidden, local.activation) == (2, 2, [32, 32], "elu")
    assert local.provenance["target"]["family"] == "mixture"
    z = np.random.default_rng(0).standard_normal((500, 2)).astype(np.float32)
    net, off = [], 0
    widths = [2, 32, 32, 2]
    for i in range(3):
        lin = torch.nn.Linear(widths[i], widths[i + 1])
        n_w = widths[i + 1] * widths[i]
        lin.weight.data = torch.from_numpy(local.final_weights[off:off + n_w].reshape(widths[i + 1], widths[i]).copy())
        off += n_w
        lin.bias.data = torch.from_numpy(local.final_weights[off:off + widths[i + 1]].copy())
        off += widths[i + 1]
        net += [lin, torch.nn.ELU()] if i < 2 else [lin]
    with torch.no_grad():
        expected = torch.nn.Sequential(*net)(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(local.forward(z), expected, rtol=1e-5, atol=1e-6)
    # Its draws have the server's distribution (same network): means within 0.15.
    np.testing.assert_allclose(local.sample(20000, seed=1).mean(0), sampler.sample(20000, seed=1).mean(0), atol=0.15)


def test_bad_training_and_sample_requests(client, tmp_path):
    target, job = _train(client, steps=3)
    sampler = job.sampler()
    with pytest.raises(sampled.SampledError) as e:
        client.train(target, "fisher", steps=3, score_activation="leaky-relu")
    assert e.value.code.name == "FAILED_PRECONDITION" and "second derivative" in e.value.details
    with pytest.raises(sampled.SampledError) as e:
        sampler.sample(0)
    assert e.value.code.name == "INVALID_ARGUMENT"
    bad = tmp_path / "bad.sampler"
    bad.write_bytes(b"SMPSAMPLER\n" + b"\x00" * 40)
    with pytest.raises(sampled.SampledError) as e:
        client.session.import_sampler(str(bad))
    assert e.value.code.name == "INVALID_ARGUMENT"
    with pytest.raises(ValueError):
        sampled.load_sampler(str(bad))
    sampler.delete()
    with pytest.raises(sampled.SampledError) as e:
        sampler.sample(10)
    assert e.value.code.name == "NOT_FOUND"


def test_plots_are_written(client, tmp_path):
    target, job = _train(client, steps=30, eval_every=10)
    x = job.sampler().sample(500, seed=1)
    # The numpy density is the family's: MoG2's modes are far likelier than the origin.
    lq = sampled.plot.log_density(target, np.array([[-2.0, 2.0], [2.0, -2.0], [0.0, 0.0]]))
    assert lq[0] == pytest.approx(lq[1]) and lq[0] > lq[2] + 5
    for path in (sampled.plot.samples(x, str(tmp_path / "s.png"), target=target),
                 sampled.plot.history(job, str(tmp_path / "h.png"))):
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_continue_training_and_delete_while_streaming(client):
    """Through the real binary: a run continued from a sampler differs from a fresh one of the same seed, and
    deleting a sampler while a Sample streams lets the stream finish from the weights it started with."""
    target, job = _train(client, steps=20)
    first = job.sampler()
    more = client.train(target, "kl", steps=20, batch=256, hidden=[32, 32], lr=1e-3, score_steps=2, seed=3,
                        from_sampler=first)
    fresh = client.train(target, "kl", steps=40, batch=256, hidden=[32, 32], lr=1e-3, score_steps=2, seed=3)
    continued = more.sampler()
    assert first.id in continued.info().provenance_json
    assert not np.array_equal(continued.sample(100, seed=1), fresh.sampler().sample(100, seed=1))

    from sampled.v1 import training_pb2
    expected = continued.sample(300000, seed=4, dtype=np.float32)
    stream = client._samplers.Sample(training_pb2.SampleRequest(sampler_id=continued.id, n=300000, seed=4,
                                                                dtype=1, chunk_rows=1000), timeout=60)
    chunks = [next(stream)]
    continued.delete()
    chunks += list(stream)
    got = np.frombuffer(b"".join(c.data for c in chunks), dtype="<f4").reshape(-1, 2)
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(sampled.SampledError) as e:
        continued.sample(10)
    assert e.value.code.name == "NOT_FOUND"
