"""One short GPU script for the fused kernels: correctness against PyTorch at large sizes,
then fwd+bwd time, achieved bandwidth (by the traffic model) against a measured copy.

    python -m harness.kernels.microbench            # CUDA: the real check (~1-2 minutes)
    TRITON_INTERPRET=1 python -m harness.kernels.microbench --smoke   # CPU: tiny, untimed

Traffic model `fused_bytes` (bytes per call, fwd + bwd with 'mean' and an upstream
gradient of 1, as timed here; P positions, C classes, b logit bytes, t target bytes): what
the fused kernels move, so re-reads (the second class pass when C > one block) count
against the kernel: fused_triton 2·P·C·b + 2·P·t (W's pre-pass over the targets, then one
pass writing the final gradient; the backward moves nothing); inverse-frequency variant
2·P·b + 2·P·t (the positive count's pre-pass, then the same). It is not the reports' model
(`harness.benchmark.traffic.min_bytes`, the least any implementation must move), so this
script's "% of peak" and a report's are not comparable; rows say which they use.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
import torch.nn.functional as F


def fused_bytes(positions: int, classes: int, logit_bytes: int, target_bytes: int) -> int:
    """Bytes one fused fwd+bwd call moves under 'mean' with an upstream gradient of 1
    (module docstring): the targets read twice (pre-pass, forward), the logits read once
    and the final gradient written once; the backward only reads g."""
    return 2 * positions * classes * logit_bytes + 2 * positions * target_bytes


def _time_ms(fn, reps: int) -> float:
    """Median milliseconds of ``fn`` with CUDA events (L2 flushed by triton.testing)."""
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=25, rep=reps, return_mode="median"))


def copy_bandwidth(device: str) -> float:
    """Measured device copy bandwidth, bytes/s (read + write of a 1 GiB buffer)."""
    src = torch.empty(1 << 28, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    ms = _time_ms(lambda: dst.copy_(src), 200)
    return 2 * src.numel() * 4 / (ms * 1e-3)


def _fwd_bwd(fn, x, *args, **kw):
    def run():
        leaf = x.detach().requires_grad_()
        fn(leaf, *args, **kw).backward()
    return run


def multiclass_rows(shapes, dtype, device, reps, smoke):
    from harness.kernels.xent import cross_entropy

    out = []
    for n, c, hw in shapes:
        x = torch.randn(n, c, *hw, device=device, dtype=dtype)
        y = torch.randint(0, c, (n, *hw), device=device)
        w = torch.rand(c, device=device, dtype=dtype)
        a = x.detach().requires_grad_()
        la = cross_entropy(a, y, weight=w)
        la.backward()
        b = x.detach().float().requires_grad_()
        lb = F.cross_entropy(b, y, weight=w.float())
        lb.backward()
        row = {"kernel": "fused_triton", "shape": [n, c, *hw], "dtype": str(dtype),
               "loss_err": abs(float(la) - float(lb)),
               "grad_err": float((a.grad.float() - b.grad).abs().max())}
        if not smoke:
            positions = y.numel()
            traffic = fused_bytes(positions, c, x.element_size(), y.element_size())
            row["ms"] = _time_ms(_fwd_bwd(cross_entropy, x, y, weight=w), reps)
            row["eager_ms"] = _time_ms(_fwd_bwd(F.cross_entropy, x, y, weight=w), reps)
            row["traffic_bytes"] = traffic
            row["traffic_model"] = "fused_bytes"
            row["bw_bytes_per_s"] = traffic / (row["ms"] * 1e-3)
        out.append(row)
    return out


def binary_rows(shapes, dtype, device, reps, smoke, p=0.05):
    from harness.kernels.bce import inverse_freq

    out = []
    for n, hw in shapes:
        x = torch.randn(n, 1, *hw, device=device, dtype=dtype)
        y8 = (torch.rand(n, *hw, device=device) < p).to(torch.uint8)
        a = x.detach().requires_grad_()
        la = inverse_freq(a, y8, normalize="weights")
        la.backward()
        stacked = torch.cat([torch.zeros_like(x), x], 1).float().requires_grad_()
        counts = torch.bincount(y8.reshape(-1).long(), minlength=2).double()
        w = (counts / counts.sum()).flip(0).to(dtype).float()
        lb = F.cross_entropy(stacked, y8.long(), weight=w)
        lb.backward()
        row = {"kernel": "inverse_freq", "shape": [n, 1, *hw], "dtype": str(dtype),
               "loss_err": abs(float(la) - float(lb)),
               "grad_err": float((a.grad.float() - stacked.grad[:, 1:]).abs().max())}
        if not smoke:
            positions = y8.numel()
            row["ms"] = _time_ms(_fwd_bwd(inverse_freq, x, y8, normalize="weights"), reps)
            two = torch.cat([torch.zeros_like(x), x], 1)
            y64 = y8.long()
            row["two_class_eager_ms"] = _time_ms(
                _fwd_bwd(F.cross_entropy, two, y64, weight=w.to(dtype)), reps)
            row["traffic_bytes"] = fused_bytes(positions, 1, x.element_size(), y8.element_size())
            row["traffic_model"] = "fused_bytes"
            row["bw_bytes_per_s"] = row["traffic_bytes"] / (row["ms"] * 1e-3)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny shapes, no timing (CPU)")
    ap.add_argument("--reps", type=int, default=200, help="do_bench rep budget in ms")
    args = ap.parse_args(argv)
    from harness.kernels import unavailable_reason

    if why := unavailable_reason():
        print(f"fused kernels unavailable: {why}", file=sys.stderr)
        return 2
    device = "cpu" if args.smoke else "cuda"
    if args.smoke:
        mc, bn = [(3, 423, ()), (2, 5, (4, 3))], [(2, (8, 8))]
    else:
        mc = [(64, 2, (1024, 1024)), (16, 19, (512, 512)), (8192, 32000, ())]
        bn = [(64, (1024, 1024)), (16, (512, 512))]
    rows = []
    for dtype in (torch.bfloat16, torch.float32):
        rows += multiclass_rows(mc, dtype, device, args.reps, args.smoke)
        rows += binary_rows(bn, dtype, device, args.reps, args.smoke)
    report = {"rows": rows}
    if not args.smoke:
        bw = copy_bandwidth(device)
        report["copy_bw_bytes_per_s"] = bw
        report["device"] = torch.cuda.get_device_name()
        for r in rows:
            r["peak_bw_pct"] = 100 * r["bw_bytes_per_s"] / bw
    print("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in report.items()
                             if k != "rows"))
    print(' "rows": [\n' + ",\n".join("  " + json.dumps(r) for r in rows) + "]\n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
