"""The dataset layout interface: the one place that knows where a dataset's files are.

A layout is built from ``--data_path`` (and its own options, e.g. ``img_ext``,
``sceneflow_pass``) and answers, for a split sample ``(folder, frame_index, side)``:

  image_path(folder, frame, side)  the stored image of one view ('l' or 'r')
  stereo_image_paths(sample)       (target view, other view) of a sample
  camera(folder, frame=None)       the ``Camera`` of the images the loader sees (after
                                   ``crop_rows``) of a folder, or of one frame where the
                                   dataset calibrates each image (Cityscapes)
  crop_rows                        fraction of rows kept from the top (Cityscapes: 0.75)
  gt_kind                          'depth' (metres), 'disparity' (pixels) or None
  gt_path(folder, frame, side)     where its ground truth lives (None: the layout has none)
  gt_files                         where a frame's ground truth lives, in words (for messages)
  read_gt(folder, frame, side)     ``GroundTruth`` or None (no file and ground truth optional)
  gt_depth(folder, frame, side)    ground truth as depth in metres (disparity converted)
  neighbour(sample, offset)        the temporal neighbour ``offset`` frames away
  check_sample(sample, where)      raise LayoutError when a split line does not fit the layout

The torch loader (``datasets.mono_dataset.MonoDataset``), the precompute and the evaluation
all take a layout; none of them builds a dataset's paths. A new dataset is one module with a
``DatasetLayout`` subclass (+ tests) and one line in ``datasets.registry.LAYOUTS``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import ClassVar, Optional

import numpy as np
import torch
from PIL import Image

from depth_hints import geometry
from depth_hints.errors import DepthHintsError
from depth_hints.splits import Sample

SIDES = ("l", "r")
OTHER_SIDE = {"l": "r", "r": "l"}
GT_KINDS = ("depth", "disparity")


class DatasetError(DepthHintsError, FileNotFoundError):
    """A missing or unreadable input file; the message names it and the fix."""


class LayoutError(DepthHintsError, ValueError):
    """A split line, flag or option that does not fit a dataset layout; the message says the fix."""


class CalibrationError(DatasetError):
    """A missing or malformed calibration file (calib.json / calib.txt / camera JSON); the
    message names the file and the key."""


def read_calibration_json(path: str, label: str, missing_fix: str, expected: str = "") -> dict:
    """A calibration JSON file -> its top-level object. A missing file, invalid JSON or a
    non-object raises CalibrationError naming ``label`` and ``path``; ``missing_fix`` says how
    to get the file, ``expected`` (optional) what it should hold."""
    tail = f"; expected {expected}" if expected else ""
    if not os.path.isfile(path):
        raise CalibrationError(f"{label} {path} does not exist; {missing_fix}")
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise CalibrationError(f"{label} {path} is not valid JSON ({e}){tail}.") from None
    if not isinstance(data, dict):
        raise CalibrationError(f"{label} {path} is not a JSON object{tail}.")
    return data


def image_size(path: str) -> tuple:
    """(width, height) of a stored image from its header; a missing file raises naming it."""
    if not os.path.isfile(path):
        raise DatasetError(f"Image {path} does not exist.")
    try:
        with Image.open(path) as image:
            return image.size
    except Exception as e:
        raise DatasetError(f"Image {path} could not be read ({type(e).__name__}: {e}).") from None


def check_pair_sizes(target: str, other: str) -> tuple:
    """(width, height) of a stereo pair; raises DatasetError naming the pair when the other
    view is missing or the sizes differ."""
    if not os.path.isfile(other):
        raise DatasetError(f"Stereo pair {target} / {other}: the second image does not exist; "
                           f"every left image needs its right image of the same name.")
    size, other_size = image_size(target), image_size(other)
    if size != other_size:
        raise DatasetError(f"Stereo pair {target} ({size[0]}x{size[1]}) / {other} "
                           f"({other_size[0]}x{other_size[1]}): the two views differ in size; "
                           f"store rectified pairs of one size.")
    return size


def check_gt_size(path: str, values: np.ndarray, size: tuple) -> np.ndarray:
    """Ground truth [h, w] must match the stored image (width, height); raises naming the file."""
    if values.shape[:2] != (size[1], size[0]):
        raise DatasetError(f"Ground truth {path} is {values.shape[1]}x{values.shape[0]} but its "
                           f"image is {size[0]}x{size[1]}; store ground truth at the image's size.")
    return values


def kept_rows(height: int, fraction: float) -> int:
    """Rows kept by a top crop of ``fraction`` of ``height`` rows (rounded: 1024 x 0.75 = 768)."""
    return int(round(height * fraction))


def other_side(side: str) -> str:
    """'l' <-> 'r'; anything else raises naming the side."""
    if side not in OTHER_SIDE:
        raise LayoutError(f"stereo side must be 'l' or 'r', got {side!r}")
    return OTHER_SIDE[side]


@dataclasses.dataclass(frozen=True)
class Camera:
    """A rectified stereo camera as seen in the stored images of one folder.

    intrinsics: (fx/W, fy/H, cx/W, cy/H) of the stored image (normalised; the principal point
    need not be centred). baseline: distance between the two cameras in metres (SceneFlow:
    its scene units). doffs: the principal points' x difference of the two views as a
    fraction of the image width (Middlebury's doffs / W; 0 for rectified rigs with one shared
    principal point); depth = fx_px * baseline / (disparity + doffs * W)."""
    intrinsics: tuple
    baseline: float
    doffs: float = 0.0

    @property
    def fx_normalised(self) -> float:
        return float(self.intrinsics[0])

    @property
    def metric_scale(self) -> float:
        """A stereo-trained model's depth (nominal baseline 0.1) times this -> metres."""
        return self.baseline / geometry.NOMINAL_BASELINE

    def K(self) -> torch.Tensor:
        """Normalised 4x4 intrinsics (float32)."""
        return geometry.normalised_intrinsics(*self.intrinsics)

    def flipped(self) -> "Camera":
        """The camera of the horizontally mirrored images: cx -> 1 - cx (normalised); a
        mirrored pair swaps the views, so doffs keeps its value."""
        fx, fy, cx, cy = self.intrinsics
        return dataclasses.replace(self, intrinsics=(fx, fy, 1.0 - cx, cy))

    def fx_px(self, width: int) -> float:
        """Focal length in pixels of an image ``width`` px wide."""
        return self.fx_normalised * width

    def disparity_to_depth(self, disparity_px, width: int):
        """Disparity in pixels at image width ``width`` -> depth in metres; 0 where d <= 0.
        numpy or torch."""
        if self.doffs:
            valid = disparity_px > 0
            disparity_px = (disparity_px + self.doffs * width) * valid
        return geometry.disparity_to_depth(disparity_px, self.fx_px(width), self.baseline)

    def depth_to_disparity(self, depth_m, width: int):
        """Depth in metres -> disparity in pixels at width ``width``; 0 where depth <= 0."""
        disparity = geometry.depth_to_disparity(depth_m, self.fx_px(width), self.baseline)
        if self.doffs:
            disparity = (disparity - self.doffs * width) * (disparity > 0)
        return disparity


def rig_metric_scale(cameras, tolerance: float = 1e-3):
    """The metric factor (baseline / 0.1) shared by ``cameras``, or None when their baselines
    differ by more than ``tolerance`` (relative): a mixed-rig set trains in baseline units."""
    baselines = sorted({float(c.baseline) for c in cameras})
    if not baselines:
        return None
    if baselines[-1] > baselines[0] * (1.0 + tolerance):
        return None
    return baselines[0] / geometry.NOMINAL_BASELINE


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """One view's ground truth: ``values`` float32 [h, w] of the stored map, depth in metres
    (kind 'depth') or disparity in pixels at the map's width (kind 'disparity'); 0 or not
    finite = none. ``path``: the file it came from."""
    kind: str
    values: np.ndarray
    path: str


class DatasetLayout:
    """Base class of every dataset layout; subclasses fill in the paths, camera and ground truth.

    data_path: the dataset root (--data_path); img_ext: image extension for layouts that store
    both .jpg and .png (--png)."""

    #: the --dataset name(s) it is registered under are in datasets.registry.LAYOUTS
    name: ClassVar[str] = ""
    #: 'depth' (metres), 'disparity' (pixels) or None: what ``read_gt`` returns
    gt_kind: ClassVar[Optional[str]] = None
    #: True when every sample must have ground truth (read_gt raises instead of returning None)
    gt_required: ClassVar[bool] = False
    #: the precompute's SGM bank: numDisparities scaled to the camera's focal length in pixels
    #: at the hint width (``fused_sgm.bank_disparities``); False keeps the paper's 64..160
    scaled_matcher_bank: ClassVar[bool] = True
    #: fraction of the stored rows the loader keeps, from the top (Cityscapes drops the ego
    #: car's bonnet: 0.75); images and ground truth are cropped alike and ``camera`` describes
    #: the cropped image
    crop_rows: ClassVar[float] = 1.0
    #: where this layout keeps a frame's ground truth, in words for error messages ("" none)
    gt_files: ClassVar[str] = ""
    #: True when split lines name frames by file name (``<sequence> <name> <side>``) rather
    #: than by an integer index
    named_frames: ClassVar[bool] = False

    def __init__(self, data_path: str, img_ext: str = ".jpg"):
        self.data_path = data_path
        self.img_ext = img_ext

    # -- what subclasses provide ------------------------------------------------------------
    def image_path(self, folder: str, frame_index: int, side: str) -> str:
        """Path of the stored image of one view."""
        raise NotImplementedError

    def camera(self, folder: str, frame_index=None) -> Camera:
        """The camera of a folder's images as the loader sees them (after ``crop_rows``);
        ``frame_index`` matters only for datasets that calibrate each image."""
        raise NotImplementedError

    def gt_path(self, folder: str, frame_index: int, side: str) -> Optional[str]:
        """Where one view's ground truth lives; None when the layout has none."""
        return None

    def _read_gt_file(self, path: str) -> np.ndarray:
        """Read one ground-truth file -> float32 [h, w] of kind ``gt_kind``."""
        raise NotImplementedError

    def check_sample(self, sample: Sample, where: str = "") -> None:
        """Raise LayoutError (naming ``where``, e.g. the split file) when ``sample`` does not
        fit this layout. The default accepts any folder and side 'l' / 'r'."""
        if sample.side not in OTHER_SIDE:
            raise LayoutError(f"{where + ': ' if where else ''}side {sample.side!r} of "
                              f"'{sample.folder} {sample.frame_index} {sample.side}': use l or r.")
        if not self.named_frames and not isinstance(sample.frame_index, int):
            raise LayoutError(f"{where + ': ' if where else ''}frame {sample.frame_index!r} of "
                              f"'{sample.folder} {sample.frame_index} {sample.side}' is not an "
                              f"integer index, which --dataset {self.name} needs.")

    # -- shared -----------------------------------------------------------------------------
    def crop_image(self, image):
        """A stored image (PIL) -> the part the loader keeps: the top ``crop_rows`` of its rows."""
        if self.crop_rows >= 1.0:
            return image
        width, height = image.size
        return image.crop((0, 0, width, kept_rows(height, self.crop_rows)))

    def crop_array(self, array: np.ndarray) -> np.ndarray:
        """A stored map [h, w, ...] (ground truth) -> its top ``crop_rows`` rows."""
        if self.crop_rows >= 1.0:
            return array
        return array[:kept_rows(array.shape[0], self.crop_rows)]

    def check_pair(self, sample: Sample) -> tuple:
        """(width, height) of a sample's stereo pair; DatasetError naming the pair when the
        other view is missing or the two differ in size."""
        return check_pair_sizes(*self.stereo_image_paths(sample))

    def stereo_image_paths(self, sample: Sample) -> tuple:
        """(target, other) image paths of a sample: its own side, then the other side."""
        return (self.image_path(sample.folder, sample.frame_index, sample.side),
                self.image_path(sample.folder, sample.frame_index, other_side(sample.side)))

    def neighbour(self, sample: Sample, offset: int) -> Sample:
        """The frame ``offset`` away in the same folder and side (existence not checked)."""
        return Sample(sample.folder, sample.frame_index + offset, sample.side)

    def read_gt(self, folder: str, frame_index: int, side: str) -> Optional[GroundTruth]:
        """One view's ground truth, or None where the layout or this frame has none (a missing
        file raises DatasetError when ``gt_required``)."""
        path = self.gt_path(folder, frame_index, side)
        if path is None:
            return None
        if not os.path.isfile(path) and not self.gt_required:
            return None
        return GroundTruth(self.gt_kind, self.crop_array(self._read_gt_file(path)), path)

    def gt_depth(self, folder: str, frame_index: int, side: str) -> Optional[np.ndarray]:
        """Ground-truth depth in metres float32 [h, w] (0 = none), or None."""
        gt = self.read_gt(folder, frame_index, side)
        if gt is None:
            return None
        if gt.kind == "depth":
            return gt.values
        disparity = np.where(np.isfinite(gt.values), gt.values, 0).astype(np.float32)
        # the focal length in pixels of the stored map, so a resized map stays consistent
        camera = self.camera(folder, frame_index)
        return camera.disparity_to_depth(disparity, disparity.shape[1]).astype(np.float32)
