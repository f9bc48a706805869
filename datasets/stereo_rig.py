"""Your own calibrated stereo rig (``--dataset stereo``): the layout.

  <data_path>/<sequence>/left/<name>.png|.jpg      rectified left images
  <data_path>/<sequence>/right/<name>.png|.jpg     the right images, same names
  <data_path>/<sequence>/calib.json                {"fx", "fy", "cx", "cy": pixels of the stored
                                                    images, "baseline": metres, "doffs":
                                                    optional, cx_right - cx_left in pixels,
                                                    "width", "height": optional, the size the
                                                    calibration is for (checked)}
  <data_path>/<sequence>/depth/<name>.npy          optional ground truth, metres, 0 = none
  <data_path>/<sequence>/disparity/<name>.pfm      optional left-view disparity, pixels,
                                                    inf or <= 0 = none

Split lines are ``<sequence> <name> <side>``; a sequence may be a nested folder
(``site_a/day1``). Temporal neighbours (mono / mono+stereo) are the previous and next names in
sorted order. The camera is normalised by the stored image size, read from the sequence's
first left image. Ground truth (depth preferred over disparity) exists for the left view only
unless ``depth/<name>_r.npy`` is given for the right view. ``scripts/make_stereo_splits.py``
writes the split lists.
"""
from __future__ import annotations

import os

import numpy as np
from depth_hints.pfm import read_pfm
from depth_hints.splits import Sample

from .layout import (Camera, CalibrationError, DatasetError, DatasetLayout, GroundTruth, LayoutError,
                     check_gt_size, image_size, read_calibration_json)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
SIDE_FOLDERS = {"l": "left", "r": "right"}
CALIB_FILE = "calib.json"
CALIB_KEYS = ("fx", "fy", "cx", "cy", "baseline")
CALIB_EXAMPLE = '{"fx": 720.0, "fy": 720.0, "cx": 640.0, "cy": 360.0, "baseline": 0.12}'


def read_calib_json(path: str, image_width: int, image_height: int) -> Camera:
    """calib.json (pixels of the stored images, baseline in metres, optional doffs in pixels,
    optional width / height of the calibrated images) -> Camera normalised by (image_width,
    image_height). Raises CalibrationError naming the file and the key, also when width /
    height differ from the stored size or the principal point lies outside it."""
    calib = read_calibration_json(path, "Calibration", f"write it as {CALIB_EXAMPLE} (pixels of the "
                                  f"stored images, baseline in metres).", expected=CALIB_EXAMPLE)
    values = {}
    for key in CALIB_KEYS + ("doffs",):
        if key not in calib:
            if key == "doffs":
                values[key] = 0.0
                continue
            raise CalibrationError(f"Calibration {path} has no key {key!r}; expected {CALIB_EXAMPLE}.")
        try:
            values[key] = float(calib[key])
        except (TypeError, ValueError):
            raise CalibrationError(f"Calibration {path}: {key!r} is {calib[key]!r}, not a number.") from None
        if not np.isfinite(values[key]) or (key in ("fx", "fy", "baseline") and values[key] <= 0):
            raise CalibrationError(f"Calibration {path}: {key!r} is {calib[key]!r}; fx, fy and "
                                   f"baseline must be positive, every value finite.")
    _check_calib_size(path, calib, values, image_width, image_height)
    return Camera((values["fx"] / image_width, values["fy"] / image_height,
                   values["cx"] / image_width, values["cy"] / image_height),
                  values["baseline"], values["doffs"] / image_width)


def _check_calib_size(path: str, calib: dict, values: dict, image_width: int, image_height: int) -> None:
    """calib.json's optional "width" / "height" must be the stored images' size, and its
    principal point must lie inside them: a calibration of another size (1920x1080 for images
    stored at 960x540) would otherwise double fx and move cx silently."""
    stored = f"{image_width}x{image_height}"
    rescale = ("calibrate at the stored size or scale fx, fy, cx, cy and doffs by the stored "
               "size over the calibrated one")
    size = {}
    for key in ("width", "height"):
        if key in calib:
            try:
                size[key] = float(calib[key])
            except (TypeError, ValueError):
                raise CalibrationError(f"Calibration {path}: {key!r} is {calib[key]!r}, not a number "
                                       f"(the stored images are {stored}).") from None
    if size and (size.get("width", image_width), size.get("height", image_height)) != (image_width, image_height):
        given = f"{calib.get('width', image_width)}x{calib.get('height', image_height)}"
        raise CalibrationError(f"Calibration {path} is for width x height {given}, but the stored "
                               f"images are {stored}: {rescale}.")
    for key, limit in (("cx", image_width), ("cy", image_height)):
        if not 0.0 <= values[key] <= limit:
            raise CalibrationError(f"Calibration {path}: {key!r} = {values[key]:g} px lies outside the "
                                   f"stored {stored} images; fx, fy, cx, cy are pixels of the stored "
                                   f"images ({rescale}; \"width\" and \"height\" keys catch this).")


class StereoRigLayout(DatasetLayout):
    """A calibrated stereo rig: left/ and right/ folders of rectified images per sequence,
    one calib.json per sequence, optional depth or disparity ground truth."""

    name = "stereo"
    gt_kind = "depth"  # or 'disparity', per file: ``read_gt`` says which
    gt_files = "depth/<name>.npy (metres) or disparity/<name>.pfm (pixels) in the sequence folder"
    named_frames = True

    def __init__(self, data_path: str, img_ext: str = ".png"):
        super().__init__(data_path, img_ext)
        self._names: dict = {}
        self._cameras: dict = {}

    # -- names -----------------------------------------------------------------------------
    def sequence_dir(self, folder: str) -> str:
        return os.path.join(self.data_path, folder)

    def frame_names(self, folder: str) -> dict:
        """{name: extension} of a sequence's left images (sorted by name)."""
        if folder not in self._names:
            directory = os.path.join(self.sequence_dir(folder), SIDE_FOLDERS["l"])
            found = {}
            if os.path.isdir(directory):
                for entry in sorted(os.listdir(directory)):
                    stem, ext = os.path.splitext(entry)
                    if ext.lower() in IMAGE_EXTENSIONS:
                        found.setdefault(stem, ext)
            self._names[folder] = found
        return self._names[folder]

    def frame_name(self, folder: str, frame) -> str:
        """A split line's frame (a name, or an int) -> the file name stem it refers to."""
        names = self.frame_names(folder)
        name = str(frame)
        if name in names or not isinstance(frame, int):
            return name
        matches = [n for n in names if n.isdigit() and int(n) == frame]
        return matches[0] if len(matches) == 1 else name

    def image_path(self, folder, frame_index, side):
        """<data_path>/<sequence>/{left,right}/<name><ext> (ext: the left image's)."""
        name = self.frame_name(folder, frame_index)
        ext = self.frame_names(folder).get(name, self.img_ext)
        return os.path.join(self.sequence_dir(folder), SIDE_FOLDERS[side], name + ext)

    def neighbour(self, sample, offset):
        """The name ``offset`` places away in the sequence's sorted names, same side."""
        names = list(self.frame_names(sample.folder))
        name = self.frame_name(sample.folder, sample.frame_index)
        if name not in names:
            raise DatasetError(f"{self.image_path(sample.folder, name, 'l')} does not exist "
                               f"(split line '{sample.folder} {sample.frame_index} {sample.side}').")
        position = names.index(name) + offset
        if not 0 <= position < len(names):
            raise LayoutError(f"'{sample.folder} {sample.frame_index} {sample.side}' has no frame "
                              f"{offset:+d} in its sequence ({len(names)} frames), which --frame_ids "
                              f"asks for: make the split with scripts/make_stereo_splits.py "
                              f"--frame_ids 0 -1 1 (the training's --frame_ids).")
        return Sample(sample.folder, names[position], sample.side)

    # -- camera ----------------------------------------------------------------------------
    def calib_path(self, folder: str) -> str:
        return os.path.join(self.sequence_dir(folder), CALIB_FILE)

    def stored_size(self, folder: str) -> tuple:
        """(width, height) of a sequence's stored images (its first left image)."""
        names = self.frame_names(folder)
        if not names:
            raise DatasetError(f"{os.path.join(self.sequence_dir(folder), 'left')} holds no "
                               f"images ({', '.join(IMAGE_EXTENSIONS)}); check --data_path and the "
                               f"sequence {folder!r}.")
        name = next(iter(names))
        return image_size(self.image_path(folder, name, "l"))

    def camera(self, folder, frame_index=None):
        if folder not in self._cameras:
            width, height = self.stored_size(folder)
            self._cameras[folder] = read_calib_json(self.calib_path(folder), width, height)
        return self._cameras[folder]

    # -- ground truth ----------------------------------------------------------------------
    def _gt_candidates(self, folder, frame_index, side):
        name = self.frame_name(folder, frame_index)
        suffix = "" if side == "l" else "_r"
        directory = self.sequence_dir(folder)
        return (("depth", os.path.join(directory, "depth", f"{name}{suffix}.npy")),
                ("disparity", os.path.join(directory, "disparity", f"{name}{suffix}.pfm")))

    def gt_path(self, folder, frame_index, side):
        """depth/<name>.npy when it exists, else disparity/<name>.pfm (``_r`` for the right view)."""
        candidates = self._gt_candidates(folder, frame_index, side)
        for _, path in candidates:
            if os.path.isfile(path):
                return path
        return candidates[0][1]

    def read_gt(self, folder, frame_index, side):
        for kind, path in self._gt_candidates(folder, frame_index, side):
            if not os.path.isfile(path):
                continue
            if kind == "depth":
                try:
                    values = np.load(path, allow_pickle=False)
                except Exception as e:
                    raise DatasetError(f"Ground truth {path} could not be read "
                                       f"({type(e).__name__}: {e}).") from None
                values = values.reshape(values.shape[-2:]) if values.ndim == 3 and values.shape[0] == 1 else values
                if values.ndim != 2:
                    raise DatasetError(f"Ground truth {path} has shape {values.shape}; expected [H, W] metres.")
                values = np.where(np.isfinite(values), values, 0).astype(np.float32)
            else:
                values = read_pfm(path)
                values = values[..., 0] if values.ndim == 3 else values
                values = np.where(np.isfinite(values) & (values > 0), values, 0).astype(np.float32)
            check_gt_size(path, values, image_size(self.image_path(folder, frame_index, side)))
            return GroundTruth(kind, values, path)
        return None


# ------------------------------------------------------------------------------- split lists

SPLIT_MODES = ("sequence", "fraction")


def scan_stereo_sequences(data_path: str) -> dict:
    """Sequence folders under ``data_path`` (relative, '/'-separated; any depth) that hold
    left/, right/ and calib.json -> sorted names with both a left and a right image."""
    if not os.path.isdir(data_path):
        raise DatasetError(f"--data_path {data_path} does not exist.")
    layout = StereoRigLayout(data_path)
    found = {}
    for dirpath, dirnames, filenames in os.walk(data_path):
        dirnames.sort()
        if "left" in dirnames and "right" in dirnames and CALIB_FILE in filenames:
            folder = os.path.relpath(dirpath, data_path).replace(os.sep, "/")
            names = [n for n in layout.frame_names(folder)
                     if os.path.isfile(layout.image_path(folder, n, "r"))]
            if names:
                found[folder] = names
            dirnames[:] = []
    return found


def make_stereo_splits(data_path: str, out_dir: str, mode: str = "sequence",
                       val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                       frame_ids=(0,)) -> dict:
    """Write ``out_dir``/{train,val,test,all}_files.txt for a ``--dataset stereo`` folder
    (all = train + val: the frames the precompute makes hints for); returns the line counts.

    mode 'sequence': whole sequences are drawn (with ``seed``) for test and val (each at
    least one when its fraction is > 0 and three or more sequences exist, one always left to
    train); with fewer sequences than that, frames are drawn as in 'fraction' (a note says
    so). 'fraction': within every sequence those fractions of frames, at least one frame
    overall for each fraction > 0. train / val lines hold both sides ('<sequence> <name> l'
    and 'r'), test lines the left view. ``frame_ids`` (the training's --frame_ids): train /
    val keep only frames whose temporal neighbours (the integer offsets other than 0) exist
    in their sequence and are not test frames; stereo only ((0,) or (0, 's')) keeps every
    frame. Empty lists are not written."""
    import random
    from depth_hints.atomic import atomic_write

    if mode not in SPLIT_MODES:
        raise LayoutError(f"--by {mode!r}: use one of {', '.join(SPLIT_MODES)}.")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise LayoutError(f"--val_fraction {val_fraction} and --test_fraction {test_fraction}: "
                          f"use fractions in [0, 1) that sum to less than 1.")
    offsets = sorted({int(f) for f in frame_ids if f != "s" and int(f) != 0})
    sequences = scan_stereo_sequences(data_path)
    if not sequences:
        raise DatasetError(f"No sequence under {data_path} holds left/, right/ and {CALIB_FILE} "
                           f"with matching image names; see datasets/stereo_rig.py for the layout.")
    rng = random.Random(seed)
    assignment = {}  # (folder, position) -> list name
    if mode == "sequence":
        assignment = _assign_sequences(sequences, val_fraction, test_fraction, rng)
        if assignment is None:
            print(f"note: {len(sequences)} sequence(s) cannot hold whole sequences out for "
                  f"val and test; drawing frames inside them instead (--by fraction).")
    if not assignment:
        assignment = _assign_frames(sequences, val_fraction, test_fraction, offsets, rng)

    def usable(folder: str, position: int) -> bool:
        """Whether a train / val frame has the neighbours ``frame_ids`` ask for, none a test frame."""
        count = len(sequences[folder])
        return all(0 <= position + o < count and assignment[(folder, position + o)] != "test"
                   for o in offsets)

    lists = {"train": [], "val": [], "test": []}
    for folder in sorted(sequences):
        for position, name in enumerate(sequences[folder]):
            split = assignment[(folder, position)]
            if split == "test":
                lists["test"].append(f"{folder} {name} l")
            elif usable(folder, position):
                lists[split].extend(f"{folder} {name} {side}" for side in "lr")
    if not lists["train"]:
        need = (f"frames {', '.join(f'{o:+d}' for o in offsets)} in their sequence"
                if offsets else "a pair")
        raise LayoutError(f"No training frame under {data_path} has {need}: --frame_ids "
                          f"{' '.join(str(f) for f in frame_ids)} needs sequences of consecutive "
                          f"pairs; for single pairs train stereo only (--frame_ids 0 --use_stereo).")
    lists["all"] = lists["train"] + lists["val"]  # what the precompute needs: both have hints
    os.makedirs(out_dir, exist_ok=True)
    for split, lines in lists.items():
        if lines:
            with atomic_write(os.path.join(out_dir, f"{split}_files.txt"), "w") as f:
                f.write("".join(line + "\n" for line in lines))
    return {f"{split}_files.txt": len(lines) for split, lines in lists.items()}


def _assign_sequences(sequences: dict, val_fraction: float, test_fraction: float, rng):
    """Whole sequences -> {(folder, position): 'train' | 'val' | 'test'}, or None when there
    are too few sequences to give every split with a fraction > 0 one of them."""
    folders = sorted(sequences)
    rng.shuffle(folders)

    def count(fraction):
        n = round(fraction * len(folders))
        return max(n, 1) if fraction > 0 and len(folders) > 2 else n
    num_test, num_val = count(test_fraction), count(val_fraction)
    while num_test + num_val >= len(folders) and (num_test or num_val):
        num_val, num_test = (num_val - 1, num_test) if num_val >= num_test else (num_val, num_test - 1)
    if (test_fraction > 0 and not num_test) or (val_fraction > 0 and not num_val):
        return None
    assignment = {}
    for i, folder in enumerate(folders):
        split = "test" if i < num_test else ("val" if i < num_test + num_val else "train")
        for position in range(len(sequences[folder])):
            assignment[(folder, position)] = split
    return assignment


def _assign_frames(sequences: dict, val_fraction: float, test_fraction: float, offsets, rng) -> dict:
    """Frames inside every sequence -> {(folder, position): split}: test first, then val among
    frames whose neighbours (``offsets``) exist and are no test frames; at least one frame
    overall for each fraction > 0 (taken from the training frames) while two stay to train."""
    assignment, orders = {}, {}
    for folder in sorted(sequences):
        count = len(sequences[folder])
        order = list(range(count))
        rng.shuffle(order)
        orders[folder] = order
        num_test, num_val = round(test_fraction * count), round(val_fraction * count)
        for rank, position in enumerate(order):
            assignment[(folder, position)] = "test" if rank < num_test else "train"
        for position in order:
            if num_val and assignment[(folder, position)] == "train" and _has_neighbours(
                    assignment, folder, position, count, offsets):
                assignment[(folder, position)] = "val"
                num_val -= 1
    for split, fraction in (("test", test_fraction), ("val", val_fraction)):
        if fraction <= 0 or split in assignment.values():
            continue
        train = [(folder, p) for folder in sorted(sequences) for p in orders[folder]
                 if assignment[(folder, p)] == "train"]
        if split == "val":
            train = [(f, p) for f, p in train
                     if _has_neighbours(assignment, f, p, len(sequences[f]), offsets)]
        if train and sum(v == "train" for v in assignment.values()) > 1:  # one stays to train
            assignment[train[0]] = split
    return assignment


def _has_neighbours(assignment: dict, folder: str, position: int, count: int, offsets) -> bool:
    return all(0 <= position + o < count and assignment[(folder, position + o)] != "test"
               for o in offsets)
