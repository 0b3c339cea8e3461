"""--state-dir through the real binary: a restart keeps sessions, targets, samplers and finished jobs' results;
running jobs resume after kill -9 and end exactly where an uninterrupted run ends; a corrupted file fails only
its object; a directory is one server's."""

import os
import re
import signal
import sqlite3
import subprocess
import time

import grpc
import numpy as np
import pytest

import sampled
from sampled.v1 import jobs_pb2
from conftest import RunningServer, server_binary


class StateServer(RunningServer):
    """A server on `state_dir`; the third line of its output says what it restored."""

    def __init__(self, state_dir, *flags):
        super().__init__("--state-dir", str(state_dir), "--workers", "3", *flags)
        self.state_line = self.proc.stdout.readline()
        m = re.search(r"restored (\d+) sessions, (\d+) targets, (\d+) samplers, (\d+) jobs \((\d+) resumed\)",
                      self.state_line)
        assert m, self.state_line
        if "could not be loaded" in self.state_line:
            print(self.state_line)
        self.restored = dict(zip(("sessions", "targets", "samplers", "jobs", "resumed"), map(int, m.groups())))

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _blr_data(n=80, p=3, seed=0):
    rng = np.random.default_rng(seed)
    x = np.hstack([rng.normal(size=(n, p - 1)), np.ones((n, 1))])
    y = (rng.random(n) < 1 / (1 + np.exp(-x @ np.linspace(-1, 1, p)))).astype(float)
    return np.hstack([x, y[:, None]])


def _listing(c, *sessions):
    """The sessions and each one's targets, as ids, names and dimensions."""
    return (sorted((x.id, x.name) for x in c.sessions()),
            [[(t.id, t.name, t.dim) for t in s.targets()] for s in sessions])


def test_restart_keeps_sessions_targets_samplers_and_results(tmp_path):
    state = tmp_path / "state"
    s = StateServer(state)
    try:
        assert s.restored == dict(sessions=0, targets=0, samplers=0, jobs=0, resumed=0)
        c = s.client()
        a = c.create_session("a")
        b = c.create_session("b")
        data = a.upload_target("data", np.random.default_rng(0).normal(size=(300, 2)))
        gauss = a.define_target("g", "gaussian", dim=2, params={"mean": [1.0, -1.0]})
        draws = a.define_target("draws", "gaussian", dim=3, sample=500, seed=7)
        blr_data = b.upload_target("bc", _blr_data())
        post = b.define_target("post", "blr", data=blr_data)
        b.delete_target(blr_data)  # the posterior keeps its own copy of the data
        flow = a.start_flow(data, "sd", particles=100, steps=40, seed=1)
        flow.wait()
        interactive = a.start_flow(gauss, "langevin", particles=50, steps=0, seed=2)
        interactive.step(7)
        train = a.train(gauss, "kl", steps=20, hidden=[16], batch=64, seed=3, eval_every=10)
        train.wait()
        sampler = train.sampler()
        before = dict(
            listing=_listing(c, a, b),
            flow=flow.particles(), interactive=interactive.particles(),
            draws=sampler.sample(64, seed=5), history=train.history(),
            post_eval=b.evaluate(post, samples=np.zeros((4, 4)), metrics=["ksd"]),
            draws_eval=a.evaluate(draws, samples=np.zeros((10, 3)), metrics=["energy"]),
        )
        c.close()
        assert s.terminate() == 0
    finally:
        s.stop()

    s = StateServer(state)
    try:
        assert s.restored == dict(sessions=2, targets=4, samplers=1, jobs=3, resumed=0), s.state_line
        c = s.client()
        a, b = c.use_session(a.id), c.use_session(b.id)
        assert _listing(c, a, b) == before["listing"]
        jobs = {j.id: j for j in a.jobs()}
        assert {j.state for j in jobs.values()} == {"succeeded"}
        np.testing.assert_array_equal(c.job(flow.id).particles(), before["flow"])
        # The interactive flow was checkpointed at shutdown, at its last step.
        restored = c.job(interactive.id)
        assert restored.status().step == 7
        np.testing.assert_array_equal(restored.particles(), before["interactive"])
        restored.step(3)  # and it steps on
        assert restored.status().step == 10
        assert c.job(train.id).status().sampler_id == sampler.id
        np.testing.assert_array_equal(c.sampler(sampler.id).sample(64, seed=5), before["draws"])
        history = c.job(train.id).history()
        for key, values in before["history"].items():
            np.testing.assert_array_equal(history[key], values)
        assert b.evaluate(post, samples=np.zeros((4, 4)), metrics=["ksd"]) == before["post_eval"]
        assert a.evaluate(draws, samples=np.zeros((10, 3)), metrics=["energy"]) == before["draws_eval"]
        # Deletes are durable too.
        c.sampler(sampler.id).delete()
        c.job(flow.id).delete()
        b.delete()
        c.close()
        assert s.terminate() == 0
    finally:
        s.stop()

    s = StateServer(state)
    try:
        assert s.restored == dict(sessions=1, targets=3, samplers=0, jobs=2, resumed=0), s.state_line
        leftover = sorted(p.name.split(".")[0] for p in (state / "blobs").iterdir())
        c = s.client()
        assert sampler.id not in leftover and flow.id not in leftover and post.id not in leftover
        with pytest.raises(sampled.SampledError) as e:
            c.sampler(sampler.id).info()
        assert e.value.code == grpc.StatusCode.NOT_FOUND
    finally:
        s.stop()


def _start_three(session, gauss, data):
    """A flow on data, MALA on a density and a training run: deterministic, a few seconds each."""
    return [
        session.start_flow(data, "sd", particles=300, steps=1500, seed=11),
        session.start_flow(gauss, "mala", particles=400, steps=6000, seed=12),
        session.train(gauss, "kl", steps=300, hidden=[32, 32], batch=256, seed=13),
    ]


def _results(client, jobs):
    out = []
    for j in jobs:
        j = client.job(j.id)
        j.wait()
        assert j.state == "succeeded", j.status()
        out.append(j.particles() if j.status().kind == "flow" else j.sampler().sample(256, seed=1))
    return out


def test_kill9_resumes_running_jobs_exactly(tmp_path):
    data_points = np.random.default_rng(4).normal(size=(400, 2)) * [1.0, 0.5]
    # The uninterrupted reference, in memory.
    ref = RunningServer("--workers", "3")
    try:
        c = ref.client()
        sess = c.create_session("ref")
        jobs = _start_three(sess, sess.define_target("g", "gaussian", dim=2), sess.upload_target("d", data_points))
        expected = _results(c, jobs)
    finally:
        ref.stop()

    state = tmp_path / "state"
    s = StateServer(state, "--checkpoint-every", "20")
    try:
        c = s.client()
        sess = c.create_session("chaos")
        jobs = _start_three(sess, sess.define_target("g", "gaussian", dim=2), sess.upload_target("d", data_points))
        deadline = time.time() + 120
        while True:
            steps = [c.job(j.id).status() for j in jobs]
            if all(st.step >= 60 for st in steps):
                break
            assert time.time() < deadline, steps
            time.sleep(0.02)
        assert all(st.state == jobs_pb2.JOB_STATE_RUNNING for st in steps), [st.state for st in steps]
        s.kill9()
    finally:
        s.stop()

    s = StateServer(state, "--checkpoint-every", "20")
    try:
        assert s.restored["resumed"] == 3, s.state_line
        c = s.client()
        got = _results(c, jobs)
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)
    finally:
        s.stop()


def test_a_deleted_targets_jobs_and_more_resumed_jobs_than_the_queue_takes(tmp_path):
    """A target deleted while its jobs live stays for them (a restart rebuilds them, particles readable and the flow
    steppable, the target not listed); unfinished jobs resume after a restart even past --max-queued-jobs."""
    state = tmp_path / "state"
    s = StateServer(state, "--workers", "1")
    try:
        c = s.client()
        sess = c.create_session("s")
        data = sess.upload_target("d", np.random.default_rng(3).normal(size=(200, 2)))
        ended = sess.start_flow(data, "sd", particles=50, steps=20, seed=1)
        ended.wait()
        gauss = sess.define_target("g", "gaussian", dim=2)
        running = [sess.start_flow(gauss, "langevin", particles=2000, steps=200000, seed=k) for k in range(3)]
        sess.delete_target(data)
        before = ended.particles()
        deadline = time.time() + 60
        while c.job(running[0].id).status().step < 10:
            assert time.time() < deadline
            time.sleep(0.02)
        s.kill9()
    finally:
        s.stop()

    # A row whose session has gone (a write that raced the session's deletion) is removed at start.
    with sqlite3.connect(state / "sampled.db") as db:
        db.execute("INSERT INTO objects (id, kind, session_id, record, state) "
                   "SELECT 'stray', kind, 'gone', record, state FROM objects WHERE id = ?", (gauss.id,))
    s = StateServer(state, "--workers", "1", "--max-queued-jobs", "1", "--max-queued-jobs-per-session", "1")
    try:
        assert s.restored["targets"] == 1 and s.restored["resumed"] == 3, s.state_line
        with sqlite3.connect(state / "sampled.db") as db:
            assert db.execute("SELECT COUNT(*) FROM objects WHERE id = 'stray'").fetchone() == (0,)
        assert "could not be loaded" not in s.state_line, s.state_line
        c = s.client()
        sess = c.use_session(sess.id)
        assert [t.name for t in sess.targets()] == ["g"]
        job = c.job(ended.id)
        assert job.state == "succeeded"
        np.testing.assert_array_equal(job.particles(), before)
        job.step(2)
        assert job.status().step == 22
        assert all(c.job(j.id).state in ("queued", "running") for j in running)
        for j in running:
            c.job(j.id).cancel()
    finally:
        s.stop()


def _peak_rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_job_the_session_limit_refuses_is_neither_built_nor_stored(tmp_path):
    """At --max-jobs-per-session the next StartFlow is refused before its particles are drawn or written: the
    server's peak RSS does not grow by the 320 MB those particles would take."""
    state = tmp_path / "state"
    s = StateServer(state, "--max-jobs-per-session", "1")
    try:
        c = s.client()
        sess = c.create_session("s")
        g = sess.define_target("g", "gaussian", dim=40)
        sess.start_flow(g, "langevin", particles=10, steps=0)
        peak = _peak_rss_bytes(s.proc.pid)
        with pytest.raises(sampled.SampledError) as e:
            sess.start_flow(g, "langevin", particles=1_000_000, steps=0, init_std=1.0)
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit of 1 jobs" in e.value.details
        assert _peak_rss_bytes(s.proc.pid) - peak < 64 << 20
        assert len(list((state / "blobs").iterdir())) == 1  # the first flow's state only
    finally:
        s.stop()


def test_the_last_job_of_a_deleted_target_takes_its_row_along(tmp_path):
    """A target deleted while a job holds it is kept (retired) for that job; deleting the job drops the row, so a
    restart does not rebuild it."""
    state = tmp_path / "state"
    s = StateServer(state)
    try:
        c = s.client()
        sess = c.create_session("s")
        data = sess.upload_target("d", np.random.default_rng(3).normal(size=(200, 2)))
        first = sess.start_flow(data, "sd", particles=50, steps=5, seed=1)
        second = sess.start_flow(data, "sd", particles=50, steps=5, seed=2)
        first.wait()
        second.wait()
        sess.delete_target(data)
        rows = lambda: sqlite3.connect(state / "sampled.db").execute(
            "SELECT COUNT(*) FROM objects WHERE id = ?", (data.id,)).fetchone()[0]
        assert rows() == 1
        c.job(first.id).delete()
        assert rows() == 1  # the second job still runs on it
        np.testing.assert_array_equal(c.job(second.id).particles().shape, (50, 2))
        c.job(second.id).delete()
        assert rows() == 0
        c.close()
        assert s.terminate() == 0
    finally:
        s.stop()
    s = StateServer(state)
    try:
        assert s.restored["targets"] == 0 and s.restored["jobs"] == 0, s.state_line
    finally:
        s.stop()


def test_a_corrupted_file_fails_only_its_object(tmp_path):
    state = tmp_path / "state"
    s = StateServer(state)
    try:
        c = s.client()
        sess = c.create_session("x")
        good = sess.upload_target("good", np.ones((50, 2)))
        bad = sess.upload_target("bad", np.zeros((50, 2)) + 2)
        job = sess.start_flow(good, "sd", particles=30, steps=5, seed=1)
        job.wait()
        other = sess.start_flow(good, "sd", particles=30, steps=5, seed=2)
        other.wait()
        c.close()
        assert s.terminate() == 0
    finally:
        s.stop()
    # One byte of the array flipped; the job's checkpoint cut short.
    path = state / "blobs" / f"{bad.id}.array"
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    path.write_bytes(bytes(raw))
    ckpt = state / "blobs" / f"{job.id}.checkpoint"
    ckpt.write_bytes(ckpt.read_bytes()[:-10])

    s = StateServer(state)
    try:
        assert "2 could not be loaded" in s.state_line, s.state_line
        c = s.client()
        sess = c.use_session(sess.id)
        assert [t.name for t in sess.targets()] == ["good"]
        with pytest.raises(sampled.SampledError) as e:
            sess.start_flow(bad, "sd", particles=10, steps=1)
        assert e.value.code == grpc.StatusCode.DATA_LOSS and "checksum" in e.value.details, e.value.details
        failed = c.job(job.id).status()
        assert failed.state == jobs_pb2.JOB_STATE_FAILED
        assert "could not be restored" in failed.error.message and "truncated" in failed.error.message, failed
        assert c.job(other.id).state == "succeeded" and c.job(other.id).particles().shape == (30, 2)
        sess.delete_target(bad)  # a lost object can be deleted
        with pytest.raises(sampled.SampledError) as e:
            sess.start_flow(bad, "sd", particles=10, steps=1)
        assert e.value.code == grpc.StatusCode.NOT_FOUND
    finally:
        s.stop()


def test_a_directory_belongs_to_one_server_of_its_schema(tmp_path):
    state = tmp_path / "state"
    s = StateServer(state)
    try:
        second = subprocess.run([server_binary(), "--listen", "127.0.0.1:0", "--metrics-listen", "",
                                 "--state-dir", str(state)], capture_output=True, text=True, timeout=60)
        assert second.returncode != 0 and "in use by another sampled" in second.stderr, second.stderr
    finally:
        s.stop()
    db = sqlite3.connect(state / "sampled.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    newer = subprocess.run([server_binary(), "--listen", "127.0.0.1:0", "--metrics-listen", "",
                            "--state-dir", str(state)], capture_output=True, text=True, timeout=60)
    assert newer.returncode != 0 and "schema version 99, newer than this build's 1" in newer.stderr, newer.stderr
