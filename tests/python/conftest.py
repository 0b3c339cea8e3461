"""Fixtures that run the real sampled binary on 127.0.0.1 with port 0 and stop it after the test."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "client" / "python"))

import sampled  # noqa: E402


def server_binary() -> str:
    path = os.environ.get("SAMPLED_SERVER_BIN", str(ROOT / "build" / "server" / "sampled"))
    if not os.path.exists(path):
        pytest.fail(f"sampled binary not found at {path}; build first or set SAMPLED_SERVER_BIN")
    return path


class RunningServer:
    """A sampled process: its gRPC and metrics addresses, and how to stop it."""

    def __init__(self, *flags: str, env=None):
        self.proc = subprocess.Popen(
            [server_binary(), "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--torch-threads", "2",
             *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        m = re.match(r"sampled listening on ([\d.]+):(\d+), metrics on http://[\d.]+:(\d+)/metrics", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"unexpected first line {line!r}; stderr: {self.proc.stderr.read()}")
        self.address = f"{m.group(1)}:{m.group(2)}"
        # The second line names the BLAS behind LibTorch and the threads per job.
        self.blas_line = self.proc.stdout.readline()
        self.metrics_url = f"http://127.0.0.1:{m.group(3)}/metrics"

    def client(self, timeout=60) -> sampled.Client:
        return sampled.Client(self.address, timeout=timeout)

    def terminate(self, timeout=120) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def samplectl(server):
    """ctl(*args): runs samplectl against `server` and returns its stdout, asserting it exited 0."""
    binary = Path(server_binary()).resolve().parents[1] / "client" / "samplectl"
    env = dict(os.environ, SAMPLED_SERVER=server.address)

    def ctl(*args):
        r = subprocess.run([str(binary), *args], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return r.stdout
    return ctl


# Four well-separated 2-D clusters (the low-dimensional data of the trainers-from-data tests).
CENTRES = np.array([[-2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [2.0, 2.0]])


def four_clusters(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return CENTRES[rng.integers(0, 4, n)] + 0.3 * rng.normal(size=(n, 2))


def cluster_shares(draws):
    """Each cluster's share of the draws (nearest centre), and every draw's nearest centre."""
    nearest = np.argmin(((draws[:, None, :] - CENTRES[None]) ** 2).sum(-1), axis=1)
    return np.bincount(nearest, minlength=4) / len(draws), nearest


def train_killed_and_resumed(tmp_path, data, method, draw, kill_after=200, **train):
    """Trains `method` on `data` twice: once without interruption, once with --state-dir, killed (SIGKILL) after
    `kill_after` iterations and restarted. Returns draw(sampler) of both runs, to compare."""
    ref = RunningServer("--workers", "1")
    try:
        c = ref.client()
        c.create_session("ref")
        j = c.train(c.upload_target("d", data), method, **train)
        j.wait()
        expected = draw(j.sampler())
    finally:
        ref.stop()
    flags = ("--workers", "1", "--state-dir", str(tmp_path / "state"), "--checkpoint-every", "50")
    s = RunningServer(*flags)
    try:
        c = s.client()
        c.create_session("s")
        j = c.train(c.upload_target("d", data), method, **train)
        while c.job(j.id).status().step < kill_after:
            pass
        s.proc.kill()
        s.proc.wait()
    finally:
        s.stop()
    s = RunningServer(*flags)
    try:
        j = s.client().job(j.id)
        j.wait()
        assert j.state == "succeeded", j.status()
        return expected, draw(j.sampler())
    finally:
        s.stop()


@pytest.fixture
def server():
    s = RunningServer()
    yield s
    s.stop()


@pytest.fixture
def small_server():
    """A server with small limits, one worker and a queue of one."""
    s = RunningServer("--max-points-per-target", "2000", "--max-particles", "2000", "--max-dim", "16",
                      "--max-queued-jobs", "1", "--workers", "1")
    yield s
    s.stop()


def session_client(server, timeout=60):
    """A client of `server` with a fresh session in use; close it after."""
    c = server.client(timeout=timeout)
    c.create_session("pytest")
    return c


@pytest.fixture
def client(server):
    c = session_client(server)
    yield c
    c.close()


@pytest.fixture
def ts_server():
    """A server that accepts TorchScript models (--allow-torchscript), at most 200 kB each."""
    s = RunningServer("--allow-torchscript", "--max-model-bytes", "200000")
    yield s
    s.stop()


@pytest.fixture
def ts_client(ts_server):
    c = session_client(ts_server, timeout=600)
    yield c
    c.close()
