"""Writes the synthetic world in Cityscapes' layout (paths from ``datasets.cityscapes``):
``leftImg8bit_sequence`` / ``rightImg8bit_sequence`` PNGs, one camera JSON per snippet (the
published field names: extrinsic.baseline, intrinsic.fx, fy, u0, v0), and disparity PNGs
(p = 256 d + 1, 0 = none) for the snippet's annotated frame."""
from __future__ import annotations

import io
import json
import os
from typing import Dict, Sequence

import numpy as np
from PIL import Image

from datasets.cityscapes import SIDE_ROOTS, CityscapesLayout, disparity_png_array

from .kitti_writer import _atomic_write_bytes, _check_world_arguments, _png_bytes
from .scene import make_world
from .stereo_writer import stereo_rig_views

#: a Cityscapes-like camera at any size: fx = fy = 1.105 W (2262 px at 2048), principal point
#: (0.535 W, 0.5 H)
CITYSCAPES_FX_FRACTION = 1.105
CITYSCAPES_CX_FRACTION = 0.535
#: per city, as the real cameras differ slightly
CITYSCAPES_BASELINES = (0.209313, 0.222126)


def cityscapes_intrinsics(width: int, height: int) -> np.ndarray:
    """3x3 camera matrix of the synthetic Cityscapes camera at (width, height)."""
    f = CITYSCAPES_FX_FRACTION * width
    return np.array([[f, 0.0, CITYSCAPES_CX_FRACTION * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]])


def write_synthetic_cityscapes(out_dir: str, cities: Sequence[str] = ("aachen", "bremen"),
                               split: str = "train", frames: Sequence[int] = (18, 19, 20),
                               annotated_frame: int = 19, width: int = 256, height: int = 128,
                               seed: int = 0) -> Dict[str, object]:
    """Write one snippet (sequence 000000) per city of ``split``: the frames' stereo PNGs in
    the ``_sequence`` packages, the snippet's camera JSON and disparity PNG for
    ``annotated_frame`` only (as Cityscapes publishes them). Returns the folders, the
    annotated frame and each folder's baseline and camera matrix."""
    _check_world_arguments("cities", len(cities), "frames", len(frames), width, height, seed)
    for root in SIDE_ROOTS.values():  # the _sequence packages: the layout then reads from them
        os.makedirs(os.path.join(out_dir, root + "_sequence", split), exist_ok=True)
    layout = CityscapesLayout(out_dir)
    K = cityscapes_intrinsics(width, height)
    folders, baselines = [], {}
    for index, city in enumerate(cities):
        folder = f"{split}/{city}/000000"
        baseline = CITYSCAPES_BASELINES[index % len(CITYSCAPES_BASELINES)]
        folders.append(folder)
        baselines[folder] = baseline
        world = make_world(seed, index, max(frames) + 1)
        for frame in frames:
            views = stereo_rig_views(world, frame, K, width, height, baseline)
            for side, (rgb, _) in views.items():
                _atomic_write_bytes(layout.image_path(folder, frame, side), _png_bytes(rgb))
            if frame != annotated_frame:
                continue
            camera = {"extrinsic": {"baseline": baseline, "pitch": 0.0, "roll": 0.0, "x": 1.7,
                                    "y": 0.1, "yaw": 0.0, "z": 1.2},
                      "intrinsic": {"fx": K[0, 0], "fy": K[1, 1], "u0": K[0, 2], "v0": K[1, 2]}}
            _atomic_write_bytes(layout.camera_path(folder, frame), json.dumps(camera, indent=2).encode())
            depth = views["l"][1]
            disparity = np.where(depth > 0, K[0, 0] * baseline / np.where(depth > 0, depth, 1), 0)
            buffer = io.BytesIO()
            Image.fromarray(disparity_png_array(disparity)).save(buffer, format="PNG")
            _atomic_write_bytes(layout.gt_path(folder, frame, "l"), buffer.getvalue())
    return {"out_dir": os.path.abspath(out_dir), "folders": folders, "frames": list(frames),
            "annotated_frame": annotated_frame, "baselines": baselines, "K": K}
