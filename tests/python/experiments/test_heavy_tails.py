"""003 App. A.3 in our terms: heavy tails through a TorchScript target. A 1-D Student-t (nu = 3) log density
is scripted here, uploaded, and KL- and Fisher-trained samplers draw 10^5 points each; their 1st/5th/95th/
99th percentiles are compared with the exact quantiles (scipy, a dependency of Debian's python3-sklearn).

Asserted: KL within 10% of each exact percentile and its median within 0.05 of 0; Fisher (003 needed
annealing here) within 25%.
"""

import io

import numpy as np
import pytest
import torch

stats = pytest.importorskip("scipy.stats")

class StudentT(torch.nn.Module):
    def __init__(self, nu: float):
        super().__init__()
        self.nu = nu

    def forward(self, x):
        return -(self.nu + 1.0) / 2.0 * torch.log1p(x[:, 0] ** 2 / self.nu)


def test_student_t_percentiles(ts_client):
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(StudentT(3.0)), buf)
    target = ts_client.upload_model("student-t3", buf.getvalue(), dim=1)
    levels = [1, 5, 95, 99]
    exact = stats.t(3).ppf(np.array(levels) / 100)
    rows, bounds = {}, {"kl": 0.10, "fisher": 0.25}
    for method in ("kl", "fisher"):
        job = ts_client.train(target, method, steps=4000, hidden=[64, 64, 64], batch=1000, lr=1e-3, score_steps=5,
                              seed=1)
        job.wait()
        draws = job.sampler().sample(100000, seed=2)[:, 0]
        rows[method] = (np.percentile(draws, levels), float(np.median(draws)))
    print("\n003 App. A.3 in our terms: Student-t (nu = 3), 10^5 draws, 4000 iterations, 3 x 64 ELU, batch 1000")
    names = {1: "1st", 5: "5th", 95: "95th", 99: "99th"}
    print("| | " + " | ".join(names[q] for q in levels) + " | median |")
    print("| --- |" + " --- |" * (len(levels) + 1))
    print("| exact | " + " | ".join(f"{v:.3f}" for v in exact) + " | 0.000 |")
    for method, (pct, median) in rows.items():
        print(f"| {method} | " + " | ".join(f"{v:.3f} ({(v - e) / abs(e):+.1%})" for v, e in zip(pct, exact))
              + f" | {median:+.3f} |")
    for method, (pct, median) in rows.items():
        rel = np.abs(pct - exact) / np.abs(exact)
        assert rel.max() <= bounds[method], (method, pct, exact)
    assert abs(rows["kl"][1]) <= 0.05, rows["kl"]
