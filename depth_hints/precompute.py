"""The precompute run: the jobs of a split, the worker pool, resume, verification and the report.

For each split sample the dataset's layout (datasets/) gives both views' images, the camera
and the ground truth; ``fused_sgm`` (``match_view``, ``fuse_candidates``) makes the hint and
``hint_files`` writes it. Existing valid hints are skipped, corrupt ones recomputed; a valid
hint of another size stops the run (one line) unless --overwrite_saved_depths; every write is
atomic. A layout whose ``scaled_matcher_bank`` is False (KITTI)
keeps the paper's bank at any width; the others scale it to their focal length.

Images are read with PIL as RGB and resized with PIL's LANCZOS filter (the training loader's
resize); SGBM sees the resized uint8 images, the photometric pick the same images / 255.

Scaling out: ``--shard I/N`` (or a SLURM array task / torchrun rank, ``resolve_shard``) does
the frames i of the sorted split with i % N == I; shards share only the output folder. On a
GPU (``--pick_device``) the matcher pool only matches and the main process alone picks, tile
by tile (``fused_sgm.DEVICE_TILE``). ``--verify`` (``verify``) checks the files and computes
nothing.

SceneFlow (``--dataset sceneflow``): images of --sceneflow_pass from its layout,
the same fused SGM, hints in the same nominal convention with the sequence's own normalised
focal length: depth = fx_norm * W * 0.1 / d (fx_norm = 1050 / 960 for the 35 mm renders), the
depth the training's SceneFlow intrinsics and 0.1 stereo baseline expect. The bank's
numDisparities are scaled (``bank_disparities``) so that it spans the same nominal depths as
KITTI's bank at 1024 px: 128, 176, 240, 288 px for 35 mm renders matched at 960 px. --report
scores against the PFM ground truth.

Your own rig, Middlebury, Cityscapes (``--dataset stereo|middlebury|cityscapes``, --filenames
required): each frame's camera from its layout (per image on Cityscapes, whose images are
cropped to their top 75 % as the loader crops them); depth = fx_norm * W * 0.1 / (d + doffs *
W) with the rig's doffs (Middlebury), the bank scaled to the rig's focal length.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shlex
import signal
import sys
import time
import warnings
from concurrent.futures import (FIRST_COMPLETED, BrokenExecutor, ProcessPoolExecutor,
                                ThreadPoolExecutor, wait)
from typing import Mapping, Optional

import cv2
import numpy as np
import torch
from tqdm import tqdm

from datasets.layout import DatasetLayout, LayoutError
from datasets.registry import make_layout
from depth_hints import splits, worker_pool
from depth_hints.atomic import temporary_prefix
from depth_hints.errors import DepthHintsError
from depth_hints.fused_sgm import (CPU_TILE, DEVICE_TILE, bank_disparities, distinct_indices,
                                   duplicate_block_sizes_identical, fuse_candidates, match_view,
                                   sgbm_bank)
from depth_hints.hint_files import (HintVerification, check_hint_file, disparity_to_hint_depth,
                                    hint_coverage, hint_depth_to_disparity, hint_file_path,
                                    remove_stale_temporaries, save_hint, verify_hint_files)
from depth_hints.images import load_rgb_array
from depth_hints.metrics import disparity_errors
from depth_hints.options import device_from, usable_cores
from depth_hints.precompute_report import PrecomputeSummary, write_report


class PrecomputeError(DepthHintsError, ValueError):
    """A bad input to the precompute (split file, dataset); the message names the fix."""


# ----------------------------------------------------------------------------- ground truth

#: the report's name of a ground-truth source, by kind (kept from the first two datasets)
GT_SOURCE_NAMES = {"depth": "synthetic", "disparity": "sceneflow_pfm"}


def _resize_disparity(gt: np.ndarray, height: int, width: int) -> np.ndarray:
    """Disparity [h,w] in pixels at width w -> [height,width] at ``width`` (nearest neighbour,
    values times width / w); 0 where not finite or <= 0."""
    gt = np.where(np.isfinite(gt), gt, 0).astype(np.float32)
    scale = width / gt.shape[1]
    gt = cv2.resize(gt, (width, height), interpolation=cv2.INTER_NEAREST) * scale
    return np.where(gt > 0, gt, 0).astype(np.float32)


def load_gt_disparity(layout: DatasetLayout, gt_disparity_root: Optional[str], folder: str,
                      frame_index: int, side: str, height: int, width: int):
    """Ground-truth disparity [height,width] in pixels at hint resolution, or (None, None).

    ``gt_disparity_root``: ``<root>/<folder>/image_0x/<frame>.npy`` disparities in pixels at the
    original image width (rescaled by width ratio). Otherwise the layout's ground truth, where
    its file exists: a disparity map (SceneFlow's PFM) rescaled likewise, or a depth map in
    metres (KITTI's dense PNG, the synthetic world's) resized with nearest neighbour and
    converted with the layout's camera: disparity = fx_norm * width * baseline / depth (0.58 *
    width * 0.54 on KITTI). Returns (gt [H,W] float32 or None, source name or None)."""
    if gt_disparity_root:
        path = hint_file_path(gt_disparity_root, folder, frame_index, side)
        if not os.path.isfile(path):
            return None, None
        gt = np.load(path, allow_pickle=False).astype(np.float32)
        return _resize_disparity(gt.reshape(gt.shape[-2:]), height, width), "gt_disparity"
    path = layout.gt_path(folder, frame_index, side)
    if path is None or not os.path.isfile(path):
        return None, None
    gt = layout.read_gt(folder, frame_index, side)
    if gt.kind == "disparity":
        return _resize_disparity(gt.values, height, width), GT_SOURCE_NAMES["disparity"]
    depth_m = cv2.resize(gt.values, (width, height), interpolation=cv2.INTER_NEAREST)
    disparity = layout.camera(folder, frame_index).depth_to_disparity(depth_m.astype(np.float64), width)
    return disparity.astype(np.float32), GT_SOURCE_NAMES["depth"]


# ----------------------------------------------------------------------------- the run

@dataclasses.dataclass(frozen=True)
class FrameJob:
    """Everything a worker needs, read from the options once."""
    layout: DatasetLayout  # where the images and ground truth are, and the camera
    save_path: str
    height: int
    width: int
    dtype: str
    strict: bool
    overwrite: bool
    report: bool
    gt_disparity: Optional[str]
    skip_duplicates: bool
    fuse: bool  # False: the worker stops after matching (the main process alone picks)


def sample_camera(job: FrameJob, sample) -> tuple:
    """(normalised focal length fx / W, matcher bank) of a sample, from its layout's camera:
    the paper's bank where the layout keeps it (KITTI, at any width), else ``bank_disparities``
    at the hint width (SceneFlow: the sequence's focal length)."""
    fx_normalised = job.layout.camera(sample.folder, sample.frame_index).fx_normalised
    if not job.layout.scaled_matcher_bank:
        return fx_normalised, sgbm_bank()
    return fx_normalised, sgbm_bank(bank_disparities(job.width, fx_normalised))


def sample_doffs(job: FrameJob, sample) -> float:
    """The principal-point x offset between the views / W of a sample's camera (Middlebury's
    doffs; 0 for most rigs): hint depth = fx * 0.1 / (d + doffs * W)."""
    return job.layout.camera(sample.folder, sample.frame_index).doffs


@dataclasses.dataclass
class FrameResult:
    """What happened to one frame."""
    index: int
    status: str  # computed | skipped | missing | failed | other size (a valid hint, kept)
    coverage: Optional[float] = None
    replaced: bool = False  # an invalid existing file was recomputed
    missing: tuple = ()
    message: str = ""
    accuracy: Optional[dict] = None  # {"gt": source, "hint": {...}, "matchers": {name: {...}}}
    cpu_seconds: float = 0.0  # CPU time of the thread that did the frame (without GPU fusion)


@dataclasses.dataclass
class _Matched:
    """A frame matched in a worker, to be fused in the main process."""
    index: int
    target: np.ndarray
    other: np.ndarray
    candidates: np.ndarray
    replaced: bool
    cpu_seconds: float = 0.0


def default_filenames() -> str:
    """The default split file: splits/eigen_full/all_files.txt under the project."""
    return str(splits.PROJECT_SPLITS_DIR / "eigen_full" / "all_files.txt")


_SUPPORTED_DATASETS = ("kitti", "kitti_depth", "kitti_test", "sceneflow", "stereo", "middlebury",
                       "cityscapes")  # layouts with a stereo pair per line
#: datasets without a default split list: --filenames is required
_NEED_FILENAMES = ("stereo", "middlebury", "cityscapes")
SCENEFLOW_SPLITS_HINT = "python scripts/make_sceneflow_splits.py --data_path {data_path}"


def default_sceneflow_filenames() -> list:
    """SceneFlow's default lists: splits/sceneflow/train_files.txt and val_files.txt (those that
    exist), so that training and validation both find their hints."""
    folder = splits.PROJECT_SPLITS_DIR / "sceneflow"
    return [str(folder / name) for name in ("train_files.txt", "val_files.txt")
            if (folder / name).is_file()]


def _check_inputs(options, layout: DatasetLayout) -> list:
    if options.dataset not in _SUPPORTED_DATASETS:
        raise PrecomputeError(f"--dataset {options.dataset}: hints are computed for "
                              f"{', '.join(_SUPPORTED_DATASETS)}.")
    if options.dataset in _NEED_FILENAMES and not options.filenames:
        raise PrecomputeError(f"--dataset {options.dataset} has no default split: pass --filenames "
                              f"<split file> (scripts/make_stereo_splits.py writes them for "
                              f"--dataset stereo).")
    if options.num_workers < 0:
        raise PrecomputeError(f"--num_workers {options.num_workers}: must be >= 0 "
                              f"(0 = in-process).")
    sceneflow_splits = SCENEFLOW_SPLITS_HINT.format(data_path=shlex.quote(options.data_path))
    if options.dataset == "sceneflow" and not options.filenames:
        filenames = default_sceneflow_filenames()
        if not filenames:
            raise PrecomputeError(f"--dataset sceneflow without --filenames reads "
                                  f"{splits.PROJECT_SPLITS_DIR / 'sceneflow'}/train_files.txt, which "
                                  f"does not exist: run `{sceneflow_splits}` or pass "
                                  f"--filenames <split file>.")
    else:
        filenames = [options.filenames or default_filenames()]
        if not os.path.isfile(filenames[0]):
            make = {"sceneflow": sceneflow_splits}.get(options.dataset, splits.FETCH_HINT)
            make = "" if options.dataset in _NEED_FILENAMES else f"run `{make}` or "
            raise PrecomputeError(f"Split file {filenames[0]} does not exist: {make}pass "
                                  f"--filenames <split file>.")
    samples = [s for f in filenames for s in splits.read_split_file(f, named_frames=layout.named_frames)]
    for s in samples:
        try:
            layout.check_sample(s)
        except LayoutError as e:
            raise PrecomputeError(f"{e} (--dataset {options.dataset}, {', '.join(filenames)})") from None
    unique = list(dict.fromkeys(samples))  # a frame listed twice is computed once
    return unique


def _existing_hint(path: str, height: int, width: int):
    """(hint, None) for a valid existing file of the right size, (None, HintCheck) for an
    invalid or differently sized one, (None, None) when there is no file."""
    check = check_hint_file(path, (height, width), keep_hint=True)
    if check.status == "missing":
        return None, None
    return (check.hint, None) if check.status == "ok" else (None, check)


def _other_size_error(message: str, height: int, width: int) -> PrecomputeError:
    return PrecomputeError(
        f"{message} (--height {height} --width {width}), and a valid hint of another size is "
        f"never replaced silently: pass the --height/--width it was computed with, another "
        f"--save_path, or --overwrite_saved_depths to recompute it at this size.")


def _accuracy(job: FrameJob, sample, disparity: np.ndarray, candidates=None, specs=None):
    try:
        gt, source = load_gt_disparity(job.layout, job.gt_disparity, sample.folder,
                                       sample.frame_index, sample.side, job.height, job.width)
    except Exception as e:  # a bad ground-truth file spoils the report, not the hint
        return {"gt": None, "gt_error": f"{type(e).__name__}: {e}"}
    if gt is None:
        return None
    out = {"gt": source, "hint": disparity_errors(disparity, gt)}
    if candidates is not None:
        out["matchers"] = {spec.name: disparity_errors(candidates[i], gt)
                           for i, spec in enumerate(specs if specs is not None else sgbm_bank())}
    return out


def _finish_frame(job: FrameJob, sample, index: int, target, other, candidates, replaced: bool,
                  device=None) -> FrameResult:
    """Fuse matched candidates, write the hint atomically, score it.

    device None: a worker's own pick on the CPU (small tiles, tied candidates skipped); a
    device: the one picker's (``DEVICE_TILE`` tiles, every candidate; GPU memory bounded by
    the tile). Both give the same pick."""
    fx_normalised, specs = sample_camera(job, sample)
    keep = distinct_indices(job.skip_duplicates, specs)
    if device is None:
        tile, skip_tied = CPU_TILE, True
    else:
        tile, skip_tied = DEVICE_TILE, False
    disparity, _ = fuse_candidates(target.astype(np.float32) / 255.0,
                                   other.astype(np.float32) / 255.0, candidates[keep],
                                   sample.side, strict=job.strict, device=device,
                                   tile=tile, skip_tied=skip_tied)
    depth = disparity_to_hint_depth(disparity.astype(np.float64), job.width, fx_normalised,
                                    sample_doffs(job, sample)).astype(np.float32)
    path = hint_file_path(job.save_path, sample.folder, sample.frame_index, sample.side)
    save_hint(path, depth, job.dtype)
    accuracy = _accuracy(job, sample, disparity, candidates, specs) if job.report else None
    return FrameResult(index, "computed", hint_coverage(depth), replaced=replaced,
                       accuracy=accuracy)


def process_frame(job: FrameJob, index: int, sample, device=None):
    """Do one frame: skip it if a valid hint exists, else load, match, fuse and save it.

    Returns a FrameResult, or (``job.fuse`` False) a _Matched for the main process to fuse.
    Never raises for a frame's own problems: they come back as 'missing' / 'failed'."""
    cpu_start = time.thread_time()
    outcome = _process_frame(job, index, sample, device)
    outcome.cpu_seconds = time.thread_time() - cpu_start
    return outcome


def _process_frame(job: FrameJob, index: int, sample, device=None):
    path = hint_file_path(job.save_path, sample.folder, sample.frame_index, sample.side)
    try:
        replaced = False
        if not job.overwrite:
            hint, problem = _existing_hint(path, job.height, job.width)
            if problem is not None and problem.status == "wrong size":
                return FrameResult(index, "other size", message=problem.message)
            if hint is not None:
                accuracy = None
                if job.report:
                    fx_normalised, _ = sample_camera(job, sample)
                    accuracy = _accuracy(job, sample,
                                         hint_depth_to_disparity(hint, job.width, fx_normalised,
                                                                 sample_doffs(job, sample)))
                return FrameResult(index, "skipped", hint_coverage(hint), accuracy=accuracy)
            replaced = problem is not None
        paths = job.layout.stereo_image_paths(sample)
        missing = tuple(p for p in paths if not os.path.isfile(p))
        if missing:
            return FrameResult(index, "missing", missing=missing,
                               message="missing image " + ", ".join(missing)
                               + f" (stereo pair {paths[0]} / {paths[1]})")
        job.layout.check_pair(sample)  # both views of one size, else the pair is named
        target, other = (load_rgb_array(p, job.height, job.width, crop=job.layout.crop_image)
                         for p in paths)
        candidates = match_view(target, other, sample.side, sample_camera(job, sample)[1],
                                skip_duplicates=job.skip_duplicates)
        if not job.fuse:
            return _Matched(index, target, other, candidates, replaced)
        return _finish_frame(job, sample, index, target, other, candidates, replaced, device)
    except Exception as e:  # one bad frame must not stop the others
        return FrameResult(index, "failed", message=f"{type(e).__name__}: {e}")


# Worker-process state, set once by the pool initializer.
_WORKER_JOB: Optional[FrameJob] = None
_WORKER_SAMPLES: Optional[list] = None


def _init_worker(job: FrameJob, samples: list) -> None:
    global _WORKER_JOB, _WORKER_SAMPLES
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the main process
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    _WORKER_JOB, _WORKER_SAMPLES = job, samples


def _worker_task(index: int):
    return process_frame(_WORKER_JOB, index, _WORKER_SAMPLES[index])


def _bounded_map(executor, tasks, window: int):
    """Run (index, fn, *args) tasks on ``executor`` with at most ``window`` pending; yield
    results in completion order. A pool whose worker process died raises WorkerDied with the
    indices in flight."""
    pending = {}
    try:
        def finished(done):
            broken = []
            for future in done:
                index = pending.pop(future)
                if isinstance(future.exception(), BrokenExecutor):
                    broken.append(index)
                else:
                    yield future.result()
            if broken:
                raise WorkerDied(sorted(broken + list(pending.values())))

        for index, fn, *args in tasks:
            pending[executor.submit(fn, *args)] = index
            if len(pending) >= window:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                yield from finished(done)
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            yield from finished(done)
    finally:
        for future in pending:
            future.cancel()


class WorkerDied(Exception):
    """A worker process of the pool died (killed: the out-of-memory killer, a signal)."""

    def __init__(self, in_flight: list):
        super().__init__(in_flight)
        self.in_flight = in_flight  # indices of the frames it may have been computing


class _one_library_thread:
    """Within the block torch and OpenCV use one thread each (restored after): the frames run
    in parallel threads instead, and idle OpenMP threads spinning between frames would steal
    the cores the matchers need."""

    def __enter__(self):
        self.saved = torch.get_num_threads(), cv2.getNumThreads()
        torch.set_num_threads(1)
        cv2.setNumThreads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved[0])
        cv2.setNumThreads(self.saved[1])


def _other_extension_hint(missing: list, png: bool) -> str:
    """'' or a hint at --png when the first missing images exist with the other extension."""
    swap = (".png", ".jpg") if png else (".jpg", ".png")
    for path in missing[:20]:
        root, ext = os.path.splitext(path)
        if ext == swap[0] and os.path.isfile(root + swap[1]):
            return (f"{root + swap[1]} exists: did you mean to run without --png?" if png else
                    f"{root + swap[1]} exists: did you mean --png? (jpg is the default)")
    return ""


def _remove_temporaries_of(samples: list, save_path: str) -> None:
    """Delete the half-written temporaries of these frames' hints (their workers were killed
    mid-write when the pool broke); finished hints are untouched."""
    for sample in samples:
        path = hint_file_path(save_path, sample.folder, sample.frame_index, sample.side)
        prefix = temporary_prefix(path)
        try:
            names = os.listdir(os.path.dirname(path))
        except OSError:
            continue
        for name in names:
            if name.startswith(prefix):
                try:
                    os.remove(os.path.join(os.path.dirname(path), name))
                except OSError:
                    pass


def _worker_died_error(in_flight: list, samples: list, results: list, options) -> PrecomputeError:
    """The one-line error of a run whose worker process died: the frames in flight, what is
    kept, and what to do."""
    names = [f"{samples[i].folder} {samples[i].frame_index} {samples[i].side}" for i in in_flight]
    shown = "; ".join(names[:8]) + (f"; ... ({len(names)} in all)" if len(names) > 8 else "")
    written = sum(r is not None and r.status == "computed" for r in results)  # and done
    return PrecomputeError(
        f"a worker process died (killed by a signal, e.g. the out-of-memory killer) while the "
        f"pool had these frames in flight: {shown}. The {written} hints computed before it "
        f"are kept in {options.save_path}; re-run the same command to resume, with fewer "
        f"--num_workers (each holds a frame and its 12 candidate maps) or more memory.")


def precompute(options, progress: bool = True, verbose: bool = True,
               threads: Optional[int] = None,
               one_picker: Optional[bool] = None) -> PrecomputeSummary:
    """Compute the hints of every frame in ``options.filenames`` (PrecomputeOptions).

    Existing valid hints are skipped (unless --overwrite_saved_depths); truncated or corrupt
    ones are recomputed; a valid hint of another size raises PrecomputeError naming the flags
    (never replaced silently). Each file is written by whoever computed it, atomically, so an
    interrupted run loses nothing finished. Frames with missing images or other errors are
    collected in the summary; the others complete. A worker process that dies (the OOM
    killer) raises PrecomputeError naming the frames in flight; finished files stay.
    --num_workers 0 runs in this process, ``threads`` frames at a time (default: one per core;
    OpenCV and torch release the GIL); N > 0 uses N processes of one thread each, at most one
    per usable core. --shard (or the environment, ``resolve_shard``) limits the run to one
    shard of the split. The per-pixel pick runs where --pick_device says: on the CPU every
    worker picks its own frames; on a GPU the workers (threads or processes) only match and
    this process alone picks, one frame at a time in fixed tiles, so GPU memory does not grow
    with the core count. ``one_picker`` forces that layout (True, e.g. on the CPU in tests) or
    the per-worker one (False)."""
    start = time.time()
    layout, samples, shard = split_samples(options)
    device = resolve_pick_device(options.pick_device, options.no_cuda)
    if one_picker is None:
        one_picker = device.type != "cpu"
    in_process = options.num_workers == 0 or len(samples) <= 1
    skip_duplicates = duplicate_block_sizes_identical()
    if not skip_duplicates:
        warnings.warn("OpenCV's StereoSGBM gives different maps for blockSize 2 and 3 here; "
                      "running all 12 matchers.")
    job = FrameJob(layout=layout, save_path=options.save_path,
                   height=options.height, width=options.width, dtype=options.dtype,
                   strict=options.strict_candidates, overwrite=options.overwrite_saved_depths,
                   report=bool(options.report), gt_disparity=options.gt_disparity,
                   skip_duplicates=skip_duplicates, fuse=not one_picker)
    directories = sorted({os.path.dirname(hint_file_path(options.save_path, s.folder,
                                                         s.frame_index, s.side))
                          for s in samples})
    removed = remove_stale_temporaries(directories)

    results: list = [None] * len(samples)
    bar = tqdm(total=len(samples), unit="frame", desc="depth hints", disable=not progress,
               dynamic_ncols=True, smoothing=0.1)
    failures = 0

    def collect(outcome):
        nonlocal failures
        if isinstance(outcome, _Matched):
            sample = samples[outcome.index]
            try:
                cpu_seconds = outcome.cpu_seconds
                outcome = _finish_frame(job, sample, outcome.index, outcome.target, outcome.other,
                                        outcome.candidates, outcome.replaced, device=device)
                outcome.cpu_seconds = cpu_seconds
            except Exception as e:
                outcome = FrameResult(outcome.index, "failed", message=f"{type(e).__name__}: {e}")
        if outcome.status == "other size":  # stop: the whole folder is likely of that size
            raise _other_size_error(outcome.message, job.height, job.width)
        results[outcome.index] = outcome
        bar.update(1)
        if outcome.status in ("missing", "failed"):
            failures += 1
            bar.set_postfix(failed=failures)

    try:
        if in_process:
            threads = max(1, min(threads or usable_cores(), len(samples)))
            parallelism = f"in-process, {threads} thread{'s' * (threads > 1)}"
            with _one_library_thread(), ThreadPoolExecutor(threads) as executor:
                # At most 2 x threads frames in flight: the queue the one picker drains.
                tasks = ((index, process_frame, job, index, sample)
                         for index, sample in enumerate(samples))
                for outcome in _bounded_map(executor, tasks, window=2 * threads):
                    collect(outcome)
        else:
            # More processes than cores only add memory: the work is CPU-bound.
            workers = min(options.num_workers, len(samples), usable_cores())
            parallelism = f"{workers} worker process{'es' * (workers > 1)}"
            if workers < options.num_workers:
                parallelism += f" (--num_workers {options.num_workers} capped to the cores)"
            # A worker killed mid-frame (the OOM killer) breaks the executor, which then fails
            # every frame in flight: the run stops with their names instead of hanging.
            with ProcessPoolExecutor(workers, mp_context=worker_pool.pool_context(),
                                     initializer=_init_worker,
                                     initargs=(job, samples)) as executor:
                tasks = ((index, _worker_task, index) for index in range(len(samples)))
                for outcome in _bounded_map(executor, tasks, window=2 * workers):
                    collect(outcome)
    except WorkerDied as died:  # the pool is shut down: no worker of it is still writing
        _remove_temporaries_of([samples[i] for i in died.in_flight], options.save_path)
        raise _worker_died_error(died.in_flight, samples, results, options) from None
    finally:
        bar.close()
    if one_picker:
        parallelism += f"; pick on {device} in the main process"
    if not shard.whole:
        parallelism = f"{shard.describe()}; {parallelism}"

    done = [r for r in results if r is not None]
    coverages = [r.coverage for r in done if r.coverage is not None]
    failed = [(samples[r.index], r.message) for r in done if r.status == "failed"]
    missing = list(dict.fromkeys(p for r in done for p in r.missing))
    cpu = [r.cpu_seconds for r in done if r.status == "computed"]
    summary = PrecomputeSummary(
        total=len(samples), computed=sum(r.status == "computed" for r in done),
        skipped=sum(r.status == "skipped" for r in done), replaced=sum(r.replaced for r in done),
        failed=failed, missing_images=missing,
        missing_frames=sum(r.status == "missing" for r in done),
        mean_coverage=float(np.mean(coverages)) if coverages else None,
        seconds=time.time() - start, save_path=options.save_path, report_path=options.report,
        skipped_duplicate_matchers=skip_duplicates, removed_temporaries=removed,
        cpu_seconds_per_frame=float(np.mean(cpu)) if cpu else None, parallelism=parallelism,
        extension_hint=_other_extension_hint(missing, options.png))
    if options.report:
        write_report(options.report, options, summary, samples, results)
    if verbose:
        print(summary.format(), file=sys.stdout)
    return summary


# ----------------------------------------------------------------------------- shards

@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based) and what chose it (a flag or variables); ``part``
    (i, n): this process does part i of n of that shard (torchrun's ranks inside it)."""
    index: int = 0
    count: int = 1
    source: str = ""
    part: tuple = (0, 1)

    @property
    def whole(self) -> bool:
        return self.count == 1 and self.part[1] == 1

    def describe(self) -> str:
        """'shard 1/4 from SLURM_ARRAY_TASK_ID, part 0/2 of it from RANK/WORLD_SIZE', or ''
        for the whole split."""
        out = []
        if self.count > 1:
            out.append(f"shard {self.index}/{self.count}"
                       + (f" from {self.source}" if self.source else ""))
        if self.part[1] > 1:
            out.append(f"part {self.part[0]}/{self.part[1]} of "
                       f"{'it' if out else 'the split'} from RANK/WORLD_SIZE")
        return ", ".join(out)


def _integer_variable(environ: Mapping, name: str, fix: str) -> int:
    value = environ.get(name)
    if value is None:
        raise PrecomputeError(f"{name} is not set, but the shard is read from the environment: "
                              f"{fix}.")
    try:
        return int(value)
    except ValueError:
        raise PrecomputeError(f"{name}={value!r} is not an integer: {fix}.") from None


_ARRAY_FIX = ("submit the array as --array=0-<N-1> with --num_shards N (see "
              "scripts/slurm/precompute_array.sbatch) or pass --shard I/N")


def _array_shard(environ: Mapping, num_shards: Optional[int]) -> tuple:
    """(index, count) of a SLURM array task. With --num_shards N the task id is the shard
    index (0..N-1), so any subset of ids can be resubmitted; without it the array must be
    exactly 0..COUNT-1 (a first submission), as a resubmission of some ids cannot be told
    from a smaller array."""
    task = _integer_variable(environ, "SLURM_ARRAY_TASK_ID", _ARRAY_FIX)
    last = (_integer_variable(environ, "SLURM_ARRAY_TASK_MAX", _ARRAY_FIX)
            if "SLURM_ARRAY_TASK_MAX" in environ else None)
    if num_shards is not None:
        for name, value in (("SLURM_ARRAY_TASK_ID", task), ("SLURM_ARRAY_TASK_MAX", last)):
            if value is not None and not 0 <= value < num_shards:
                raise PrecomputeError(f"{name}={value} with --num_shards {num_shards}: the "
                                      f"array's task ids are the shard ids 0..{num_shards - 1} "
                                      f"(--array=0-{num_shards - 1}, or some of those ids).")
        return task, num_shards
    count = _integer_variable(environ, "SLURM_ARRAY_TASK_COUNT", _ARRAY_FIX)
    first = (_integer_variable(environ, "SLURM_ARRAY_TASK_MIN", _ARRAY_FIX)
             if "SLURM_ARRAY_TASK_MIN" in environ else 0)
    step = (_integer_variable(environ, "SLURM_ARRAY_TASK_STEP", _ARRAY_FIX)
            if "SLURM_ARRAY_TASK_STEP" in environ else 1)
    if (first, step) != (0, 1) or last not in (None, count - 1) or not 0 <= task < count:
        raise PrecomputeError(
            f"SLURM array task {task} of an array of {count} from {first} to {last} (step "
            f"{step}) is not one of 0..SLURM_ARRAY_TASK_COUNT-1, so its shard count is unknown "
            f"(a resubmission of failed ids?): pass --num_shards N, the number of shards of the "
            f"first submission (the task id is then the shard id), or --shard I/N.")
    return task, count


def resolve_shard(flag: Optional[str], environ: Optional[Mapping] = None,
                  num_shards: Optional[int] = None) -> Shard:
    """This process's shard. Precedence: ``--shard I/N`` (0-based); else a SLURM array task
    (``_array_shard``: the task id of --num_shards N, or of SLURM_ARRAY_TASK_COUNT for an
    array 0..COUNT-1); else the whole split. Under torchrun (WORLD_SIZE > 1) each rank then
    takes part RANK of WORLD_SIZE of that shard (of the split when there is none), so ranks
    never repeat each other's frames. A bad value raises PrecomputeError naming the flag or
    the variable."""
    environ = os.environ if environ is None else environ
    index, count, source = 0, 1, ""
    if num_shards is not None and (num_shards < 1 or flag is not None
                                   or "SLURM_ARRAY_TASK_ID" not in environ):
        raise PrecomputeError(f"--num_shards {num_shards}: it gives the shard count of a SLURM "
                              f"array (the task id is the shard id), so it needs a positive "
                              f"count, SLURM_ARRAY_TASK_ID and no --shard; elsewhere pass "
                              f"--shard I/N alone.")
    if flag is not None:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", flag)
        if not match or not 0 <= int(match[1]) < int(match[2]):
            raise PrecomputeError(f"--shard {flag!r}: expected I/N with 0 <= I < N (0-based), "
                                  f"e.g. --shard 0/4 ... --shard 3/4 for four shards.")
        index, count, source = int(match[1]), int(match[2]), "--shard"
    elif "SLURM_ARRAY_TASK_ID" in environ:
        (index, count), source = _array_shard(environ, num_shards), "SLURM_ARRAY_TASK_ID"
    part = (0, 1)
    if "WORLD_SIZE" in environ:
        fix = "start the processes with torchrun, or pass --shard I/N"
        rank = _integer_variable(environ, "RANK", fix)
        size = _integer_variable(environ, "WORLD_SIZE", fix)
        if not 0 <= rank < size:
            raise PrecomputeError(f"RANK={rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={size}): "
                                  f"{fix}.")
        part = (rank, size)
    if count == 1 and part[1] > 1:  # torchrun alone: its ranks are the shards
        return Shard(part[0], part[1], "RANK/WORLD_SIZE")
    return Shard(index, count, source, part)


def _deal(samples: list, index: int, count: int) -> set:
    ordered = sorted(set(samples), key=lambda s: (s.folder, s.frame_index, s.side))
    return set(ordered[index::count])


def shard_samples(samples: list, shard: Shard) -> list:
    """The frames of ``shard``: the i-th of the sorted unique frames (folder, frame, side)
    goes to shard i % count, so a shard's frames depend on the split alone (stable under
    resume) and the shards partition the split; its ``part`` is dealt the same way from the
    shard's frames. Kept in split order."""
    if shard.whole:
        return list(samples)
    mine = _deal(samples, shard.index, shard.count) if shard.count > 1 else set(samples)
    if shard.part[1] > 1:
        mine = _deal(list(mine), *shard.part)
    return [s for s in samples if s in mine]


# ----------------------------------------------------------------------------- the pick device

def resolve_pick_device(choice: str, no_cuda: bool,
                        environ: Optional[Mapping] = None) -> torch.device:
    """The device of the per-pixel pick (--pick_device): 'cpu'; 'cuda' (an error when no GPU
    is visible); 'auto' = CUDA when visible and not --no_cuda (``options.device_from``), else
    the CPU. Several processes on a machine with several GPUs (torchrun) use cuda:LOCAL_RANK."""
    environ = os.environ if environ is None else environ
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "auto":
        if device_from(no_cuda).type != "cuda":
            return torch.device("cpu")
    elif not torch.cuda.is_available():
        raise PrecomputeError("--pick_device cuda: this machine shows no CUDA GPU (driver, "
                              "CUDA_VISIBLE_DEVICES?); use --pick_device cpu or auto.")
    local_rank = environ.get("LOCAL_RANK", "0")
    index = int(local_rank) if local_rank.isdigit() else 0
    return torch.device("cuda", index % torch.cuda.device_count())


# ----------------------------------------------------------------------------- verification

def split_samples(options) -> tuple:
    """(layout, the unique frames of the split that this shard does, the Shard) from the
    options; bad inputs raise PrecomputeError."""
    layout = make_layout(options.dataset, options.data_path,
                         img_ext=".png" if options.png else ".jpg",
                         sceneflow_pass=options.sceneflow_pass)
    shard = resolve_shard(options.shard, num_shards=options.num_shards)
    return layout, shard_samples(_check_inputs(options, layout), shard), shard


def verify(options, progress: bool = True, verbose: bool = True,
           threads: Optional[int] = None) -> HintVerification:
    """--verify: check every hint file the split (this shard's part of it) needs: it exists,
    loads, is --height x --width, finite and non-negative. Reads only; recomputes nothing.
    Prints the summary (counts, missing and corrupt files, mean coverage)."""
    _, samples, shard = split_samples(options)
    paths = [hint_file_path(options.save_path, s.folder, s.frame_index, s.side) for s in samples]
    verification = verify_hint_files(paths, (options.height, options.width),
                                     threads=threads or usable_cores(), progress=progress)
    if verbose:
        where = f"{options.save_path} ({options.width}x{options.height}"
        where += f", {shard.describe()})" if not shard.whole else ")"
        print(f"Verify depth hints in {where}: {verification.format()}")
        if not verification.ok:
            print("  -> run precompute_depth_hints.py with the same flags, without --verify: "
                  "it computes the missing files and replaces corrupt ones; valid files of "
                  "another size are replaced only with --overwrite_saved_depths.")
    return verification
