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

The generated gRPC stubs live in sampled.v1 (built by CMake, not committed).
"""

from sampled.client import Client, Job, SampledError, Session

__all__ = ["Client", "Job", "SampledError", "Session"]
__version__ = "0.1.0"
