"""SceneFlow (FlyingThings3D, Driving, Monkaa): the layout, clean or final pass, and its split lists.

Root layout under ``--data_path`` (each subset unpacked as published, in a lower-case folder)::

  flyingthings3d/frames_{cleanpass,finalpass}/{TRAIN,TEST}/{A,B,C}/NNNN/{left,right}/XXXX.png
  flyingthings3d/disparity/{TRAIN,TEST}/{A,B,C}/NNNN/{left,right}/XXXX.pfm
  driving/frames_{cleanpass,finalpass}/{15mm,35mm}_focallength/scene_{forwards,backwards}/{fast,slow}/{left,right}/XXXX.png
  driving/disparity/<the same folders>/{left,right}/XXXX.pfm
  monkaa/frames_{cleanpass,finalpass}/<scene>/{left,right}/XXXX.png
  monkaa/disparity/<scene>/{left,right}/XXXX.pfm

Split-file lines are ``<subset>/<pass-relative folder> <frame> <l|r>``, e.g.
``flyingthings3d/TRAIN/A/0000 6 l``, ``driving/15mm_focallength/scene_forwards/fast 12 r``,
``monkaa/eating_x2 3 l``; the pass (``--sceneflow_pass``) is chosen by the loader, not the
line, and frame numbers are written %04d in file names. Frames are the published .png files
(``img_ext`` is accepted for interface compatibility and ignored).

Camera: 960x540 images, principal point at the centre, focal length 1050 px (35 mm lens:
FlyingThings3D, Monkaa, Driving 35mm) or 450 px (Driving 15mm), normalised as KITTI's are
(fx/W, fy/H, cx/W, cy/H). Training keeps the nominal 0.1 stereo baseline of ``stereo_T`` (so a
stereo-trained model's depth times SCENEFLOW_STEREO_SCALE_FACTOR is in scene units). Ground
truth: SceneFlow's disparity maps (pixels, positive, in both views); depth = f * B / disparity
with the renders' baseline B = 1.0 scene unit (SceneFlow has no metric scale), 0 where the
disparity is <= 0.
"""
from __future__ import annotations

import os
import random
import re

import numpy as np
import torch

from depth_hints import geometry
from depth_hints.atomic import atomic_write
from depth_hints.pfm import read_pfm

from .layout import Camera, DatasetError, DatasetLayout, LayoutError

SUBSETS = ("driving", "flyingthings3d", "monkaa")
PASSES = ("clean", "final")
SIDE_TO_FOLDER = {"l": "left", "r": "right"}
#: published render size (width, height)
SCENEFLOW_SIZE = (960, 540)
FOCAL_LENGTH_35MM_PX = 1050.0
FOCAL_LENGTH_15MM_PX = 450.0
#: stereo baseline of the renders, in SceneFlow's (arbitrary) scene units
SCENEFLOW_BASELINE = 1.0
#: a stereo-trained model's depth (nominal baseline 0.1) times this -> SceneFlow scene units
SCENEFLOW_STEREO_SCALE_FACTOR = SCENEFLOW_BASELINE / geometry.NOMINAL_BASELINE
FRAME_EXT = ".png"

# the pass-relative folder of a sequence, per subset
_FOLDER_PATTERNS = {
    "flyingthings3d": (re.compile(r"(TRAIN|TEST)/[ABC]/\d{4}"), "TRAIN/A/0000"),
    "driving": (re.compile(r"(15|35)mm_focallength/scene_(forwards|backwards)/(fast|slow)"),
                "15mm_focallength/scene_forwards/fast"),
    "monkaa": (re.compile(r"[^/\s]+"), "eating_x2"),
}
_LINE_FORMAT = ("'<subset>/<folder> <frame> <l|r>', e.g. 'flyingthings3d/TRAIN/A/0000 6 l', "
                "'driving/15mm_focallength/scene_forwards/fast 12 r' or 'monkaa/eating_x2 3 l'")


class SceneFlowError(LayoutError):
    """A split line or option that does not fit the SceneFlow layout; the message says the fix."""


def split_folder(folder: str, line: str | None = None) -> tuple[str, str]:
    """'<subset>/<pass-relative folder>' -> (subset, pass-relative folder), validated."""
    where = f"Split line {line!r}" if line else f"SceneFlow folder {folder!r}"
    subset, _, rest = folder.strip("/").partition("/")
    if subset not in SUBSETS:
        raise SceneFlowError(f"{where}: unknown SceneFlow subset {subset!r}; valid subsets are "
                             f"{', '.join(SUBSETS)}. Lines look like {_LINE_FORMAT}.")
    pattern, example = _FOLDER_PATTERNS[subset]
    if not pattern.fullmatch(rest):
        raise SceneFlowError(f"{where}: {rest!r} is not a {subset} sequence folder (expected e.g. "
                             f"{subset}/{example}). Lines look like {_LINE_FORMAT}.")
    return subset, rest


def focal_length_px(folder: str) -> float:
    """Focal length in pixels at 960x540 of a sequence folder ('<subset>/...')."""
    subset, rest = split_folder(folder)
    if subset == "driving" and rest.startswith("15mm_focallength"):
        return FOCAL_LENGTH_15MM_PX
    return FOCAL_LENGTH_35MM_PX


def sceneflow_normalised_intrinsics(folder: str) -> torch.Tensor:
    """Normalised 4x4 intrinsics (fx/W, fy/H, 0.5, 0.5) of a sequence folder (float32)."""
    f = focal_length_px(folder)
    width, height = SCENEFLOW_SIZE
    return geometry.normalised_intrinsics(f / width, f / height, 0.5, 0.5)


def sceneflow_camera(folder: str) -> Camera:
    """The Camera of a sequence folder: its float32 normalised intrinsics (the values the
    training's 4x4 holds) and the renders' baseline of 1.0 scene unit."""
    K = sceneflow_normalised_intrinsics(folder)
    return Camera((float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])),
                  SCENEFLOW_BASELINE)


def _sequence_path(data_path: str, folder: str, kind: str) -> str:
    subset, rest = split_folder(folder)
    return os.path.join(data_path, subset, kind, *rest.split("/"))


def sceneflow_image_path(data_path: str, folder: str, frame_index: int, side: str,
                         sceneflow_pass: str = "clean") -> str:
    """<data_path>/<subset>/frames_<pass>pass/<folder>/{left,right}/<frame:04d>.png"""
    if sceneflow_pass not in PASSES:
        raise SceneFlowError(f"--sceneflow_pass {sceneflow_pass!r}: use one of {', '.join(PASSES)}.")
    return os.path.join(_sequence_path(data_path, folder, f"frames_{sceneflow_pass}pass"),
                        SIDE_TO_FOLDER[side], f"{frame_index:04d}{FRAME_EXT}")


def sceneflow_disparity_path(data_path: str, folder: str, frame_index: int, side: str) -> str:
    """<data_path>/<subset>/disparity/<folder>/{left,right}/<frame:04d>.pfm"""
    return os.path.join(_sequence_path(data_path, folder, "disparity"), SIDE_TO_FOLDER[side],
                        f"{frame_index:04d}.pfm")


def read_sceneflow_disparity(path: str) -> np.ndarray:
    """A SceneFlow disparity PFM -> float32 [h, w] pixels (first channel of a 3-channel file)."""
    if not os.path.isfile(path):
        raise DatasetError(f"Disparity {path} does not exist. Unpack SceneFlow's disparity archive "
                           f"of this subset next to its frames_*pass folder (layout in "
                           f"datasets/sceneflow.py), or check --data_path.")
    disparity = read_pfm(path)
    return disparity[..., 0] if disparity.ndim == 3 else disparity


class SceneFlowLayout(DatasetLayout):
    """SceneFlow frames of one render pass; per-sequence cameras; PFM disparity ground truth.

    sceneflow_pass: 'clean' or 'final' (--sceneflow_pass); ``img_ext`` is ignored (.png)."""

    name = "sceneflow"
    gt_kind = "disparity"
    gt_required = True

    def __init__(self, data_path: str, img_ext: str = FRAME_EXT, sceneflow_pass: str = "clean"):
        if sceneflow_pass not in PASSES:
            raise SceneFlowError(f"--sceneflow_pass {sceneflow_pass!r}: use one of {', '.join(PASSES)}.")
        super().__init__(data_path, FRAME_EXT)
        self.sceneflow_pass = sceneflow_pass
        self._cameras: dict = {}

    def check_sample(self, sample, where=""):
        line = f"{sample.folder} {sample.frame_index} {sample.side}"
        try:
            split_folder(sample.folder, line)
        except SceneFlowError as e:
            raise SceneFlowError(f"{where + ': ' if where else ''}{e}") from None
        if sample.frame_index < 0:
            raise SceneFlowError(f"{where + ': ' if where else ''}Split line {line!r}: negative "
                                 f"frame index.")
        super().check_sample(sample, where)

    def image_path(self, folder, frame_index, side):
        return sceneflow_image_path(self.data_path, folder, frame_index, side, self.sceneflow_pass)

    def camera(self, folder, frame_index=None):
        if folder not in self._cameras:
            self._cameras[folder] = sceneflow_camera(folder)
        return self._cameras[folder]

    def gt_path(self, folder, frame_index, side):
        return sceneflow_disparity_path(self.data_path, folder, frame_index, side)

    def _read_gt_file(self, path):
        return read_sceneflow_disparity(path)


# ------------------------------------------------------------------------------- split lists

def _frames_in(directory: str) -> set[int]:
    if not os.path.isdir(directory):
        return set()
    return {int(m.group(1)) for name in os.listdir(directory)
            if (m := re.fullmatch(r"(\d+)" + re.escape(FRAME_EXT), name))}


def scan_sequences(data_path: str, subset: str, sceneflow_pass: str = "clean",
                   show_progress: bool = False) -> dict[str, list[int]]:
    """Sequence folders ('<subset>/<rest>') of one subset -> sorted frame indices that have both
    a left and a right image. Folders that do not fit the layout are skipped."""
    if subset not in SUBSETS:
        raise SceneFlowError(f"SceneFlow subset {subset!r}: valid subsets are {', '.join(SUBSETS)}.")
    if sceneflow_pass not in PASSES:
        raise SceneFlowError(f"--pass {sceneflow_pass!r}: use one of {', '.join(PASSES)}.")
    root = os.path.join(data_path, subset, f"frames_{sceneflow_pass}pass")
    if not os.path.isdir(root):
        raise DatasetError(f"{root} does not exist: unpack SceneFlow's {subset} "
                           f"{sceneflow_pass}-pass frames there, or fix --data_path / --subsets.")
    from tqdm import tqdm
    pattern = _FOLDER_PATTERNS[subset][0]
    found = {}
    bar = tqdm(desc=f"scan {subset}", unit="folder", disable=not show_progress)
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        if "left" in dirnames and "right" in dirnames:
            dirnames[:] = []
            rest = os.path.relpath(dirpath, root).replace(os.sep, "/")
            if pattern.fullmatch(rest):
                both = _frames_in(os.path.join(dirpath, "left")) & _frames_in(os.path.join(dirpath, "right"))
                if both:
                    found[f"{subset}/{rest}"] = sorted(both)
            bar.update(1)
    bar.close()
    return found


def _write_lines(path: str, lines: list[str]) -> None:
    with atomic_write(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


def make_sceneflow_splits(data_path: str, out_dir: str, sceneflow_pass: str = "clean",
                          val_fraction: float = 0.05, seed: int = 0,
                          subsets=("flyingthings3d",), show_progress: bool = False) -> dict:
    """Scan SceneFlow and write ``out_dir``/{train,val,test}_files.txt; returns line counts.

    train/val: frames whose both views and both temporal neighbours (-1, +1, both views) exist,
    one line per side; FlyingThings3D TRAIN, Driving and Monkaa sequences. A deterministic
    ``val_fraction`` of those sequences (at least one when there are two or more), drawn with
    ``seed``, is held out whole as val. test: FlyingThings3D TEST frames with both views and a
    left disparity map, left side only. Empty lists are not written."""
    if not 0 <= val_fraction < 1:
        raise SceneFlowError(f"--val_fraction {val_fraction}: use a fraction in [0, 1).")
    train_val, test = {}, []
    for subset in subsets:
        for folder, frames in scan_sequences(data_path, subset, sceneflow_pass, show_progress).items():
            if subset == "flyingthings3d" and split_folder(folder)[1].startswith("TEST/"):
                test.extend(f"{folder} {f} l" for f in frames
                            if os.path.isfile(sceneflow_disparity_path(data_path, folder, f, "l")))
            else:
                train_val[folder] = frames
    folders = sorted(train_val)
    random.Random(seed).shuffle(folders)
    num_val = round(val_fraction * len(folders))
    if val_fraction > 0 and len(folders) > 1:
        num_val = min(max(num_val, 1), len(folders) - 1)
    val_folders = set(folders[:num_val])
    lists = {"train_files.txt": [], "val_files.txt": [], "test_files.txt": test}
    for folder in sorted(train_val):
        present = set(train_val[folder])
        name = "val_files.txt" if folder in val_folders else "train_files.txt"
        lists[name].extend(f"{folder} {f} {side}" for f in train_val[folder]
                           if f - 1 in present and f + 1 in present for side in "lr")
    if not any(lists.values()):
        raise SceneFlowError(f"No usable SceneFlow frames under {data_path} for subsets "
                             f"{', '.join(subsets)} ({sceneflow_pass} pass); check --data_path "
                             f"against the layout in datasets/sceneflow.py.")
    os.makedirs(out_dir, exist_ok=True)
    for name, lines in lists.items():
        if lines:
            _write_lines(os.path.join(out_dir, name), lines)
    return {name: len(lines) for name, lines in lists.items()}
