"""Cityscapes (``--dataset cityscapes``): the layout and the evaluation's test list.

  <data_path>/leftImg8bit[_sequence]/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
  <data_path>/rightImg8bit[_sequence]/<split>/<city>/<city>_<seq>_<frame>_rightImg8bit.png
  <data_path>/camera/<split>/<city>/<city>_<seq>_<frame>_camera.json
                                    extrinsic.baseline (m), intrinsic.fx, fy, u0, v0 (pixels)
  <data_path>/disparity/<split>/<city>/<city>_<seq>_<frame>_disparity.png
                                    uint16 p: disparity = (p - 1) / 256 px, p = 0 none

``<seq>`` and ``<frame>`` are 6 digits. Split lines are ``<split>/<city>/<seq> <frame> <side>``
(e.g. ``train/aachen/000000 19 l``), so temporal neighbours are frame +- 1 of the
``_sequence`` packages (used when ``leftImg8bit_sequence/<split>`` exists). Cameras are per
image; a sequence frame without its own camera file uses its snippet's (same city and
sequence number), as the camera packages calibrate one frame per snippet.

The loader keeps the top 75 % of every image (the ego car's bonnet removed, as the
self-supervised literature trains): images and ground truth are cropped alike and the camera
describes the cropped image (fy and cy normalised by 0.75 H). Ground truth exists for the left
view (``disparity``); depth = baseline * fx / disparity.

The evaluation's test list (``--eval_split cityscapes``) is ManyDepth's 1,525 test images,
lines ``<city> <city>_<seq>_<frame>``, fetched from a pinned commit and checked by sha256
(``fetch_cityscapes_split``), never committed.
"""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from depth_hints.splits import (PROJECT_SPLITS_DIR, Sample, SplitError, fetch_split_files,
                                 numbered_fields)

from .layout import (CalibrationError, Camera, DatasetError, DatasetLayout, LayoutError, image_size,
                     read_calibration_json)

#: the rows the loader keeps, from the top
CITYSCAPES_CROP_ROWS = 0.75
SIDE_ROOTS = {"l": "leftImg8bit", "r": "rightImg8bit"}
_FOLDER = re.compile(r"[^/\s]+/[^/\s]+/\d{6}")
_LINE_EXAMPLE = "'train/aachen/000000 19 l'"
CAMERA_EXAMPLE = ('{"extrinsic": {"baseline": 0.209, ...}, "intrinsic": {"fx": 2262.5, '
                  '"fy": 2265.3, "u0": 1096.9, "v0": 513.1}}')

#: ManyDepth's Cityscapes test list (relative path -> (base URL, sha256)), fetched for users
_MANYDEPTH = ("https://raw.githubusercontent.com/nianticlabs/manydepth/"
              "a36212bda725438c0b96ce0793a92f9c148914bf/splits/")
CITYSCAPES_SPLIT_FILES = {
    "cityscapes/test_files.txt": (_MANYDEPTH, "e70c04ba9d091d11b4dc25de78ec8d33212081c72e641ce3c42aab1a07331daa"),
}
CITYSCAPES_EVAL_SPLIT = "cityscapes"
FETCH_CITYSCAPES_HINT = "python scripts/fetch_cityscapes_splits.py"
#: the evaluation window of the cropped 1024 x 2048 frame: rows 256..768, columns 192..1856
EVAL_ROWS = (256, 768)
EVAL_COLUMNS = (192, 1856)
EVAL_FRAME_SIZE = (1024, 2048)


def frame_stem(folder: str, frame_index: int) -> tuple:
    """'<split>/<city>/<seq>' and a frame -> (split, city, '<city>_<seq>_<frame:06d>')."""
    split, city, sequence = folder.split("/")
    return split, city, f"{city}_{sequence}_{int(frame_index):06d}"


def read_camera_json(path: str, image_width: int, image_height: int,
                     crop_rows: float = CITYSCAPES_CROP_ROWS) -> Camera:
    """A Cityscapes camera JSON -> Camera of the image cropped to its top ``crop_rows``:
    (fx / W, fy / (crop_rows H), u0 / W, v0 / (crop_rows H)), extrinsic.baseline metres.
    Raises CalibrationError naming the file and the key."""
    data = read_calibration_json(path, "Camera file", "unpack Cityscapes' camera_trainvaltest "
                                 "package under --data_path.")
    values = {}
    for group, key in (("extrinsic", "baseline"), ("intrinsic", "fx"), ("intrinsic", "fy"),
                       ("intrinsic", "u0"), ("intrinsic", "v0")):
        section = data.get(group) if isinstance(data, dict) else None
        if not isinstance(section, dict) or key not in section:
            raise CalibrationError(f"Camera file {path} has no key {group}.{key}; expected "
                                   f"{CAMERA_EXAMPLE}.")
        try:
            values[key] = float(section[key])
        except (TypeError, ValueError):
            raise CalibrationError(f"Camera file {path}: {group}.{key} is {section[key]!r}, "
                                   f"not a number.") from None
        if not np.isfinite(values[key]) or (key in ("baseline", "fx", "fy") and values[key] <= 0):
            raise CalibrationError(f"Camera file {path}: {group}.{key} is {section[key]!r}; "
                                   f"baseline, fx and fy must be positive and finite.")
    height = image_height * crop_rows
    return Camera((values["fx"] / image_width, values["fy"] / height, values["u0"] / image_width,
                   values["v0"] / height), values["baseline"])


def read_disparity_png(path: str) -> np.ndarray:
    """A Cityscapes disparity PNG -> float32 [H, W] pixels: (p - 1) / 256 where p > 0, else 0."""
    if not os.path.isfile(path):
        raise DatasetError(f"Disparity {path} does not exist; unpack Cityscapes' disparity "
                           f"package under --data_path.")
    try:
        with Image.open(path) as image:
            raw = np.asarray(image).astype(np.float32)
    except Exception as e:
        raise DatasetError(f"Disparity {path} could not be read ({type(e).__name__}: {e}).") from None
    if raw.ndim != 2:
        raise DatasetError(f"Disparity {path} has shape {raw.shape}; expected a 16-bit one-channel PNG.")
    return np.where(raw > 0, (raw - 1.0) / 256.0, 0.0).astype(np.float32)


def disparity_png_array(disparity: np.ndarray) -> np.ndarray:
    """Disparity [H, W] pixels (<= 0: none) -> Cityscapes' uint16 values p = d * 256 + 1
    (rounded; 0 = none). The inverse of ``read_disparity_png`` to 1/256 px."""
    disparity = np.asarray(disparity, np.float64)
    valid = np.isfinite(disparity) & (disparity > 0)
    out = np.zeros(disparity.shape, np.uint16)
    out[valid] = np.clip(np.rint(disparity[valid] * 256.0 + 1.0), 1, 65535)
    return out


class CityscapesLayout(DatasetLayout):
    """Cityscapes stereo frames (sequence packages when present), per-image cameras, the top
    75 % kept, disparity ground truth of the left view."""

    name = "cityscapes"
    gt_kind = "disparity"
    crop_rows = CITYSCAPES_CROP_ROWS

    def __init__(self, data_path: str, img_ext: str = ".png"):
        super().__init__(data_path, ".png")
        self._roots: dict = {}
        self._sizes: dict = {}
        self._cameras: dict = {}

    def check_sample(self, sample, where=""):
        if not _FOLDER.fullmatch(sample.folder):
            raise LayoutError(f"{where + ': ' if where else ''}Cityscapes folder {sample.folder!r} "
                              f"is not '<split>/<city>/<sequence:06d>'; lines look like {_LINE_EXAMPLE}.")
        super().check_sample(sample, where)

    def _root(self, side: str, split: str) -> str:
        """leftImg8bit_sequence (or rightImg8bit_sequence) when it holds ``split``, else the
        plain package."""
        key = (side, split)
        if key not in self._roots:
            sequence = os.path.join(self.data_path, SIDE_ROOTS[side] + "_sequence")
            self._roots[key] = (sequence if os.path.isdir(os.path.join(sequence, split))
                                else os.path.join(self.data_path, SIDE_ROOTS[side]))
        return self._roots[key]

    def image_path(self, folder, frame_index, side):
        split, city, stem = frame_stem(folder, frame_index)
        return os.path.join(self._root(side, split), split, city, f"{stem}_{SIDE_ROOTS[side]}.png")

    def camera_path(self, folder: str, frame_index: int) -> str:
        """camera/<split>/<city>/<stem>_camera.json; a frame without one: its snippet's."""
        split, city, stem = frame_stem(folder, frame_index)
        directory = os.path.join(self.data_path, "camera", split, city)
        path = os.path.join(directory, f"{stem}_camera.json")
        if not os.path.isfile(path):
            prefix = stem.rsplit("_", 1)[0]
            found = sorted(glob.glob(os.path.join(glob.escape(directory), f"{prefix}_*_camera.json")))
            if found:
                return found[0]
        return path

    def stored_size(self, folder: str, frame_index: int) -> tuple:
        """(width, height) of the stored left image (cached per folder)."""
        if folder not in self._sizes:
            self._sizes[folder] = image_size(self.image_path(folder, frame_index, "l"))
        return self._sizes[folder]

    def camera(self, folder, frame_index=None):
        if frame_index is None:
            raise LayoutError("Cityscapes calibrates each image: camera(folder, frame_index).")
        path = self.camera_path(folder, frame_index)
        if path not in self._cameras:
            self._cameras[path] = read_camera_json(path, *self.stored_size(folder, frame_index))
        return self._cameras[path]

    def gt_path(self, folder, frame_index, side):
        """disparity/<split>/<city>/<stem>_disparity.png (left view only)."""
        if side != "l":
            return None
        split, city, stem = frame_stem(folder, frame_index)
        return os.path.join(self.data_path, "disparity", split, city, f"{stem}_disparity.png")

    def _read_gt_file(self, path):
        return read_disparity_png(path)


# ----------------------------------------------------------------------------- test list

def fetch_cityscapes_split(out_dir=PROJECT_SPLITS_DIR, **kwargs) -> list:
    """Download ManyDepth's Cityscapes test list (pinned commit, sha256-checked) into
    ``out_dir``/cityscapes/test_files.txt."""
    return fetch_split_files(CITYSCAPES_SPLIT_FILES, out_dir, **kwargs)


def read_cityscapes_test_list(path) -> list:
    """ManyDepth's test list (lines '<city> <city>_<seq>_<frame>') -> Samples
    ('test/<city>/<seq>', frame, 'l'). A malformed line raises naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"Cityscapes test list {path} does not exist: run "
                         f"`{FETCH_CITYSCAPES_HINT}` or pass --eval_split <folder with test_files.txt>.")
    samples = []
    for number, line, parts in numbered_fields(path):
        match = re.fullmatch(r"(.+)_(\d{6})_(\d{6})", parts[-1]) if len(parts) == 2 else None
        if match is None or match.group(1) != parts[0]:
            raise SplitError(f"{path}:{number}: malformed line {line.strip()!r}; expected "
                             f"'<city> <city>_<seq:06d>_<frame:06d>', e.g. "
                             f"'leverkusen leverkusen_000039_000019'.")
        samples.append(Sample(f"test/{parts[0]}/{match.group(2)}", int(match.group(3)), "l"))
    if not samples:
        raise SplitError(f"Cityscapes test list {path} lists no images.")
    return samples


def is_cityscapes_test_list(path) -> bool:
    """Whether a test list is in ManyDepth's '<city> <city>_<seq>_<frame>' format (its first
    line), rather than the project's '<split>/<city>/<seq> <frame> <side>'."""
    try:
        with open(path) as f:
            first = f.readline().split()
    except OSError:
        return False
    return len(first) == 2 and re.fullmatch(r".+_\d{6}_\d{6}", first[1]) is not None


def cityscapes_test_file(eval_split: str) -> Path:
    """--eval_split cityscapes -> splits/cityscapes/test_files.txt (fetched), else the named
    folder's test_files.txt."""
    if eval_split == CITYSCAPES_EVAL_SPLIT:
        return PROJECT_SPLITS_DIR / "cityscapes" / "test_files.txt"
    return Path(eval_split) / "test_files.txt"
