"""A small API over the generated stubs: numpy arrays in and out, streams handled inside."""

from __future__ import annotations

import struct
import time
import uuid
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import grpc
import numpy as np

from sampled.v1 import common_pb2
from sampled.v1 import evaluation_pb2, evaluation_pb2_grpc
from sampled.v1 import flows_pb2, flows_pb2_grpc
from sampled.v1 import jobs_pb2, jobs_pb2_grpc
from sampled.v1 import sessions_pb2, sessions_pb2_grpc
from sampled.v1 import targets_pb2, targets_pb2_grpc
from sampled.v1 import training_pb2, training_pb2_grpc

_CHUNK_BYTES = 1 << 20
_TERMINAL = (jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED)
_HEALTH = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


class SampledError(Exception):
    """A failed call: `code` is the grpc.StatusCode, `details` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class StepFailed(SampledError):
    """A step of `Flow.step` failed (non-finite particles, out of memory): the run ended there. `stats` holds
    the steps taken before it; the flow's particles are those of its last good step."""

    def __init__(self, code: grpc.StatusCode, details: str, stats, job):
        super().__init__(code, details)
        self.stats = stats
        self.job = job


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except grpc.RpcError as e:  # raised by every stub call
        raise SampledError(e.code(), e.details()) from None


# Backoff between the attempts of a create call that met UNAVAILABLE (a restarting server) or ABORTED (its
# first attempt still running): 0.1 s, doubling, at most 2 s.
_RETRY_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED)


def _create(client: "Client", fn, make_request):
    """A call that makes something, sent with a fresh request id and retried on UNAVAILABLE/ABORTED with the
    same id: the server makes it once and answers every attempt with it (docs/api.md, "Idempotent calls").
    `make_request(request_id)` returns the request, or for a client-streaming call a new iterator of them."""
    request_id = uuid.uuid4().hex
    delay = 0.1
    for attempt in range(client.retries + 1):
        try:
            return fn(make_request(request_id), timeout=client.timeout)
        except grpc.RpcError as e:
            if e.code() not in _RETRY_CODES or attempt == client.retries:
                raise SampledError(e.code(), e.details()) from None
        time.sleep(delay)
        delay = min(2.0, 2 * delay)


def _as_array(points) -> np.ndarray:
    a = np.asarray(points)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2:
        raise ValueError(f"expected an N x d array, got shape {a.shape}")
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))


def _dtype_proto(dtype) -> int:
    return common_pb2.DTYPE_FLOAT32 if np.dtype(dtype) == np.float32 else common_pb2.DTYPE_FLOAT64


def _chunks(a: np.ndarray) -> Iterator[bytes]:
    rows = max(1, _CHUNK_BYTES // max(1, a.shape[1] * a.itemsize))
    for start in range(0, a.shape[0], rows):
        yield a[start : start + rows].tobytes()


def _state_name(state: int) -> str:
    return jobs_pb2.JobState.Name(state).replace("JOB_STATE_", "").lower()


def _id(x) -> str:
    return x if isinstance(x, str) else x.id


class Job:
    """A job on the server. Its methods call the server; `status()` returns the latest jobs_pb2.Job."""

    def __init__(self, client: "Client", job: jobs_pb2.Job):
        self._client = client
        self.id = job.id
        self.session_id = job.session_id
        self.last = job

    def __repr__(self) -> str:
        return f"Job({self.id!r}, state={_state_name(self.last.state)!r}, step={self.last.step})"

    @property
    def state(self) -> str:
        """queued, running, succeeded, failed or cancelled (as of the last call)."""
        return _state_name(self.last.state)

    def status(self) -> jobs_pb2.Job:
        self.last = _call(self._client._jobs.GetJob, jobs_pb2.GetJobRequest(job_id=self.id),
                          timeout=self._client.timeout)
        return self.last

    def watch(self, callback: Optional[Callable[[jobs_pb2.Job], None]] = None) -> Iterator[jobs_pb2.Job]:
        """Yields progress events (jobs_pb2.Job) until the job ends; calls `callback` on each too."""
        stream = self._client._jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=self.id))
        try:
            for event in stream:
                self.last = event.job
                if callback is not None:
                    callback(event.job)
                yield event.job
        except grpc.RpcError as e:
            raise SampledError(e.code(), e.details()) from None

    def wait(self, callback: Optional[Callable[[jobs_pb2.Job], None]] = None,
             raise_on_failure: bool = True) -> jobs_pb2.Job:
        """Blocks until the job ends and returns its final state. Raises SampledError if it failed."""
        for _ in self.watch(callback):
            pass
        if raise_on_failure and self.last.state == jobs_pb2.JOB_STATE_FAILED:
            raise SampledError(grpc.StatusCode(self._code(self.last.error.code)), self.last.error.message)
        return self.last

    @staticmethod
    def _code(value: int):
        for c in grpc.StatusCode:
            if c.value[0] == value:
                return c.value
        return grpc.StatusCode.UNKNOWN.value

    def cancel(self) -> jobs_pb2.Job:
        self.last = _call(self._client._jobs.CancelJob, jobs_pb2.CancelJobRequest(job_id=self.id),
                          timeout=self._client.timeout)
        return self.last

    def delete(self) -> None:
        """Cancels the job if it runs and forgets it (its particles, history and memory); a sampler it left stays."""
        _call(self._client._jobs.DeleteJob, jobs_pb2.DeleteJobRequest(job_id=self.id), timeout=self._client.timeout)

    def step(self, steps: int = 1) -> List[jobs_pb2.StepStats]:
        """Runs `steps` more steps of a stopped flow (interactive mode); returns each step's statistics (those
        of the last 10,000 steps of a longer call). Raises StepFailed, holding the statistics of the steps
        taken, when a step fails."""
        r = _call(self._client._flows.StepFlow, flows_pb2.StepFlowRequest(job_id=self.id, steps=steps),
                  timeout=self._client.timeout)
        self.last = r.job
        if r.job.state == jobs_pb2.JOB_STATE_FAILED:
            code = next((c for c in grpc.StatusCode if c.value[0] == r.job.error.code), grpc.StatusCode.UNKNOWN)
            raise StepFailed(code, r.job.error.message, list(r.stats), r.job)
        return list(r.stats)

    def sampler(self) -> Sampler:
        """The sampler a training job left (waits for the job to end). Raises SampledError when it left none."""
        if self.last.state not in _TERMINAL:
            self.wait(raise_on_failure=False)
        if not self.last.sampler_id:
            raise SampledError(grpc.StatusCode.FAILED_PRECONDITION,
                               f"job {self.id} left no sampler (state {self.state}: {self.last.error.message})")
        return Sampler(self._client, _call(self._client._samplers.GetSampler,
                                           training_pb2.GetSamplerRequest(sampler_id=self.last.sampler_id),
                                           timeout=self._client.timeout))

    def history(self) -> Dict[str, np.ndarray]:
        """A training job's history as columns: step, score_loss, sampler_loss, sampler_grad_norm, seconds, and
        one column per metric (NaN where the job did not evaluate)."""
        h = _call(self._client._jobs.GetJobHistory, jobs_pb2.GetJobHistoryRequest(job_id=self.id),
                  timeout=self._client.timeout)
        names = sorted({k for r in h.rows for k in r.metrics})
        out = {c: np.array([getattr(r, c) for r in h.rows], dtype=np.float64)
               for c in ("step", "score_loss", "sampler_loss", "sampler_grad_norm", "seconds")}
        for n in names:
            out[n] = np.array([r.metrics[n] if n in r.metrics else np.nan for r in h.rows])
        return out

    def particles(self, dtype=np.float64) -> np.ndarray:
        """The flow's particles (a copy taken between two steps if it is running)."""
        stream = self._client._flows.GetParticles(
            flows_pb2.GetParticlesRequest(job_id=self.id, dtype=_dtype_proto(dtype)), timeout=self._client.timeout)
        parts, dim, total = [], 1, 0
        try:
            for chunk in stream:
                dim, total = max(1, chunk.dim), chunk.total_rows
                parts.append(chunk.data)
        except grpc.RpcError as e:
            raise SampledError(e.code(), e.details()) from None
        a = np.frombuffer(b"".join(parts), dtype=np.dtype(dtype).newbyteorder("<"))
        return a.reshape(total, dim).astype(dtype)


class Sampler:
    """A trained sampler held by the server (a training job's result, or an imported file)."""

    def __init__(self, client: "Client", sampler: training_pb2.Sampler):
        self._client = client
        self.id = sampler.id
        self.last = sampler

    def __repr__(self) -> str:
        return f"Sampler({self.id!r}, method={self.last.method!r}, steps={self.last.steps})"

    def info(self) -> training_pb2.Sampler:
        self.last = _call(self._client._samplers.GetSampler, training_pb2.GetSamplerRequest(sampler_id=self.id),
                          timeout=self._client.timeout)
        return self.last

    def sample(self, n: int, seed: Optional[int] = None, dtype=np.float64, checkpoint: str = "final",
               steps: Optional[int] = None, dynamics: str = "sde") -> np.ndarray:
        """n draws (n x d). The same (n, seed, checkpoint, steps, dynamics) gives the same draws on every call
        and server; seed None draws a fresh random seed. A score model's draws run `steps` reverse steps (None:
        its default) of the reverse SDE or, with dynamics "ode", the probability-flow ODE."""
        if dynamics not in ("sde", "ode"):
            raise ValueError("dynamics is 'sde' or 'ode'")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy) & 0xFFFFFFFFFFFFFFFF
        if checkpoint not in ("final", "best"):
            raise ValueError("checkpoint is 'final' or 'best'")
        request = training_pb2.SampleRequest(
            sampler_id=self.id, n=n, seed=seed, dtype=_dtype_proto(dtype),
            checkpoint=training_pb2.CHECKPOINT_BEST if checkpoint == "best" else training_pb2.CHECKPOINT_FINAL,
            ode=dynamics == "ode")
        if steps is not None:
            request.steps = steps
        stream = self._client._samplers.Sample(request, timeout=self._client.timeout)
        parts, dim = [], 1
        try:
            for chunk in stream:
                dim = max(1, chunk.dim)
                parts.append(chunk.data)
        except grpc.RpcError as e:
            raise SampledError(e.code(), e.details()) from None
        a = np.frombuffer(b"".join(parts), dtype=np.dtype(dtype).newbyteorder("<"))
        return a.reshape(-1, dim).astype(dtype)

    def export(self, path: str) -> int:
        """Writes the sampler file (loadable with sampled.load_sampler or Session.import_sampler); returns bytes."""
        stream = self._client._samplers.ExportSampler(training_pb2.ExportSamplerRequest(sampler_id=self.id),
                                                      timeout=self._client.timeout)
        try:
            data = b"".join(c.data for c in stream)
        except grpc.RpcError as e:
            raise SampledError(e.code(), e.details()) from None
        with open(path, "wb") as f:
            f.write(data)
        return len(data)

    def delete(self) -> None:
        _call(self._client._samplers.DeleteSampler, training_pb2.DeleteSamplerRequest(sampler_id=self.id),
              timeout=self._client.timeout)


class Session:
    """A session on the server: targets, flows and evaluations live in it."""

    def __init__(self, client: "Client", session: sessions_pb2.Session):
        self._client = client
        self.id = session.id
        self.name = session.name

    def __repr__(self) -> str:
        return f"Session({self.id!r}, name={self.name!r})"

    def info(self) -> sessions_pb2.Session:
        return _call(self._client._sessions.GetSession, sessions_pb2.GetSessionRequest(session_id=self.id),
                     timeout=self._client.timeout)

    def delete(self) -> int:
        """Deletes the session (cancelling its jobs); returns how many jobs were cancelled."""
        r = _call(self._client._sessions.DeleteSession, sessions_pb2.DeleteSessionRequest(session_id=self.id),
                  timeout=self._client.timeout)
        return r.cancelled_jobs

    def upload_target(self, name: str, array, dtype=None) -> targets_pb2.Target:
        """Uploads an N x d float32/float64 array as a sample target, streamed in ~1 MiB chunks."""
        a = _as_array(array)
        if dtype is not None:
            a = a.astype(np.dtype(dtype).newbyteorder("<"))

        def requests(request_id):
            yield targets_pb2.UploadTargetRequest(header=targets_pb2.UploadTargetHeader(
                session_id=self.id, name=name, dtype=_dtype_proto(a.dtype), dim=a.shape[1], expected_rows=a.shape[0],
                request_id=request_id))
            for c in _chunks(a):
                yield targets_pb2.UploadTargetRequest(chunk=c)

        return _create(self._client, self._client._targets.UploadTarget, requests)

    def define_target(self, name: str, family: str, dim: int = 0,
                      params: Optional[Mapping[str, Union[float, Sequence[float], np.ndarray]]] = None,
                      sample: int = 0, seed: int = 0, data=None) -> targets_pb2.Target:
        """An analytic density (family + parameter overrides), or with sample > 0 that many exact draws.
        `data` (a data target or its id): the data a posterior family (blr) is defined over."""
        data_id = "" if data is None else (data if isinstance(data, str) else data.id)
        request = targets_pb2.DefineTargetRequest(session_id=self.id, name=name, family=family, dim=dim,
                                                  sample_count=sample, seed=seed, data_target_id=data_id)
        for key, value in (params or {}).items():
            request.params[key].values.extend(np.asarray(value, dtype=np.float64).ravel().tolist())

        def with_id(request_id):
            request.request_id = request_id
            return request

        return _create(self._client, self._client._targets.DefineTarget, with_id)

    def upload_model(self, name: str, model, dim: int, energy: bool = False,
                     chunk_bytes: int = 1 << 20) -> targets_pb2.Target:
        """A TorchScript model target: `model` is the archive (bytes, or the path of a torch.jit.save file)
        whose forward maps x [n, dim] to log q [n] (energy=True: to an energy E, log q = -E). The server
        must run with --allow-torchscript."""
        if isinstance(model, (bytes, bytearray)):
            archive = bytes(model)
        else:
            with open(model, "rb") as f:
                archive = f.read()

        def requests(request_id):
            yield targets_pb2.UploadModelRequest(header=targets_pb2.UploadModelHeader(
                session_id=self.id, name=name, dim=dim, energy=energy, expected_bytes=len(archive),
                request_id=request_id))
            for at in range(0, len(archive), chunk_bytes):
                yield targets_pb2.UploadModelRequest(chunk=archive[at:at + chunk_bytes])

        return _create(self._client, self._client._targets.UploadModel, requests)

    def delete_target(self, target) -> None:
        """Deletes a target (a Target or its id) from the session."""
        _call(self._client._targets.DeleteTarget,
              targets_pb2.DeleteTargetRequest(session_id=self.id, target_id=_id(target)), timeout=self._client.timeout)

    def targets(self) -> List[targets_pb2.Target]:
        out, token = [], ""
        while True:
            r = _call(self._client._targets.ListTargets,
                      targets_pb2.ListTargetsRequest(session_id=self.id, page_token=token),
                      timeout=self._client.timeout)
            out.extend(r.targets)
            token = r.next_page_token
            if not token:
                return out

    def jobs(self) -> List[Job]:
        out, token = [], ""
        while True:
            r = _call(self._client._jobs.ListJobs, jobs_pb2.ListJobsRequest(session_id=self.id, page_token=token),
                      timeout=self._client.timeout)
            out.extend(Job(self._client, j) for j in r.jobs)
            token = r.next_page_token
            if not token:
                return out

    def start_flow(self, target, method: str, particles: Optional[int] = None, init=None, init_mean=None,
                   init_std: Optional[float] = None, steps: int = 1000, schedule_steps: int = 0,
                   step_size: Optional[float] = None, optimizer: Optional[str] = None,
                   noise: Optional[str] = None, bandwidth: Optional[str] = None, batch_size: Optional[int] = None,
                   dtype=None, median_pairs: Optional[int] = None, seed: int = 0, eval_every: int = 0,
                   eval_metrics: Sequence[str] = (), **options) -> Job:
        """Starts a particle flow on `target` (a Target or its id) as a job.

        Particles start as `particles` draws (default 1000) from N(init_mean, init_std^2 I), or as the rows
        of `init` (an array, uploaded for the call and deleted after it, or the id of a sample target). Unset parameters take the method's defaults;
        remaining keyword arguments are the method's options (e.g. leapfrog=10). steps=0 creates the flow
        for interactive stepping with Job.step().
        """
        spec = flows_pb2.FlowSpec(method=method, steps=steps, schedule_steps=schedule_steps, seed=seed,
                                  eval_every=eval_every, eval_metrics=list(eval_metrics))
        uploaded_init = None
        if init is not None:
            if particles is not None:
                raise ValueError("give particles or init, not both")
            if isinstance(init, str):
                spec.init_target_id = init
            else:
                uploaded_init = self.upload_target(f"init:{method}:{np.random.randint(1 << 62)}", init).id
                spec.init_target_id = uploaded_init
        else:
            spec.particle_count = 1000 if particles is None else particles
        if init_mean is not None:
            spec.init_mean.extend(np.atleast_1d(np.asarray(init_mean, dtype=np.float64)).tolist())
        if init_std is not None:
            spec.init_std = init_std
        if step_size is not None:
            spec.step_size = step_size
        if optimizer is not None:
            spec.optimizer = optimizer
        if noise is not None:
            spec.noise = noise
        if bandwidth is not None:
            spec.bandwidth = str(bandwidth)
        if batch_size is not None:
            spec.batch_size = batch_size
        if dtype is not None:
            spec.dtype = _dtype_proto(dtype)
        if median_pairs is not None:
            spec.median_pairs = median_pairs
        for key, value in options.items():
            spec.options[key] = str(value)
        try:
            job = _create(self._client, self._client._flows.StartFlow,
                          lambda request_id: flows_pb2.StartFlowRequest(session_id=self.id, target_id=_id(target),
                                                                        spec=spec, request_id=request_id))
        finally:
            # The flow holds its own copy of the initial particles: the upload that carried them goes.
            if uploaded_init is not None:
                try:
                    self.delete_target(uploaded_init)
                except SampledError:
                    pass
        return Job(self._client, job)

    def train(self, target, method: str, steps: int = 1000, latent: Optional[int] = None,
              hidden: Sequence[int] = (), activation: Optional[str] = None, score_hidden: Sequence[int] = (),
              score_activation: Optional[str] = None, score_steps: Optional[int] = None,
              score_loss: Optional[str] = None, dsm_sigma: Optional[float] = None, batch: Optional[int] = None,
              lr: Optional[float] = None, score_lr: Optional[float] = None, seed: int = 0, eval_every: int = 0,
              eval_draws: int = 0, from_sampler=None, generator: Optional[str] = None, eta: Optional[float] = None,
              noise: Optional[str] = None, bandwidth: Optional[str] = None, optimizer: Optional[str] = None,
              steps_per_batch: Optional[int] = None, init_std: Optional[float] = None,
              gmm_components: Optional[int] = None, gmm_covariance: Optional[str] = None,
              noise_steps: Optional[int] = None, dt: Optional[float] = None, dt_last: Optional[float] = None,
              times: Optional[int] = None, cv_every: Optional[int] = None, cv_eps: Optional[float] = None,
              sample_steps: Optional[int] = None, score_form: Optional[str] = None, stats: Optional[str] = None,
              basis: Optional[int] = None, pairs: Optional[str] = None, feature_bandwidth: Optional[str] = None,
              epsilon: Optional[float] = None, inner_steps: Optional[int] = None,
              ridge: Optional[float] = None) -> Job:
        """Starts a training job: kl or fisher (003) on a density target; sd-generator (002 Alg. 2), ingd (000
        Alg. 1, a chain of drifts) or a score model (ndsm, ndsm-cv, dsm: 004) on a data target; unset options take
        the method's defaults
        (docs/api.md, `samplectl train methods`). The job's sampler is job.sampler()."""
        spec = training_pb2.TrainSpec(method=method, steps=steps, hidden=list(hidden), score_hidden=list(score_hidden),
                                      seed=seed, eval_every=eval_every, eval_draws=eval_draws,
                                      from_sampler_id=_id(from_sampler) if from_sampler is not None else "")
        for name, value in (("latent", latent), ("activation", activation), ("score_activation", score_activation),
                            ("score_steps", score_steps), ("score_loss", score_loss), ("dsm_sigma", dsm_sigma),
                            ("batch", batch), ("lr", lr), ("score_lr", score_lr), ("generator", generator),
                            ("eta", eta), ("noise", noise), ("bandwidth", bandwidth), ("optimizer", optimizer),
                            ("steps_per_batch", steps_per_batch), ("init_std", init_std),
                            ("gmm_components", gmm_components), ("gmm_covariance", gmm_covariance),
                            ("noise_steps", noise_steps), ("dt", dt), ("dt_last", dt_last), ("times", times),
                            ("cv_every", cv_every), ("cv_eps", cv_eps), ("sample_steps", sample_steps),
                            ("score_form", score_form), ("stats", stats), ("basis", basis), ("pairs", pairs),
                            ("feature_bandwidth", feature_bandwidth), ("epsilon", epsilon),
                            ("inner_steps", inner_steps), ("ridge", ridge)):
            if value is not None:
                setattr(spec, name, value)
        job = _create(self._client, self._client._training.StartTraining,
                      lambda request_id: training_pb2.StartTrainingRequest(session_id=self.id, target_id=_id(target),
                                                                           spec=spec, request_id=request_id))
        return Job(self._client, job)

    def samplers(self) -> List[Sampler]:
        r = _call(self._client._samplers.ListSamplers, training_pb2.ListSamplersRequest(session_id=self.id),
                  timeout=self._client.timeout)
        return [Sampler(self._client, m) for m in r.samplers]

    def import_sampler(self, path: str) -> Sampler:
        """Stores a sampler file (from Sampler.export) in this session."""
        with open(path, "rb") as f:
            data = f.read()

        def requests(request_id):
            yield training_pb2.ImportSamplerRequest(session_id=self.id, request_id=request_id)
            for start in range(0, len(data), _CHUNK_BYTES):
                yield training_pb2.ImportSamplerRequest(chunk=data[start : start + _CHUNK_BYTES])

        return Sampler(self._client, _create(self._client, self._client._samplers.ImportSampler, requests))

    def evaluate(self, target, samples=None, job=None, samples_target=None, metrics: Sequence[str] = (),
                 seed: int = 0, bandwidth: Optional[float] = None, sampler=None, n: int = 0,
                 checkpoint: str = "final") -> Dict[str, float]:
        """Metrics (mmd, energy, cfd, ksd) of a sample set against `target`: an array, a Job's particles, a
        sample target of the session, or n fresh draws (default 500, seeded by `seed`) of a sampler."""
        if sum(x is not None for x in (samples, job, samples_target, sampler)) != 1:
            raise ValueError("give exactly one of samples, job, samples_target and sampler")
        header = evaluation_pb2.EvaluateHeader(session_id=self.id, target_id=_id(target), metrics=list(metrics),
                                               seed=seed)
        if bandwidth is not None:
            header.bandwidth = bandwidth
        a = None
        if job is not None:
            header.job_id = _id(job)
        elif sampler is not None:
            header.sampler_id = _id(sampler)
            header.sampler_draws = n
            header.best_checkpoint = checkpoint == "best"
        elif samples_target is not None:
            header.samples_target_id = _id(samples_target)
        else:
            a = _as_array(samples)
            header.dtype = _dtype_proto(a.dtype)
            header.dim = a.shape[1]

        def requests():
            yield evaluation_pb2.EvaluateRequest(header=header)
            if a is not None:
                for c in _chunks(a):
                    yield evaluation_pb2.EvaluateRequest(chunk=c)

        r = _call(self._client._evaluation.Evaluate, requests(), timeout=self._client.timeout)
        return dict(r.metrics)


class Client:
    """A connection to a sampled server.

    Session-scoped calls (upload_target, define_target, start_flow, evaluate, ...) use the session made by
    the last create_session() (or set with use_session()), unless a `session` keyword is given.
    """

    def __init__(self, address: str = "127.0.0.1:50051", timeout: Optional[float] = None,
                 channel: Optional[grpc.Channel] = None, retries: int = 6):
        self.address = address
        self.timeout = timeout
        # Create calls (sessions, targets, flows, training, imports) carry a request id and are retried this
        # many times on UNAVAILABLE/ABORTED; the server makes the object once.
        self.retries = retries
        # The channel reconnects within 0.1-2 s (gRPC's default backoff grows to 120 s), so that a retried
        # create call finds a restarted server soon after it listens.
        self._channel = channel or grpc.insecure_channel(
            address, options=[("grpc.max_receive_message_length", -1), ("grpc.initial_reconnect_backoff_ms", 100),
                              ("grpc.min_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 2000)])
        self._sessions = sessions_pb2_grpc.SessionServiceStub(self._channel)
        self._targets = targets_pb2_grpc.TargetServiceStub(self._channel)
        self._flows = flows_pb2_grpc.FlowServiceStub(self._channel)
        self._jobs = jobs_pb2_grpc.JobServiceStub(self._channel)
        self._evaluation = evaluation_pb2_grpc.EvaluationServiceStub(self._channel)
        self._training = training_pb2_grpc.TrainingServiceStub(self._channel)
        self._samplers = training_pb2_grpc.SamplerServiceStub(self._channel)
        self.session: Optional[Session] = None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Sessions ---------------------------------------------------------------------------------------------
    def create_session(self, name: str = "") -> Session:
        s = _create(self, self._sessions.CreateSession,
                    lambda request_id: sessions_pb2.CreateSessionRequest(name=name, request_id=request_id))
        self.session = Session(self, s)
        return self.session

    def use_session(self, session_id: str) -> Session:
        self.session = Session(self, _call(self._sessions.GetSession,
                                           sessions_pb2.GetSessionRequest(session_id=session_id),
                                           timeout=self.timeout))
        return self.session

    def sessions(self) -> List[sessions_pb2.Session]:
        out, token = [], ""
        while True:
            r = _call(self._sessions.ListSessions, sessions_pb2.ListSessionsRequest(page_token=token),
                      timeout=self.timeout)
            out.extend(r.sessions)
            token = r.next_page_token
            if not token:
                return out

    def _session(self, session) -> Session:
        if session is None:
            if self.session is None:
                raise ValueError("no session: call create_session() first or pass session=")
            return self.session
        return session if isinstance(session, Session) else Session(self, sessions_pb2.Session(id=session))

    # Session-scoped shortcuts ---------------------------------------------------------------------------------
    def upload_target(self, name: str, array, session=None, **kw) -> targets_pb2.Target:
        return self._session(session).upload_target(name, array, **kw)

    def define_target(self, name: str, family: str, dim: int = 0, params=None, sample: int = 0, seed: int = 0,
                      session=None, data=None) -> targets_pb2.Target:
        return self._session(session).define_target(name, family, dim, params, sample, seed, data)

    def upload_model(self, name: str, model, dim: int, energy: bool = False, session=None) -> targets_pb2.Target:
        return self._session(session).upload_model(name, model, dim, energy)

    def start_flow(self, target, method: str, session=None, **kw) -> Job:
        return self._session(session).start_flow(target, method, **kw)

    def evaluate(self, target, session=None, **kw) -> Dict[str, float]:
        return self._session(session).evaluate(target, **kw)

    def train(self, target, method: str, session=None, **kw) -> Job:
        return self._session(session).train(target, method, **kw)

    def sampler(self, sampler_id: str) -> Sampler:
        return Sampler(self, _call(self._samplers.GetSampler, training_pb2.GetSamplerRequest(sampler_id=sampler_id),
                                   timeout=self.timeout))

    def train_methods(self) -> List[training_pb2.TrainMethod]:
        return list(_call(self._training.ListTrainMethods, training_pb2.ListTrainMethodsRequest(),
                          timeout=self.timeout).methods)

    def job(self, job_id: str) -> Job:
        return Job(self, _call(self._jobs.GetJob, jobs_pb2.GetJobRequest(job_id=job_id), timeout=self.timeout))

    # Discovery ------------------------------------------------------------------------------------------------
    def families(self) -> List[targets_pb2.Family]:
        return list(_call(self._targets.ListFamilies, targets_pb2.ListFamiliesRequest(), timeout=self.timeout).families)

    def methods(self) -> List[flows_pb2.Method]:
        return list(_call(self._flows.ListMethods, flows_pb2.ListMethodsRequest(), timeout=self.timeout).methods)

    def metrics(self) -> List[evaluation_pb2.MetricInfo]:
        return list(_call(self._evaluation.ListMetrics, evaluation_pb2.ListMetricsRequest(),
                          timeout=self.timeout).metrics)

    def health(self, service: str = "") -> str:
        """grpc.health.v1 Check: SERVING, NOT_SERVING, ... (encoded by hand: Debian has no grpc_health)."""
        check = self._channel.unary_unary("/grpc.health.v1.Health/Check",
                                          request_serializer=lambda s: s, response_deserializer=lambda b: b)
        raw = service.encode()
        request = (b"\x0a" + _varint(len(raw)) + raw) if raw else b""
        reply = _call(check, request, timeout=self.timeout)
        return _HEALTH.get(_read_status(reply), "UNKNOWN")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_status(reply: bytes) -> int:
    # HealthCheckResponse { ServingStatus status = 1; }: tag 0x08 then a varint; absent means UNKNOWN (0).
    if len(reply) >= 2 and reply[0] == 0x08:
        return reply[1]
    return 0
