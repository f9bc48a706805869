"""Middlebury 2014 stereo (``--dataset middlebury``): the layout.

  <data_path>/<scene>/im0.png, im1.png      the rectified left and right views
  <data_path>/<scene>/calib.txt             cam0=[f 0 cx0; 0 f cy; 0 0 1], cam1=[...], doffs,
                                            baseline (mm), width, height, ndisp, ...
  <data_path>/<scene>/disp0.pfm, disp1.pfm  ground-truth disparity of each view (pixels,
                                            inf = unknown)

Split lines are ``<scene> 0 l`` (one pair per scene; the frame field is ignored). Camera:
cam0's intrinsics normalised by (width, height), the baseline in metres and doffs / width
(doffs = cx1 - cx0, pixels): depth = baseline * f / (d + doffs). Both views share cam0's
normalised intrinsics; the doffs between their principal points enters the hints' and the
ground truth's depth conversion and the training's stereo warp (``stereo_T``'s principal-point
offset, ``MonoDataset.stereo_transform``).
"""
from __future__ import annotations

import os
import re

import numpy as np

from depth_hints.pfm import read_pfm

from .layout import CalibrationError, Camera, DatasetLayout, LayoutError, check_gt_size, image_size

VIEW_FILES = {"l": "im0.png", "r": "im1.png"}
DISPARITY_FILES = {"l": "disp0.pfm", "r": "disp1.pfm"}
CALIB_FILE = "calib.txt"
CALIB_KEYS = ("cam0", "cam1", "doffs", "baseline", "width", "height")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def parse_camera_matrix(text: str, path: str, key: str) -> np.ndarray:
    """'[f 0 cx; 0 f cy; 0 0 1]' -> float64 [3, 3]; CalibrationError naming the file and key."""
    rows = [row.split() for row in text.strip().strip("[]").split(";")]
    try:
        matrix = np.array([[float(v) for v in row] for row in rows], np.float64)
    except ValueError:
        matrix = None
    if matrix is None or matrix.shape != (3, 3) or matrix[0, 0] <= 0:
        raise CalibrationError(f"Calibration {path}: {key} = {text.strip()!r} is not a 3x3 camera "
                               f"matrix '[f 0 cx; 0 f cy; 0 0 1]' with f > 0.")
    return matrix


def read_calib_txt(path: str) -> dict:
    """Middlebury calib.txt -> {'cam0', 'cam1': [3,3], 'doffs', 'baseline' (mm), 'width',
    'height', 'ndisp' (if present): floats}. Raises CalibrationError naming the file and key."""
    if not os.path.isfile(path):
        raise CalibrationError(f"Calibration {path} does not exist; each Middlebury scene folder "
                               f"holds im0.png, im1.png and calib.txt.")
    entries = {}
    with open(path) as f:
        for line in f:
            key, sep, value = line.partition("=")
            if sep:
                entries[key.strip()] = value.strip()
    out = {}
    for key in CALIB_KEYS + ("ndisp",):
        if key not in entries:
            if key == "ndisp":
                continue
            raise CalibrationError(f"Calibration {path} has no key {key!r} (Middlebury's calib.txt "
                                   f"has cam0, cam1, doffs, baseline, width, height, ndisp).")
        if key.startswith("cam"):
            out[key] = parse_camera_matrix(entries[key], path, key)
            continue
        if not re.fullmatch(_NUMBER, entries[key]):
            raise CalibrationError(f"Calibration {path}: {key} = {entries[key]!r} is not a number.")
        out[key] = float(entries[key])
    for key in ("baseline", "width", "height"):
        if out[key] <= 0:
            raise CalibrationError(f"Calibration {path}: {key} = {out[key]:g} must be positive.")
    return out


def middlebury_camera(calib: dict) -> Camera:
    """read_calib_txt's dict -> Camera: cam0 normalised by (width, height), baseline mm -> m,
    doffs / width."""
    width, height = calib["width"], calib["height"]
    cam0 = calib["cam0"]
    return Camera((cam0[0, 0] / width, cam0[1, 1] / height, cam0[0, 2] / width, cam0[1, 2] / height),
                  calib["baseline"] / 1000.0, calib["doffs"] / width)


class MiddleburyLayout(DatasetLayout):
    """Middlebury 2014 scenes: one rectified pair per scene folder, calib.txt, PFM disparity."""

    name = "middlebury"
    gt_kind = "disparity"
    gt_files = "disp0.pfm (disp1.pfm for the right view) in the scene folder"

    def __init__(self, data_path: str, img_ext: str = ".png"):
        super().__init__(data_path, ".png")
        self._calib: dict = {}

    def image_path(self, folder, frame_index, side):
        """<data_path>/<scene>/im0.png (left) or im1.png (right)."""
        return os.path.join(self.data_path, folder, VIEW_FILES[side])

    def calib(self, folder: str) -> dict:
        """The scene's calib.txt (``read_calib_txt``), checked against the stored im0.png size."""
        if folder not in self._calib:
            path = os.path.join(self.data_path, folder, CALIB_FILE)
            calib = read_calib_txt(path)
            image = self.image_path(folder, 0, "l")
            if os.path.isfile(image):
                width, height = image_size(image)
                if (width, height) != (int(calib["width"]), int(calib["height"])):
                    raise CalibrationError(f"Calibration {path}: width x height "
                                           f"{calib['width']:g}x{calib['height']:g} but {image} is "
                                           f"{width}x{height}; use the calib.txt of this image size.")
            self._calib[folder] = calib
        return self._calib[folder]

    def camera(self, folder, frame_index=None):
        return middlebury_camera(self.calib(folder))

    def neighbour(self, sample, offset):
        raise LayoutError(f"Middlebury scene {sample.folder!r} is a single stereo pair: train "
                          f"or evaluate with --frame_ids 0 (stereo only).")

    def gt_path(self, folder, frame_index, side):
        """<data_path>/<scene>/disp0.pfm (left) or disp1.pfm (right)."""
        return os.path.join(self.data_path, folder, DISPARITY_FILES[side])

    def _read_gt_file(self, path):
        disparity = read_pfm(path)
        disparity = disparity[..., 0] if disparity.ndim == 3 else disparity
        disparity = np.where(np.isfinite(disparity) & (disparity > 0), disparity, 0).astype(np.float32)
        image = os.path.join(os.path.dirname(path), VIEW_FILES["l" if path.endswith("0.pfm") else "r"])
        if os.path.isfile(image):
            check_gt_size(path, disparity, image_size(image))
        return disparity
