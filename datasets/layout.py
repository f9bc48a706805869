"""The dataset layout interface: the one place that knows where a dataset's files are.

A layout is built from ``--data_path`` (and its own options, e.g. ``img_ext``,
``sceneflow_pass``) and answers, for a split sample ``(folder, frame_index, side)``:

  image_path(folder, frame, side)  the stored image of one view ('l' or 'r')
  stereo_image_paths(sample)       (target view, other view) of a sample
  camera(folder)                   the ``Camera`` of the stored images of a folder (sequence)
  gt_kind                          'depth' (metres), 'disparity' (pixels) or None
  gt_path(folder, frame, side)     where its ground truth lives (None: the layout has none)
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
import os
from typing import ClassVar, Optional

import numpy as np
import torch

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

    def __init__(self, data_path: str, img_ext: str = ".jpg"):
        self.data_path = data_path
        self.img_ext = img_ext

    # -- what subclasses provide ------------------------------------------------------------
    def image_path(self, folder: str, frame_index: int, side: str) -> str:
        """Path of the stored image of one view."""
        raise NotImplementedError

    def camera(self, folder: str) -> Camera:
        """The camera of a folder's stored images."""
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

    # -- shared -----------------------------------------------------------------------------
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
        return GroundTruth(self.gt_kind, self._read_gt_file(path), path)

    def gt_depth(self, folder: str, frame_index: int, side: str) -> Optional[np.ndarray]:
        """Ground-truth depth in metres float32 [h, w] (0 = none), or None."""
        gt = self.read_gt(folder, frame_index, side)
        if gt is None:
            return None
        if gt.kind == "depth":
            return gt.values
        disparity = np.where(np.isfinite(gt.values), gt.values, 0).astype(np.float32)
        # the focal length in pixels of the stored map, so a resized map stays consistent
        return self.camera(folder).disparity_to_depth(disparity, disparity.shape[1]).astype(np.float32)
