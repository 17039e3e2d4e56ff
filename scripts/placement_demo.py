"""Where a tensor lands in memory moves a memory-bound loss: the same fwd_bwd of
F.cross_entropy on 2 × 4 × 32 × 64 × 64 float32 logits, single-threaded, on eight fresh
copies of the inputs allocated in one process (each kept alive, so each lands elsewhere),
30 timed calls each. Prints the eight medians. Why the benchmarks run their rounds in
blocks on fresh copies (harness.benchmark.step.Replicates). Usage: python scripts/placement_demo.py"""

import time

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
alive, medians = [], []
for _ in range(8):
    x = torch.randn(2, 4, 32, 64, 64, requires_grad=True)
    y = torch.randint(0, 4, (2, 32, 64, 64))
    alive.append((x, y))
    times = []
    for i in range(32):
        x.grad = None
        start = time.perf_counter()
        F.cross_entropy(x, y).backward()
        if i >= 2:  # two untimed calls: first-touch page faults
            times.append(time.perf_counter() - start)
    medians.append(np.median(times) * 1e3)
print("medians (ms):", " ".join(f"{m:.2f}" for m in medians),
      f"| max/min {max(medians) / min(medians):.2f}")
