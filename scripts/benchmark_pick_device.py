"""The per-pixel pick on a GPU against the CPU's: agreement, seconds per frame, peak GPU memory.

    python scripts/benchmark_pick_device.py                    # synthetic KITTI-size pairs, CUDA
    python scripts/benchmark_pick_device.py --device cpu       # the one-picker path on the CPU
    python scripts/benchmark_pick_device.py --json pick.json   # also write the figures

For each pair (skimage's Middlebury motorcycle and procedural scenes from benchmark_hints.py,
resized to each --sizes WxH) the matcher bank runs once on the CPU; then the candidates are
picked as a CPU worker does (``fused_sgm.CPU_TILE``, tied candidates skipped) and as the one
picker does on --device (``fused_sgm.DEVICE_TILE``, every candidate). Reported per size:
  differing_pixels   fraction of pixels whose winner differs
  max_error_gap      over those pixels, the largest difference of the two winners' photometric
                     errors, both computed on the CPU (a near-tie: within the tolerance below)
  cpu_s, device_s    median seconds per frame of the two picks, one torch thread as in a
                     worker (device: after a warm-up, synchronised)
  peak_device_mb     the device's peak allocated memory during one pick (CUDA only): bounded
                     by the tile, so it grows with the frame's own tensors, not with the tiles
Then precompute() end to end (--num_workers 0) with the CPU workers' pick and with the one
picker on --device, on the same frames at the first size: seconds per frame and the smallest
fraction of equal hint pixels in a frame.
Compare figures of the same run only (the CPU side is shared with whatever else runs).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_hints import real_pair, synthetic_pair, write_dataset  # noqa: E402

from depth_hints import fused_sgm, hint_files, precompute  # noqa: E402
from depth_hints.losses import photometric_error  # noqa: E402
from depth_hints.errors import run_entry_point  # noqa: E402
from depth_hints.options import parse_precompute, parse_size  # noqa: E402

#: the tolerance of "equal up to near-ties": where the two picks differ, their winners'
#: photometric errors (computed on the CPU; errors lie in [0, 1]) are at most this far apart
TIE_TOLERANCE = 1e-4


def candidate_errors(target: np.ndarray, other: np.ndarray, candidates: np.ndarray,
                     side: str) -> np.ndarray:
    """Photometric error [N,H,W] of every candidate on the CPU, whole image at once.
    target, other: [H,W,3] float32 in [0, 1]; candidates [N,H,W] disparities (pixels)."""
    to_chw = lambda image: torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    with torch.inference_mode():
        warped = fused_sgm.warp_horizontal(to_chw(other), torch.from_numpy(candidates), side)
        return photometric_error(warped, to_chw(target)[None])[:, 0].numpy()


def agreement(errors: np.ndarray, winner_a: np.ndarray, winner_b: np.ndarray) -> dict:
    """Fraction of pixels whose winners differ and the largest error gap between them there."""
    differ = winner_a != winner_b
    gap = 0.0
    if differ.any():
        picked = lambda w: np.take_along_axis(errors, w[None], 0)[0]
        gap = float(np.abs(picked(winner_a) - picked(winner_b))[differ].max())
    return {"differing_pixels": float(differ.mean()), "max_error_gap": gap}


def _timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, out


def compare_picks(pairs, device: torch.device) -> dict:
    """CPU worker pick vs the one picker on ``device`` over (target, other, side) uint8 pairs."""
    keep = fused_sgm.distinct_indices(True)
    rows = []
    for index, (target, other, side) in enumerate(pairs):
        candidates = fused_sgm.match_view(target, other, side)[keep]
        t, o = target.astype(np.float32) / 255.0, other.astype(np.float32) / 255.0
        cpu_s, (_, cpu_winner) = _timed(lambda: fused_sgm.fuse_candidates(
            t, o, candidates, side, tile=fused_sgm.CPU_TILE, skip_tied=True), torch.device("cpu"))

        def on_device():
            return fused_sgm.fuse_candidates(t, o, candidates, side, tile=fused_sgm.DEVICE_TILE,
                                             device=device, skip_tied=False)
        if index == 0:
            on_device()  # warm-up: CUDA context, kernels
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        device_s, (_, device_winner) = _timed(on_device, device)
        row = {"cpu_s": cpu_s, "device_s": device_s,
               **agreement(candidate_errors(t, o, candidates, side), cpu_winner, device_winner)}
        if device.type == "cuda":
            row["peak_device_mb"] = (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
        rows.append(row)
    out = {"frames": len(rows), "candidates": len(keep),
           "differing_pixels": max(r["differing_pixels"] for r in rows),
           "max_error_gap": max(r["max_error_gap"] for r in rows),
           "within_tolerance": all(r["max_error_gap"] <= TIE_TOLERANCE for r in rows),
           "cpu_s": statistics.median(r["cpu_s"] for r in rows),
           "device_s": statistics.median(r["device_s"] for r in rows)}
    if device.type == "cuda":
        out["peak_device_mb"] = max(r["peak_device_mb"] for r in rows)
    return out


def compare_pipelines(root: Path, split: Path, width: int, height: int, device: str) -> dict:
    """precompute() with the CPU workers' pick and with the one picker on ``device`` ('cpu' or
    'cuda'): seconds per frame, and the smallest fraction of equal hint pixels in a frame."""
    out, hints = {}, {}
    for name, pick_device, one_picker in (("workers", "cpu", False), ("picker", device, True)):
        save = root / f"hints_{name}"
        argv = ["--data_path", str(root / "data"), "--filenames", str(split), "--png", "--height",
                str(height), "--width", str(width), "--num_workers", "0", "--save_path",
                str(save), "--overwrite_saved_depths", "--pick_device", pick_device]
        summary = precompute.precompute(parse_precompute(argv), progress=False, verbose=False,
                                        one_picker=one_picker)
        out[f"{name}_s_per_frame"] = summary.seconds / max(summary.total, 1)
        out[f"{name}_parallelism"] = summary.parallelism
        hints[name] = [hint_files.load_hint(str(p)) for p in sorted(save.rglob("*.npy"))]
    equal = [np.mean(a == b) for a, b in zip(hints["workers"], hints["picker"])]
    out["equal_hint_pixels"] = float(min(equal)) if equal else None
    return out


def main(argv=None) -> int:
    """Compare the picks; a bad input is one line on stderr and exit code 2."""
    return run_entry_point(lambda: _main(argv), "benchmark_pick_device.py")


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="the picker's device: cuda (default), cpu")
    p.add_argument("--frames", type=int, default=4, help="pairs per size")
    p.add_argument("--sizes", nargs="+", default=["1024x320", "2048x640"], help="WxH sizes")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)
    sizes = [parse_size(size, "--sizes") for size in args.sizes]
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("benchmark_pick_device: no CUDA GPU visible; try --device cpu")
        return 0
    cv2.setNumThreads(1)
    torch.set_num_threads(1)  # as in a worker; the pick's small CPU tiles do worst with more
    originals = [real_pair()] + [synthetic_pair(seed) for seed in range(1, args.frames)]
    report = {"device": str(device), "tie_tolerance": TIE_TOLERANCE,
              "device_tile": list(fused_sgm.DEVICE_TILE), "sizes": {}}
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    for size, (width, height) in zip(args.sizes, sizes):
        pairs = []
        for index, (left, right) in enumerate(originals):
            left, right = (cv2.resize(v, (width, height), interpolation=cv2.INTER_AREA)
                           for v in (left, right))
            pairs.append((left, right, "l") if index % 2 == 0 else (right, left, "r"))
        report["sizes"][size] = compare_picks(pairs, device)
        print(f"{size}: {json.dumps(report['sizes'][size])}")
    with tempfile.TemporaryDirectory(prefix="pick_device_") as tmp:
        tmp = Path(tmp)
        split = write_dataset(tmp / "data", args.frames)
        width, height = sizes[0]
        report["pipeline"] = compare_pipelines(tmp, split, width, height, device.type)
        print(f"pipeline {args.sizes[0]}: {json.dumps(report['pipeline'])}")
    if args.json:
        tmp_path = args.json + ".tmp"
        with open(tmp_path, "w") as f:
            json.dump(report, f, indent=2)
        os.replace(tmp_path, args.json)
    ok = all(r["within_tolerance"] for r in report["sizes"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
