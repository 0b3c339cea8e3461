"""The Python client against a real server: the user's path end to end, and the errors a caller sees."""

import numpy as np
import pytest

import grpc
import sampled


def grid(n=1024, seed=0):
    rng = np.random.default_rng(seed)
    means = np.array([(2 * i, 2 * j) for i in range(-2, 3) for j in range(-2, 3)], dtype=float)
    return means[rng.integers(0, 25, size=n)] + 0.3 * rng.standard_normal((n, 2))


def test_upload_flow_watch_particles_evaluate(client):
    data = grid()
    target = client.upload_target("grid", data)
    assert (target.point_count, target.dim) == (1024, 2)
    job = client.start_flow(target, "sd", particles=512, init_mean=[-8, 8], steps=300, noise="cosine:10,0.5",
                            eval_every=100, seed=4)
    events = []
    final = job.wait(callback=events.append)
    assert job.state == "succeeded"
    assert final.step == 300 and final.metrics_step == 300
    assert [e.step for e in events] == sorted(e.step for e in events)
    x = job.particles()
    assert x.shape == (512, 2) and x.dtype == np.float64
    assert np.allclose(job.particles(np.float32), x, atol=1e-5)
    # The particles left (-8, 8) for the grid: their mean is near the grid's centre.
    assert np.linalg.norm(x.mean(0)) < 1.0
    m = client.evaluate(target, samples=x, metrics=["mmd", "energy", "cfd"])
    assert set(m) == {"mmd", "energy", "cfd"}
    assert m["cfd"] < 0.1
    # The same particles evaluated by job id, with the job's seed, give the job's own CFD.
    assert client.evaluate(target, job=job, seed=4)["cfd"] == pytest.approx(final.metrics["cfd"], abs=1e-12)


def test_float32_upload_and_initial_particles(client):
    target = client.upload_target("f32", grid(300).astype(np.float32))
    init = np.random.default_rng(1).normal(size=(64, 2)) - 5
    job = client.start_flow(target, "sd", init=init, steps=0)
    assert job.state == "succeeded" and job.last.particle_count == 64
    assert np.array_equal(job.particles(), init)
    stats = job.step(3)
    assert [s.step for s in stats] == [1, 2, 3]
    assert all(s.HasField("bandwidth") and not s.HasField("acceptance_rate") for s in stats)


def test_initial_particles_leave_no_target_and_failed_steps_keep_their_stats(client):
    # Hardening finding 10: init= uploads the particles for the call only, also when the flow is refused;
    # particles=0 is an error, not 1000. Finding 6: a failed step raises StepFailed with the steps before it.
    target = client.define_target("g", "gaussian", dim=2)
    init = np.random.default_rng(2).normal(size=(20, 2))
    job = client.start_flow(target, "langevin", init=init, steps=0, step_size=1e6)
    with pytest.raises(sampled.SampledError) as refused:
        client.start_flow(target, "langevin", init=init, leapfrog=3)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [t.name for t in client.session.targets()] == ["g"]
    with pytest.raises(sampled.SampledError) as zero:
        client.start_flow(target, "langevin", particles=0)
    assert zero.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(sampled.StepFailed) as failed:
        job.step(1000)
    stats = failed.value.stats
    assert 5 < len(stats) < 1000 and stats[-1].step == failed.value.job.step
    assert "non-finite" in failed.value.details and job.state == "failed"
    assert np.isfinite(job.particles()).all()
    job.delete()
    with pytest.raises(sampled.SampledError) as gone:
        job.particles()
    assert gone.value.code == grpc.StatusCode.NOT_FOUND


def test_density_targets_and_ksd(client):
    g = client.define_target("g", "gaussian")
    assert g.kind == 2 and list(g.params["mean"].values) == [-1.0, 1.0]
    job = client.start_flow(g, "langevin", particles=400, steps=200, step_size=0.05, eval_every=100, seed=1)
    final = job.wait()
    assert "ksd" in final.metrics
    svgd = client.start_flow(g, "svgd", particles=100, steps=100, optimizer="adagrad")
    assert svgd.wait().state == 3  # JOB_STATE_SUCCEEDED
    draws = client.define_target("draws", "mixture", sample=500, seed=2)
    assert draws.kind == 1 and draws.point_count == 500


def code_of(call):
    with pytest.raises(sampled.SampledError) as e:
        call()
    return e.value.code, e.value.details


def test_bad_input_is_refused_with_the_right_code_and_nothing_changes(client):
    kept = client.upload_target("kept", grid(100))
    bad = grid(10)
    bad[3, 0] = np.nan
    assert code_of(lambda: client.upload_target("nan", bad)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "samples contain a non-finite value (nan) at row 3, column 0; remove or replace NaN and Inf entries")
    bad[3, 0] = np.inf
    assert code_of(lambda: client.upload_target("inf", bad))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: client.upload_target("kept", grid(5)))[0] == grpc.StatusCode.ALREADY_EXISTS
    code, details = code_of(lambda: client.define_target("x", "gaussain"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "unknown target family 'gaussain'" in details
    code, details = code_of(lambda: client.define_target("x", "gaussian", params={"covv": [1, 0, 0, 1]}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "'covv'" in details
    code, details = code_of(lambda: client.start_flow(kept, "sd", particles=10, step_size=-0.1))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "step_size" in details
    code, details = code_of(lambda: client.evaluate(kept, samples=np.zeros((5, 3))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "dimension 3" in details
    assert code_of(lambda: client.start_flow("t_missing", "sd", particles=10))[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: client.job("j_missing"))[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: client.use_session("s_missing"))[0] == grpc.StatusCode.NOT_FOUND
    assert [t.name for t in client.session.targets()] == ["kept"]
    assert client.session.jobs() == []


def test_limits_stepping_a_running_job_and_cancelling_a_finished_one(small_server):
    c = small_server.client()
    c.create_session()
    code, details = code_of(lambda: c.upload_target("big", np.zeros((2001, 2))))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "2000" in details
    assert code_of(lambda: c.define_target("wide", "gaussian", dim=17))[0] == grpc.StatusCode.INVALID_ARGUMENT
    target = c.upload_target("data", grid(500))
    assert code_of(lambda: c.start_flow(target, "sd", particles=2001))[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    long = c.start_flow(target, "sd", particles=200, steps=10**8)
    for j in long.watch():
        if j.state == 2:  # running
            break
    code, details = code_of(lambda: long.step(1))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "running" in details
    queued = c.start_flow(target, "sd", particles=10, steps=5)  # fills the queue of one
    code, details = code_of(lambda: c.start_flow(target, "sd", particles=10, steps=5))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "queue is full" in details
    at_cancel = long.cancel()
    final = long.wait()
    assert long.state == "cancelled" and final.step <= at_cancel.step + 1
    assert queued.wait().state == 3
    code, details = code_of(queued.cancel)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "already succeeded" in details
    assert len(c.session.jobs()) == 2


def test_deleting_a_session_cancels_its_jobs(server):
    c = server.client()
    s = c.create_session()
    target = c.upload_target("data", grid(300))
    job = c.start_flow(target, "sd", particles=200, steps=10**8)
    events = job.watch()
    for j in events:
        if j.state == 2:
            break
    assert s.delete() == 1
    last = [j for j in events][-1] if job.last.state != 5 else job.last
    assert last.state == 5  # JOB_STATE_CANCELLED
    assert code_of(lambda: c.job(job.id))[0] == grpc.StatusCode.NOT_FOUND


def test_discovery_and_health(client):
    assert [f.name for f in client.families()] == ["gaussian", "mixture", "rosenbrock", "donut", "funnel", "squiggle",
                                                  "blr", "gmm", "torchscript"]
    assert {"sd", "svgd", "langevin"} <= {m.name for m in client.methods()}
    assert {"mmd", "energy", "cfd", "ksd"} == {m.name for m in client.metrics()}
    assert client.health() == "SERVING"
    assert client.health("sampled.v1.FlowService") == "SERVING"
