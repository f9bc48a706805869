"""Benchmark the depth-hint precompute: seconds per frame of the whole pipeline and of the bare
SGBM bank on the same frames, at 1024x320 and 640x192.

    python scripts/benchmark_hints.py                      # synthetic KITTI-size pairs
    python scripts/benchmark_hints.py --data_path kitti_data --filenames some_files.txt

Without --data_path it writes a KITTI-raw-layout folder of 1242x375 stereo pairs to a temporary
directory: frame 0 is skimage's real Middlebury "motorcycle" pair (stretched to KITTI size), the
others are procedural scenes (skimage textures on a slanted ground, far background and boxes).
Rows printed:
  sgbm12 1 thread    the 12 matchers of the paper, one after the other, images already loaded
  sgbm8  1 thread    the 8 distinct ones (blockSize 3 = blockSize 2 in OpenCV)
  sgbm8  all cores   the 8 distinct ones, frames spread over every core: the pipeline's floor
  pipeline ...       precompute() end to end (load, match, fuse, save), wall clock / frames;
                     for worker pools also without the pool's start-up (measured by a run
                     that only finds existing hints). Imports and the forkserver are warmed
                     up before timing; each row is the best of --repeats runs.
"cpu" is CPU seconds per frame (all threads of the bare runs; for the pipeline, the thread or
worker process that did each frame): on a shared machine a steadier measure of the work than
wall clock. --num_workers is capped to the cores. Compare rows of the same run.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from datasets.registry import make_layout
from depth_hints import fused_sgm, images, precompute
from depth_hints.errors import run_entry_point
from depth_hints.options import OptionsError, parse_precompute, parse_size
from depth_hints.splits import read_split_file

FOLDER = "benchmark/benchmark_drive_0001_sync"
KITTI_HEIGHT, KITTI_WIDTH = 375, 1242


def _colour_texture(height, width, rng):
    import skimage.data
    sources = [skimage.data.gravel(), skimage.data.grass(), skimage.data.brick(),
               cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY),
               cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2GRAY)]
    channels = []
    for _ in range(3):
        image = sources[rng.integers(len(sources))]
        image = cv2.resize(image, (max(width, 512), max(height, 512)),
                           interpolation=cv2.INTER_LINEAR)
        r = rng.integers(0, image.shape[0] - height + 1)
        c = rng.integers(0, image.shape[1] - width + 1)
        channels.append(image[r:r + height, c:c + width])
    return np.stack(channels, -1)


def synthetic_pair(seed, height=KITTI_HEIGHT, width=KITTI_WIDTH):
    """A procedural rectified pair: (left, right) uint8 RGB [H,W,3]."""
    rng = np.random.default_rng(seed)
    margin = 160
    horizon = height * 2 // 5
    rows = np.arange(height)
    layers = [(np.full(height, 3.0), np.ones((height, width + margin), bool))]  # far background
    ground = np.where(rows > horizon, 3.0 + 90.0 * (rows - horizon) / (height - horizon), 0.0)
    layers.append((ground, np.repeat((rows > horizon)[:, None], width + margin, 1)))
    for _ in range(4):  # boxes at constant disparity
        d = float(rng.uniform(8, 60))
        mask = np.zeros((height, width + margin), bool)
        r0 = int(rng.integers(horizon - 80, horizon + 20))
        c0 = int(rng.integers(0, width - 200))
        mask[r0:r0 + int(rng.integers(60, 160)), c0:c0 + int(rng.integers(80, 260))] = True
        layers.append((np.full(height, d), mask))
    left = np.zeros((height, width, 3), np.uint8)
    right = np.zeros_like(left)
    xs = np.arange(width)
    for disparity, mask in layers:
        texture = _colour_texture(height, width + margin, rng)
        left = np.where(mask[:, :width, None], texture[:, :width], left)
        source = np.clip(np.round(xs[None] + disparity[:, None]).astype(int), 0, width + margin - 1)
        seen = np.take_along_axis(mask, source, 1)
        sampled = np.take_along_axis(texture, source[..., None].repeat(3, 2), 1)
        right = np.where(seen[..., None], sampled, right)
    return left, right


def real_pair(height=KITTI_HEIGHT, width=KITTI_WIDTH):
    """skimage's Middlebury motorcycle pair, resized to KITTI size: (left, right) uint8 RGB."""
    import skimage.io
    from skimage.data import data_dir
    pair = [skimage.io.imread(os.path.join(data_dir, f"motorcycle_{s}.png"))[..., :3]
            for s in ("left", "right")]
    return tuple(cv2.resize(p, (width, height), interpolation=cv2.INTER_AREA) for p in pair)


def write_dataset(root: Path, frames: int) -> Path:
    """KITTI-raw-layout folder of ``frames`` pairs, alternating l/r targets; returns the split."""
    lines = []
    for index in range(frames):
        left, right = real_pair() if index == 0 else synthetic_pair(index)
        for cam, image in (("image_02", left), ("image_03", right)):
            path = root / FOLDER / cam / "data" / f"{index:010d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), image[..., ::-1])
        lines.append(f"{FOLDER} {index} {'lr'[index % 2]}\n")
    split = root / "benchmark_files.txt"
    split.write_text("".join(lines))
    return split


def bare_sgbm(pairs, skip_duplicates, threads):
    """(wall s/frame, cpu s/frame, outputs) of the matcher bank alone (images already loaded
    and resized)."""
    cv2.setNumThreads(1)

    def one(pair):
        target, other, side = pair
        return fused_sgm.match_view(target, other, side, skip_duplicates=skip_duplicates)

    start, cpu = time.perf_counter(), time.process_time()
    if threads == 1:
        outputs = [one(p) for p in pairs]
    else:
        with ThreadPoolExecutor(threads) as pool:
            outputs = list(pool.map(one, pairs))
    n = len(pairs)
    return (time.perf_counter() - start) / n, (time.process_time() - cpu) / n, outputs


def pipeline(data_path, split, save, height, width, png, workers, threads=None, overwrite=True):
    """(wall s/frame, CPU s/frame of the threads that did the frames, mean coverage)."""
    argv = ["--data_path", str(data_path), "--filenames", str(split), "--height", str(height),
            "--width", str(width), "--num_workers", str(workers), "--save_path", str(save),
            "--no_cuda"]
    if overwrite:
        argv.append("--overwrite_saved_depths")
    if png:
        argv.append("--png")
    summary = precompute.precompute(parse_precompute(argv), progress=False, verbose=False,
                               threads=threads)
    if not summary.ok:
        raise SystemExit(f"precompute failed: {summary.format()}")
    return summary.seconds / summary.total, summary.cpu_seconds_per_frame, summary.mean_coverage


def main(argv=None) -> int:
    """Time the hint pipeline; a bad input is one line on stderr and exit code 2."""
    return run_entry_point(lambda: _main(argv), "benchmark_hints.py")


def _main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_path", default=None, help="KITTI raw folder (default: synthetic pairs)")
    p.add_argument("--filenames", default=None, help="split file to time (with --data_path)")
    p.add_argument("--png", action="store_true", help="images are .png (with --data_path)")
    p.add_argument("--frames", type=int, default=8, help="frames to time (synthetic or first N)")
    p.add_argument("--sizes", nargs="+", default=["1024x320", "640x192"], help="WxH sizes")
    p.add_argument("--num_workers", nargs="+", type=int, default=None,
                   help="worker counts to time (default: cores and 12, the flag's default)")
    p.add_argument("--repeats", type=int, default=2, help="runs per row; the fastest is shown")
    args = p.parse_args(argv)
    sizes = [parse_size(size, "--sizes") for size in args.sizes]
    if bool(args.data_path) != bool(args.filenames):
        raise OptionsError("--data_path and --filenames go together (a KITTI raw folder and the "
                           "split file of the frames to time); pass both or neither.")
    cores = os.cpu_count() or 1
    worker_counts = args.num_workers or sorted({cores, 12})

    with tempfile.TemporaryDirectory(prefix="hints_benchmark_") as tmp:
        tmp = Path(tmp)
        if args.data_path:
            data_path, png = Path(args.data_path), args.png
            samples = read_split_file(args.filenames)[:args.frames]
            split = tmp / "files.txt"
            split.write_text("".join(f"{s.folder} {s.frame_index} {s.side}\n" for s in samples))
        else:
            data_path, png = tmp / "data", True
            split = write_dataset(data_path, args.frames)
            samples = read_split_file(split)
        ext = ".png" if png else ".jpg"
        skipping = fused_sgm.duplicate_block_sizes_identical()
        # Warm-up: lazy imports in this process and the worker pool's forkserver.
        first = tmp / "first.txt"
        first.write_text("".join(split.read_text().splitlines(keepends=True)[:2]))
        for workers in (0, 2):
            pipeline(data_path, first, tmp / "warm_up", 64, 256, png, workers)

        def best(fn, *args, **kwargs):
            runs = [fn(*args, **kwargs) for _ in range(max(args_repeats, 1))]
            return min(runs, key=lambda r: r[0])
        args_repeats = args.repeats
        source = data_path if args.data_path else "synthetic pairs"
        print(f"{len(samples)} frames from {source}; "
              f"{cores} cores; blockSize 3 matchers skipped as duplicates of blockSize 2: "
              f"{'yes' if skipping else 'no'}")
        for size, (width, height) in zip(args.sizes, sizes):
            pairs = []
            for s in samples:
                target_path, other_path = make_layout("kitti", str(data_path), img_ext=ext).stereo_image_paths(s)
                pairs.append((images.load_rgb_array(target_path, height, width),
                              images.load_rgb_array(other_path, height, width), s.side))
            rows = []  # (name, wall, cpu or None, note)
            t12, c12, all12 = best(bare_sgbm, pairs, skip_duplicates=False, threads=1)
            identical = sum(np.array_equal(c[8:], c[4:8]) for c in all12)
            rows.append(("sgbm12 1 thread", t12, c12, ""))
            t8, c8, _ = best(bare_sgbm, pairs, skip_duplicates=True, threads=1)
            rows.append(("sgbm8  1 thread", t8, c8, ""))
            floor, cfloor, _ = best(bare_sgbm, pairs, skip_duplicates=True, threads=cores)
            rows.append((f"sgbm8  {cores} threads (floor)", floor, cfloor, ""))
            save = tmp / f"hints_{size}"
            wall, cpu, coverage = best(pipeline, data_path, split, save, height, width, png, 0,
                                       threads=1)
            rows.append(("pipeline 1 process, 1 thread", wall, cpu,
                         f"x{wall / t12:.2f} of sgbm12, coverage {coverage:.3f}"))
            wall, cpu, _ = best(pipeline, data_path, split, save, height, width, png, 0)
            rows.append((f"pipeline --num_workers 0 ({cores} threads)", wall, cpu,
                         f"x{wall / floor:.2f} of floor"))
            for workers in worker_counts:
                start_up, _, _ = best(pipeline, data_path, split, save, height, width, png,
                                      workers, overwrite=False)
                wall, cpu, _ = best(pipeline, data_path, split, save, height, width, png, workers)
                steady = wall - start_up
                used = min(workers, cores, len(samples))
                rows.append((f"pipeline --num_workers {workers} ({used} processes)", wall, cpu,
                             f"x{wall / floor:.2f} of floor; {steady:.3f} s/frame without "
                             f"the {start_up * len(samples):.1f} s start-up"))
            default = parse_precompute([]).num_workers
            wall, _, _ = best(pipeline, data_path, split, save, height, width, png, default)
            used = min(default, cores, len(samples))
            rows.append((f"pipeline default flags ({used} processes)", wall, None,
                         f"x{wall / floor:.2f} of floor (target <= 1.10)"))
            print(f"\n{width}x{height}: blockSize 2 == 3 on {identical}/{len(pairs)} frames; "
                  f"floor {floor:.3f} s/frame, default flags {wall:.3f} s/frame: "
                  f"ratio {wall / floor:.2f}; load average {os.getloadavg()[0]:.1f}")
            print(f"  {'':<40s} {'wall s/frame':>12s} {'cpu s/frame':>11s}")
            for name, wall, cpu, note in rows:
                cpu_text = f"{cpu:11.3f}" if cpu is not None else f"{'-':>11s}"
                print(f"  {name:<40s} {wall:12.3f} {cpu_text}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
