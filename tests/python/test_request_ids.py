"""Idempotent create calls: a request id sent again returns what the first call made (also after a restart
with --state-dir), a failed call leaves its id free, an id is for one kind of call, and the Python client
retries UNAVAILABLE with the same id until a server that was not yet up answers."""

import socket
import threading
import time

import grpc
import numpy as np
import pytest

import sampled
from sampled.v1 import flows_pb2, sessions_pb2, targets_pb2, training_pb2
from conftest import RunningServer
from test_state_dir import StateServer


def _upload(stub, session_id, name, array, request_id):
    def requests():
        yield targets_pb2.UploadTargetRequest(header=targets_pb2.UploadTargetHeader(
            session_id=session_id, name=name, dtype=2, dim=array.shape[1], request_id=request_id))
        yield targets_pb2.UploadTargetRequest(chunk=array.astype("<f8").tobytes())
    return stub.UploadTarget(requests())


def test_a_repeated_request_id_returns_the_first_calls_object(tmp_path):
    s = StateServer(tmp_path / "state")
    try:
        c = s.client()
        first = c._sessions.CreateSession(sessions_pb2.CreateSessionRequest(name="a", request_id="sess-1"))
        again = c._sessions.CreateSession(sessions_pb2.CreateSessionRequest(name="a", request_id="sess-1"))
        assert again.id == first.id and len(c.sessions()) == 1
        sid = first.id

        data = np.random.default_rng(0).normal(size=(64, 2))
        up = _upload(c._targets, sid, "data", data, "up-1")
        assert _upload(c._targets, sid, "data", data, "up-1").id == up.id  # not ALREADY_EXISTS
        define = targets_pb2.DefineTargetRequest(session_id=sid, name="g", family="gaussian", dim=2, request_id="def-1")
        g = c._targets.DefineTarget(define)
        assert c._targets.DefineTarget(define).id == g.id

        start = flows_pb2.StartFlowRequest(session_id=sid, target_id=up.id, request_id="flow-1",
                                           spec=flows_pb2.FlowSpec(method="sd", particle_count=50, steps=20, seed=1))
        job = c._flows.StartFlow(start)
        assert c._flows.StartFlow(start).id == job.id
        train = training_pb2.StartTrainingRequest(session_id=sid, target_id=g.id, request_id="train-1",
                                                  spec=training_pb2.TrainSpec(method="kl", steps=5, hidden=[8],
                                                                              batch=32))
        tjob = c._training.StartTraining(train)
        assert c._training.StartTraining(train).id == tjob.id
        session = c.use_session(sid)
        assert len(session.jobs()) == 2 and len(session.targets()) == 2

        # An id is for one kind of call; scoped to its session.
        with pytest.raises(grpc.RpcError) as e:
            c._targets.DefineTarget(targets_pb2.DefineTargetRequest(session_id=sid, name="h", family="gaussian",
                                                                    request_id="flow-1"))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "was used for StartFlow" in e.value.details()
        other = c.create_session("b")
        elsewhere = c._targets.DefineTarget(targets_pb2.DefineTargetRequest(
            session_id=other.id, name="g", family="gaussian", dim=2, request_id="def-1"))
        assert elsewhere.id != g.id

        # A failed call leaves its id free: the corrected request with the same id goes through.
        bad = targets_pb2.DefineTargetRequest(session_id=sid, name="m", family="no-such-family", request_id="def-2")
        with pytest.raises(grpc.RpcError) as e:
            c._targets.DefineTarget(bad)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        bad.family = "gaussian"
        made = c._targets.DefineTarget(bad)
        assert made.name == "m"
        with pytest.raises(grpc.RpcError) as e:
            c._sessions.CreateSession(sessions_pb2.CreateSessionRequest(request_id="x" * 200))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        c.close()
        assert s.terminate() == 0
    finally:
        s.stop()

    # Remembered across a restart.
    s = StateServer(tmp_path / "state")
    try:
        c = s.client()
        assert c._sessions.CreateSession(sessions_pb2.CreateSessionRequest(name="a", request_id="sess-1")).id == sid
        assert c._flows.StartFlow(start).id == job.id
        assert c._targets.DefineTarget(define).id == g.id
        # The object it made was deleted since: said so, nothing made again.
        c.job(job.id).delete()
        with pytest.raises(grpc.RpcError) as e:
            c._flows.StartFlow(start)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and "gone since" in e.value.details()
    finally:
        s.stop()


def test_the_client_retries_until_the_server_is_up():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = sampled.Client(f"127.0.0.1:{port}", timeout=5, retries=12)
    servers = []

    def start_later():
        time.sleep(1.0)
        servers.append(RunningServer("--listen", f"127.0.0.1:{port}"))

    t = threading.Thread(target=start_later)
    t.start()
    try:
        session = client.create_session("late")  # UNAVAILABLE until the server listens, then made once
        t.join()
        assert [x.id for x in client.sessions()] == [session.id]
    finally:
        t.join()
        for s in servers:
            s.stop()


def test_samplectl_retries_until_the_server_is_up():
    from pathlib import Path
    import os
    import subprocess
    from conftest import server_binary

    samplectl = Path(server_binary()).resolve().parents[1] / "client" / "samplectl"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, SAMPLED_SERVER=f"127.0.0.1:{port}")
    ctl = subprocess.Popen([str(samplectl), "session", "create", "--name", "late"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    s = RunningServer("--listen", f"127.0.0.1:{port}")
    try:
        out, err = ctl.communicate(timeout=60)
        assert ctl.returncode == 0, err
        c = s.client()
        assert [x.id for x in c.sessions()] == [out.strip()]
    finally:
        ctl.kill()
        s.stop()
