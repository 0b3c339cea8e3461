"""The sampled process: reflection, /metrics under promtool, health during shutdown, SIGTERM, OpenMP spinning."""

import os
import shutil
import subprocess
import threading
import urllib.request

import grpc
import numpy as np
import pytest

from conftest import RunningServer


def scrape(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def sample(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_metrics_pass_promtool_and_move_with_traffic(server):
    before = scrape(server.metrics_url)
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "metrics"], input=before, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    c = server.client()
    c.create_session()
    t = c.upload_target("data", np.random.default_rng(0).normal(size=(200, 2)))
    c.start_flow(t, "sd", particles=100, steps=40).wait()
    with pytest.raises(Exception):
        c.job("j_missing")
    after = scrape(server.metrics_url)
    r = subprocess.run(["promtool", "check", "metrics"], input=after, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    ok = 'sampled_rpcs_total{code="OK",method="SessionService/CreateSession"}'
    assert sample(after, ok) == sample(before, ok) + 1
    assert sample(after, 'sampled_rpcs_total{code="NOT_FOUND",method="JobService/GetJob"}') == 1
    assert sample(after, 'sampled_flow_steps_total{method="sd"}') == 40
    assert sample(after, 'sampled_particle_updates_total{method="sd"}') == 4000
    assert sample(after, 'sampled_jobs{state="succeeded"}') == 1
    assert sample(after, "sampled_sessions") == 1
    assert 'sampled_build_info{blas="openblas",grpc="1.51.1"' in after


def test_server_logs_the_blas_it_mapped(server):
    # The install script puts OpenBLAS behind libblas.so.3; the server says which BLAS it runs on.
    assert server.blas_line.startswith("sampled: BLAS openblas ("), server.blas_line
    assert "2 compute threads per job" in server.blas_line, server.blas_line


def test_reflection_lists_the_services(server):
    channel = grpc.insecure_channel(server.address)
    call = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                 request_serializer=lambda b: b, response_deserializer=lambda b: b)
    # ServerReflectionRequest { list_services = 7: "" }
    replies = list(call(iter([b"\x3a\x00"]), timeout=30))
    assert replies
    for name in (b"sampled.v1.FlowService", b"sampled.v1.JobService", b"grpc.health.v1.Health"):
        assert name in replies[0]


def test_sigterm_during_a_running_job_turns_health_off_and_exits_cleanly():
    s = RunningServer()
    try:
        c = s.client()
        c.create_session()
        t = c.upload_target("data", np.random.default_rng(0).normal(size=(300, 2)))
        job = c.start_flow(t, "sd", particles=300, steps=10**8)
        for j in job.watch():
            if j.state == 2:
                break
        # Watch health: the stream must report NOT_SERVING before the server goes away.
        channel = grpc.insecure_channel(s.address)
        watch = channel.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=lambda b: b,
                                     response_deserializer=lambda b: b)
        statuses = []
        first = threading.Event()

        def read():
            try:
                for reply in watch(b"", timeout=120):
                    statuses.append(reply[1] if len(reply) >= 2 else 0)
                    first.set()
            except grpc.RpcError:
                pass
            first.set()

        reader = threading.Thread(target=read)
        reader.start()
        assert first.wait(60) and statuses[0] == 1  # SERVING
        assert s.terminate() == 0
        reader.join(60)
        assert 2 in statuses  # NOT_SERVING was sent while shutting down
        out = s.proc.stdout.read()
        assert "SIGTERM received" in out and "stopped" in out
    finally:
        s.stop()


def process_environment(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)


def test_server_bounds_openmp_spinning_unless_the_environment_chooses():
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    s = RunningServer(env=env)
    try:
        # Re-executed in place: the same pid now runs with the bounded spin count.
        assert process_environment(s.proc.pid).get(b"GOMP_SPINCOUNT") == b"1000"
        assert s.terminate() == 0
    finally:
        s.stop()
    s = RunningServer(env={**env, "OMP_WAIT_POLICY": "active"})
    try:
        environ = process_environment(s.proc.pid)
        assert b"GOMP_SPINCOUNT" not in environ and environ[b"OMP_WAIT_POLICY"] == b"active"
    finally:
        s.stop()
