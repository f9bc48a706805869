"""The GPU check: on a CUDA machine, run the tests marked `cuda`, then the training (and hint)
benchmarks, eager and --compile, and write every figure to one JSON file. Without a GPU it says so and exits 0.

    python scripts/gpu_check.py --out gpu_check.json        # or: make gpu-check
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from depth_hints.errors import run_entry_point  # noqa: E402


def _run(cmd: list[str], timeout: int) -> dict:
    """Run a command from the repository root; its exit code, seconds and output tail."""
    start = time.time()
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONPATH": ROOT})
        code, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        code, out = 124, f"timed out after {timeout} s\n{e.stdout or ''}"
    return {"cmd": " ".join(cmd[1:]), "returncode": code, "seconds": round(time.time() - start, 1),
            "output_tail": out[-4000:]}


def _benchmark_train(extra: list[str], nproc: int, timeout: int) -> dict:
    """One benchmark_train.py configuration (under torchrun when nproc > 1) -> its JSON figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        script = [os.path.join(ROOT, "scripts", "benchmark_train.py"), "--json", out, *extra]
        launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
                    if nproc > 1 else [sys.executable])
        result = _run(launcher + script, timeout)
        if os.path.isfile(out):
            with open(out) as f:
                result["figures"] = json.load(f)
    return result


def hint_checks(timeout: int) -> dict:
    """Hint precompute on this machine: the GPU pick against the CPU's (agreement up to
    near-ties, seconds per frame, peak GPU memory at two frame sizes, the pipeline both ways;
    scripts/benchmark_pick_device.py), then the CPU pipeline's benchmark."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "pick.json")
        pick = _run([sys.executable, os.path.join(ROOT, "scripts", "benchmark_pick_device.py"),
                     "--frames", "4", "--json", out], timeout)
        if os.path.isfile(out):
            with open(out) as f:
                pick["figures"] = json.load(f)
    return {"pick_device": pick,
            "benchmark_hints": _run([sys.executable, os.path.join(ROOT, "scripts", "benchmark_hints.py"),
                                     "--frames", "4", "--repeats", "1"], timeout)}


def compile_checks(bf16: bool, timeout: int) -> dict:
    """--compile against eager at 640x192, batch 12, stereo + hints, one run per precision
    (float32, bf16 where supported, fp16): each run times the compiled and the eager step
    interleaved, both over the networks floor, the objective alone, the compile time and the
    steps to pay it back (scripts/benchmark_train.py --compile)."""
    size = ["--compile", "--height", "192", "--width", "640", "--batch_size", "12"]
    precisions = {"fp32": [], "fp16": ["--fp16"]}
    if bf16:
        precisions["bf16"] = ["--bf16"]
    return {name: _benchmark_train(size + extra, 1, timeout) for name, extra in precisions.items()}


def main(argv=None) -> int:
    """Run the GPU checks; a project error is one line on stderr and exit code 2."""
    return run_entry_point(lambda: _main(argv), "gpu_check.py")


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="gpu_check.json", help="where the figures go (JSON)")
    p.add_argument("--skip_benchmarks", action="store_true", help="only the tests marked cuda")
    p.add_argument("--timeout", type=int, default=900, help="seconds per step of the check")
    args = p.parse_args(argv)

    import torch
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA GPU visible; nothing to check (the CPU suite is `make test`)")
        return 0
    n = torch.cuda.device_count()
    report = {"gpus": [torch.cuda.get_device_name(i) for i in range(n)], "torch": torch.__version__,
              "cuda": torch.version.cuda, "bf16": torch.cuda.is_bf16_supported()}
    report["tests"] = _run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests"], args.timeout)
    if not args.skip_benchmarks:
        bench = {"fp32": _benchmark_train([], 1, args.timeout),
                 "fp16": _benchmark_train(["--fp16"], 1, args.timeout)}
        if report["bf16"]:
            bench["bf16"] = _benchmark_train(["--bf16"], 1, args.timeout)
        if n > 1:
            bench[f"ddp_{n}_gpus_fp32"] = _benchmark_train([], n, args.timeout)
        report["benchmark_train"] = bench
        report["benchmark_train_compile"] = compile_checks(report["bf16"], args.timeout)
        report["hints"] = hint_checks(args.timeout)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2)
    os.replace(tmp, args.out)
    failed = report["tests"]["returncode"] != 0
    print(f"gpu-check: {n} GPU(s) {', '.join(sorted(set(report['gpus'])))}; cuda tests "
          f"{'FAILED' if failed else 'passed'}; figures in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
