"""Inference speed of the depth network (encoder + decoder, finest disparity) per backend:
eager PyTorch float32 (channels_last off / on), TorchScript (traced), ONNX Runtime (CPU
provider, and CUDA where present), and eager CUDA where present; ResNet18 / ResNet50, 640x192 /
1024x320, batch 1 / 8, all in one run.

    python scripts/benchmark_inference.py            # the full table (a few minutes on 2 cores)
    python scripts/benchmark_inference.py --quick    # ResNet18, 640x192 only, fewer repeats

Prints ms per image, images/s and the speed-up over eager float32 (channels_last off) of the
same row group: compare within a group, since shared machines move absolute timings. Weights
are random (speed does not depend on them); the output of every backend is checked against
eager to 1e-4 before it is timed. ``--json PATH`` also writes the rows.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import networks  # noqa: E402
from depth_hints.errors import run_entry_point  # noqa: E402
from depth_hints.export import DepthGraph, ExportMetadata, onnx_bytes, torchscript_module  # noqa: E402
from depth_hints.options import OptionsError  # noqa: E402


RESNET_DEPTHS = (18, 34, 50, 101, 152)  # --num_layers' choices in training


def build_graph(num_layers: int) -> DepthGraph:
    """A randomly initialised encoder + decoder of this depth, eval mode."""
    torch.manual_seed(0)
    encoder = networks.ResnetEncoder(num_layers, False)
    return DepthGraph(encoder, networks.DepthDecoder(encoder.num_ch_enc)).eval()


def time_interleaved(runs: list, min_repeats: int, budget_s: float) -> tuple[list, list[float]]:
    """Run each ``runs[i]()`` once (warm-up; its output is returned for the parity check), then
    time them with the backends taking turns (so load from other processes falls on all
    alike): at least ``min_repeats`` rounds, more while the time budget per backend lasts (at
    most 20 rounds). Returns (warm-up outputs, median seconds per backend)."""
    outputs = [run() for run in runs]
    times: list[list[float]] = [[] for _ in runs]
    start = time.perf_counter()
    while len(times[0]) < min_repeats or (
            time.perf_counter() - start < budget_s * len(runs) and len(times[0]) < 20):
        for run, spent in zip(runs, times):
            t0 = time.perf_counter()
            run()
            spent.append(time.perf_counter() - t0)
    return outputs, [statistics.median(t) for t in times]


def backends(graph: DepthGraph, height: int, width: int, cuda: bool):
    """Yield (name, make) where make(images numpy [B,3,H,W]) -> run() returning disp numpy."""
    metadata = ExportMetadata(height=height, width=width, dynamic_size=False, metric_scale_factor=5.4,
                              min_depth=0.1, max_depth=100.0, use_stereo=None,
                              num_layers=graph.encoder.num_layers, outputs=("disp",), training_options={})

    def eager(module, channels_last: bool, device: str):
        module = module.to(device)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)

        def make(images):
            x = torch.from_numpy(images).to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)

            def run():
                with torch.inference_mode():
                    out = module(x)
                if device == "cuda":
                    torch.cuda.synchronize()
                return out.float().cpu().numpy()
            return run
        return make

    yield "eager fp32", eager(graph, False, "cpu")
    yield "eager fp32 channels_last", eager(graph, True, "cpu")
    yield "torchscript", eager(torchscript_module(graph, metadata), False, "cpu")
    try:
        import onnxruntime as ort
    except ImportError:
        print("(onnxruntime not installed: no ONNX Runtime rows; pip install -e .[export])")
        return
    model = onnx_bytes(graph, metadata)
    providers = [("onnxruntime CPU", "CPUExecutionProvider")]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.append(("onnxruntime CUDA", "CUDAExecutionProvider"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the same CPU budget as torch
    for name, provider in providers:
        session = ort.InferenceSession(model, options, providers=[provider])

        def make(images, session=session):
            return lambda: session.run(None, {"image": images})[0]
        yield name, make
    if cuda:
        yield "eager fp32 CUDA", eager(graph, False, "cuda")
        yield "eager fp32 channels_last CUDA", eager(graph, True, "cuda")


def main(argv=None) -> int:
    """Time inference; a bad input is one line on stderr and exit code 2."""
    return run_entry_point(lambda: _main(argv), "benchmark_inference.py")


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="ResNet18 at 640x192 only, fewer repeats")
    p.add_argument("--num_layers", type=int, nargs="+", default=None, help="ResNet depths (18 50)")
    p.add_argument("--batch_sizes", type=int, nargs="+", default=None, help="batch sizes (1 8)")
    p.add_argument("--budget_s", type=float, default=None, help="timing budget per cell (s)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch and ONNX Runtime alike (default: torch's default)")
    p.add_argument("--json", type=str, default=None, help="also write the rows here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    layers = args.num_layers or ([18] if args.quick else [18, 50])
    wrong = [n for n in layers if n not in RESNET_DEPTHS]
    if wrong:
        raise OptionsError(f"--num_layers {wrong[0]}: ResNet depths are "
                           f"{', '.join(map(str, RESNET_DEPTHS))}.")
    sizes = [(192, 640)] if args.quick else [(192, 640), (320, 1024)]
    batches = args.batch_sizes or [1, 8]
    budget = args.budget_s if args.budget_s is not None else (0.5 if args.quick else 1.5)
    min_repeats = 2 if args.quick else 3
    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CUDA: {cuda}, "
          f"cpu count {os.cpu_count()}")
    rows = []
    header = f"| {'model':8} | {'size':9} | {'batch':5} | {'backend':32} | {'ms/image':>9} | {'images/s':>8} | {'vs eager':>8} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    rng = np.random.default_rng(0)
    for num_layers in layers:
        graph = build_graph(num_layers)
        for height, width in sizes:
            made = list(backends(graph, height, width, cuda))
            for batch in batches:
                images = rng.random((batch, 3, height, width), dtype=np.float32)
                outputs, seconds = time_interleaved([make(images) for _, make in made], min_repeats, budget)
                diffs = [float(np.abs(out - outputs[0]).max()) for out in outputs]
                for (name, _), diff in zip(made, diffs):
                    if diff > 1e-4:
                        print(f"  ! {name} differs from eager by {diff:.2e}")
                floor = 1000.0 * seconds[0] / batch
                for (name, _), diff, sec in zip(made, diffs, seconds):
                    ms = 1000.0 * sec / batch
                    row = dict(model=f"ResNet{num_layers}", size=f"{width}x{height}", batch=batch,
                               backend=name, ms_per_image=round(ms, 2),
                               images_per_s=round(1000.0 / ms, 2), speedup=round(floor / ms, 2),
                               max_abs_diff=diff)
                    rows.append(row)
                    print(f"| {row['model']:8} | {row['size']:9} | {batch:5} | {name:32} | {ms:9.1f} | "
                          f"{row['images_per_s']:8.2f} | {row['speedup']:7.2f}x |", flush=True)
    cpu = [r for r in rows if "CUDA" not in r["backend"]]
    wins: dict[str, list[float]] = {}
    for key in {(r["model"], r["size"], r["batch"]) for r in cpu}:
        group = [r for r in cpu if (r["model"], r["size"], r["batch"]) == key]
        best = min(group, key=lambda r: r["ms_per_image"])
        wins.setdefault(best["backend"], []).append(best["speedup"])
    for backend, speedups in sorted(wins.items(), key=lambda kv: -len(kv[1])):
        print(f"fastest on CPU in {len(speedups)} of {sum(len(v) for v in wins.values())} groups: "
              f"{backend} ({min(speedups):.2f}x-{max(speedups):.2f}x eager fp32)")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rows, f, indent=2)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
