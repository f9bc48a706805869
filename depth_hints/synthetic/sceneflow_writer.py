"""Writes the synthetic world in SceneFlow's FlyingThings3D layout (paths from
``datasets.sceneflow``): a 35 mm-like rig (fx = 1050 W / 960, principal point at the
centre), clean and final passes as PNG, and PFM disparities fx * B / depth with B = 1 m = 1
SceneFlow scene unit."""
from __future__ import annotations

import json
import os
import time
from typing import Dict, Optional, Sequence

import numpy as np

from datasets.sceneflow import FOCAL_LENGTH_35MM_PX, PASSES, SCENEFLOW_BASELINE, SceneFlowLayout
from depth_hints.pfm import write_pfm

from .kitti_writer import (SyntheticWorldError, _atomic_write_bytes, _check_world_arguments,
                           _png_bytes, _refuse_other_parameters,
                           _write_text_if_changed)
from .renderer import render_view
from .scene import WORLD_VERSION, World, camera_to_world, make_world


# ----------------------------------------------------------------------------
# SceneFlow (FlyingThings3D) layout
# ----------------------------------------------------------------------------

#: focal length of SceneFlow's 35 mm renders at 960 px, as the layout assumes it
SCENEFLOW_FOCAL_PX_AT_960 = FOCAL_LENGTH_35MM_PX
#: distance between the left and right SceneFlow cameras, in the world's metres.  SceneFlow's
#: loader takes its baseline to be 1 scene unit, so here one scene unit is one metre and the
#: written disparity fx * 1.0 / depth gives back the rendered depth through ``get_depth``.
#: With the 35 mm-like rig this puts the street at 3 .. 165 px of disparity at 960 px
#: (median about 55), the span of FlyingThings3D's.
SCENEFLOW_RIG_BASELINE = SCENEFLOW_BASELINE
#: SceneFlow's renders sample pixel centres: 0-based pixel (col, row) sees image point
#: (col + 0.5, row + 0.5) with the principal point at (W / 2, H / 2), i.e. FlyingThings3D's
#: cx = 479.5 in 0-based pixel coordinates at 960 px.
SCENEFLOW_PIXEL_OFFSET = 0.5
#: the final pass: the clean render blurred (Gaussian sigma in pixels at 960 px wide) plus
#: the world's sensor noise
SCENEFLOW_FINAL_BLUR_SIGMA = 1.0


def sceneflow_intrinsics(width: int, height: int) -> np.ndarray:
    """3x3 camera matrix of the synthetic SceneFlow rig at (width, height): fx = 1050 W / 960,
    fy = 1050 H / 540 (square pixels at 16:9, matching the loader's normalised intrinsics at
    any size), principal point (W / 2, H / 2)."""
    return np.array([[SCENEFLOW_FOCAL_PX_AT_960 * width / 960.0, 0.0, 0.5 * width],
                     [0.0, SCENEFLOW_FOCAL_PX_AT_960 * height / 540.0, 0.5 * height],
                     [0.0, 0.0, 1.0]])


def sceneflow_folders(num_sequences: int, num_test_sequences: Optional[int] = None):
    """(train folders, test folders) written for ``num_sequences`` sequences, e.g.
    'flyingthings3d/TRAIN/A/0000'.  By default a quarter of them (at least one, when there
    are two or more) are TEST sequences."""
    if num_test_sequences is None:
        num_test_sequences = max(1, num_sequences // 4) if num_sequences > 1 else 0
    if not 0 <= num_test_sequences <= num_sequences:
        raise SyntheticWorldError(f"num_test_sequences (--num_test_sequences) "
                                  f"{num_test_sequences}: must be in [0, num_sequences = "
                                  f"{num_sequences}].")
    num_train = num_sequences - num_test_sequences
    train = ["flyingthings3d/TRAIN/A/%04d" % i for i in range(num_train)]
    test = ["flyingthings3d/TEST/A/%04d" % i for i in range(num_test_sequences)]
    return train, test


def sceneflow_views(world: World, frame: int, width: int, height: int) -> Dict[str, tuple]:
    """Render the left and right SceneFlow views of one frame without sensor noise.

    The left camera sits where the KITTI rig's cam 2 does; the right one
    SCENEFLOW_RIG_BASELINE further along the left camera's x axis (a rectified pair).
    Returns {'l': (rgb uint8 [H,W,3], disparity float32 [H,W]), 'r': ...}: disparity in
    pixels, fx * SCENEFLOW_RIG_BASELINE / depth, positive in both views, 0 on the sky."""
    K = sceneflow_intrinsics(width, height)
    left_to_world = camera_to_world(world, frame, 2)
    offset = np.eye(4)
    offset[0, 3] = SCENEFLOW_RIG_BASELINE
    poses = {"l": left_to_world, "r": left_to_world @ offset}
    out = {}
    for side, pose in poses.items():
        rgb, depth, _ = render_view(world, pose, K, height, width,
                                    exposure=float(world.exposure[frame]), noise_std=0.0,
                                    pixel_offset=SCENEFLOW_PIXEL_OFFSET)
        disparity = np.zeros_like(depth)
        hit = depth > 0
        disparity[hit] = K[0, 0] * SCENEFLOW_RIG_BASELINE / depth[hit]
        out[side] = (rgb, disparity.astype(np.float32))
    return out


def sceneflow_final_pass(rgb: np.ndarray, world: World, frame: int, side: str) -> np.ndarray:
    """The final-pass frame of a clean render: Gaussian blur (sigma
    SCENEFLOW_FINAL_BLUR_SIGMA * W / 960 px) plus the world's sensor noise, fixed per
    (seed, sequence, frame, side)."""
    import cv2
    sigma = SCENEFLOW_FINAL_BLUR_SIGMA * rgb.shape[1] / 960.0
    img = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), sigmaX=max(sigma, 0.3))
    rng = np.random.default_rng([world.seed, world.drive_index, int(frame), "lr".index(side), 11])
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(world.noise_std)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def write_synthetic_sceneflow(out_dir: str = "data/synthetic_sceneflow", num_sequences: int = 4,
                              frames_per_sequence: int = 10, width: int = 960, height: int = 540,
                              seed: int = 0, num_test_sequences: Optional[int] = None,
                              passes: Sequence[str] = ("clean", "final"), overwrite: bool = False,
                              show_progress: bool = False) -> Dict[str, object]:
    """Write the procedural world in SceneFlow's FlyingThings3D layout; return a summary.

    ``<out_dir>/flyingthings3d/frames_{clean,final}pass/{TRAIN,TEST}/A/NNNN/{left,right}/XXXX.png``
    and ``<out_dir>/flyingthings3d/disparity/.../{left,right}/XXXX.pfm`` (frames numbered from 0).
    Each sequence is its own street (``make_world(seed, sequence index)``), the last
    ``num_test_sequences`` (default: a quarter, at least one of two or more) go to TEST.
    Rig: fx = 1050 W / 960 (35 mm), principal point at the centre, baseline
    SCENEFLOW_RIG_BASELINE = 1 scene unit = 1 m; disparity = fx * 1.0 / depth (0 on the sky,
    which SceneFlow's loader reads as no ground truth). Clean pass: noise-free renders; final
    pass: blurred and noisy (``sceneflow_final_pass``). Files are written atomically and
    existing ones kept unless ``overwrite``; a folder made with other parameters is refused.
    Split lists: ``datasets.sceneflow_dataset.make_sceneflow_splits`` (the script runs it)."""

    _check_world_arguments("--num_sequences", num_sequences, "--frames_per_sequence",
                           frames_per_sequence, width, height, seed)
    passes = tuple(passes)
    if not passes or any(p not in PASSES for p in passes):
        raise ValueError("passes must be a non-empty subset of %s" % (PASSES,))
    layouts = {p: SceneFlowLayout(out_dir, sceneflow_pass=p) for p in passes}
    train, test = sceneflow_folders(num_sequences, num_test_sequences)
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)

    config = {"format": "depth-hints synthetic SceneFlow (FlyingThings3D layout)", "version": WORLD_VERSION,
              "seed": int(seed), "width": int(width), "height": int(height),
              "frames_per_sequence": int(frames_per_sequence), "baseline": SCENEFLOW_RIG_BASELINE,
              "focal_px": float(sceneflow_intrinsics(width, height)[0, 0]),
              "train_sequences": len(train), "test_sequences": len(test)}
    cfg_path = os.path.join(out_dir, "synthetic_sceneflow.json")
    if not overwrite:
        _refuse_other_parameters(out_dir, cfg_path, config)
    written = int(_write_text_if_changed(
        cfg_path, json.dumps(config, indent=1, sort_keys=True) + "\n", overwrite))
    skipped = 0
    render_s = 0.0
    views = 0
    total = num_sequences * frames_per_sequence
    bar = None
    if show_progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="frame", desc="synthetic SceneFlow", dynamic_ncols=True)
    for index, folder in enumerate(train + test):
        world = None
        for frame in range(frames_per_sequence):
            todo = {}
            for side in "lr":
                paths = [layouts[p].image_path(folder, frame, side) for p in passes]
                paths.append(layouts[passes[0]].gt_path(folder, frame, side))
                missing = [p for p in paths if overwrite or not os.path.isfile(p)]
                skipped += len(paths) - len(missing)
                if missing:
                    todo[side] = set(missing)
            if todo:
                if world is None:
                    world = make_world(seed, index, frames_per_sequence)
                t0 = time.perf_counter()
                rendered = sceneflow_views(world, frame, width, height)
                render_s += time.perf_counter() - t0
                views += 2
                for side, missing in todo.items():
                    rgb, disparity = rendered[side]
                    for p in passes:
                        path = layouts[p].image_path(folder, frame, side)
                        if path in missing:
                            img = rgb if p == "clean" else sceneflow_final_pass(rgb, world, frame, side)
                            _atomic_write_bytes(path, _png_bytes(img))
                            written += 1
                    path = layouts[passes[0]].gt_path(folder, frame, side)
                    if path in missing:
                        write_pfm(path, disparity)
                        written += 1
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return {
        "out_dir": out_dir,
        "train_folders": train,
        "test_folders": test,
        "passes": list(passes),
        "num_frames": total,
        "files_written": int(written),
        "files_skipped": int(skipped),
        "views_rendered": views,
        "seconds_per_view": (render_s / views) if views else None,
        "focal_px": config["focal_px"],
        "baseline": SCENEFLOW_RIG_BASELINE,
    }
