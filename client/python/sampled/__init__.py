"""Python client of the sampled sampling service.

    import numpy as np
    import sampled

    client = sampled.Client("127.0.0.1:50051")
    client.create_session("demo")
    target = client.upload_target("data", np.random.randn(1000, 2))
    job = client.start_flow(target, "sd", particles=500, steps=300, eval_every=50)
    final = job.wait()
    x = job.particles()
    print(client.evaluate(target, samples=x, metrics=["mmd", "cfd"]))

    mog = client.define_target("mog2", "mixture", dim=2)
    sampler = client.train(mog, "kl", steps=2000, batch=500, hidden=[128] * 3, lr=1e-3).sampler()
    draws = sampler.sample(1000, seed=0)
    sampler.export("mog2.sampler")
    local = sampled.load_sampler("mog2.sampler").sample(1000, seed=0)   # numpy only

The generated gRPC stubs live in sampled.v1 (built by CMake, not committed).
"""

from sampled.client import Client, Job, SampledError, Sampler, Session, StepFailed
from sampled.sampler_file import LocalSampler, load_sampler

__all__ = ["Client", "Job", "LocalSampler", "SampledError", "Sampler", "Session", "StepFailed", "load_sampler"]
__version__ = "0.1.0"
