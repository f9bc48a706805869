"""Shared sampling for all datasets: frames, augmentation, image pyramid, intrinsics, hints.

A sample is a dict with monodepth2's keys (documented here once):
  ("color", f, s)      [3, H/2^s, W/2^s] float in [0, 1], frame f (0, -1, 1, ..., or "s") at scale s
  ("color_aug", f, s)  the same with the sample's colour augmentation (identical to "color"
                       when not augmenting); the network sees this, losses use "color"
  ("K", s), ("inv_K", s)   [4, 4] pixel intrinsics of scale s and their inverse
  "stereo_T"           [4, 4] transform from this camera to the other stereo camera (baseline
                       0.1 along x; its sign follows the side and the horizontal flip); a rig
                       with doffs adds the other view's principal-point offset as T[0,2] =
                       +-doffs / fx, so that K @ stereo_T projects into the other view
  "depth_hint"         [1, H, W] hint depth in training units (0 = no hint)   (with hints)
  "depth_hint_mask"    [1, H, W] 1 where a hint exists                          (with hints)
  "depth_gt"           [1, h, w] ground-truth depth in metres where the dataset has it
Flipping mirrors every image and the hint, flips the stereo sign and mirrors the principal
point (normalised cx -> 1 - cx), so a camera whose principal point is not centred stays
consistent. Intrinsics come per sample from the layout's camera (normalised by the size of the
image the loader sees, after the layout's ``crop_rows``).

Where files are and what the camera is comes from the dataset's layout (datasets/layout.py):
this module never builds a path.
"""
from __future__ import annotations

import os
import random

import cv2
import numpy as np
import torch
import torch.utils.data as data
from PIL import Image, ImageEnhance

from depth_hints import augment, geometry
from depth_hints.hint_files import hint_file_path, load_hint
from depth_hints.images import load_rgb
from depth_hints.splits import Sample, frame_token

from .layout import DatasetError, DatasetLayout, other_side

NUM_SCALES = 4
COLOR_JITTER = dict(brightness=(0.8, 1.2), contrast=(0.8, 1.2), saturation=(0.8, 1.2), hue=(-0.1, 0.1))


__all__ = ["MonoDataset", "DatasetError", "as_sample", "random_color_jitter", "draw_color_jitter",
           "pil_color_jitter", "NUM_SCALES", "AUGMENT_ON"]

#: where the colour jitter and the pyramid are made: "cpu" (PIL, every key built here, the
#: original's bytes) or "device" (uint8 at the training size + parameters, see depth_hints/augment.py)
AUGMENT_ON = ("cpu", "device")


def as_sample(item) -> Sample:
    """A split-file line ('folder frame side') or a Sample -> Sample."""
    if isinstance(item, Sample):
        return item
    parts = item.split()
    side = parts[2] if len(parts) > 2 else "l"
    return Sample(parts[0], frame_token(parts[1]) if len(parts) > 1 else 0, side)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float [3, H, W] in [0, 1]: torchvision's to_tensor, without importing
    torchvision (seconds of start-up for the precompute, which only needs the layouts)."""
    array = torch.from_numpy(np.array(img, np.uint8, copy=True))
    return array.view(img.size[1], img.size[0], -1).permute(2, 0, 1).contiguous().float().div(255)


def shift_hue(img: Image.Image, hue: float) -> Image.Image:
    """RGB image with its HSV hue rotated by ``hue`` turns, hue in [-0.5, 0.5]: PIL's 8-bit H
    channel plus int(hue * 255) modulo 256 (torchvision's adjust_hue on PIL images)."""
    h, s, v = img.convert("HSV").split()
    shifted = (np.asarray(h, np.int32) + int(hue * 255)) % 256  # int() truncates toward 0
    h = Image.fromarray(shifted.astype(np.uint8), "L")
    return Image.merge("HSV", (h, s, v)).convert(img.mode)


def draw_color_jitter(rng: random.Random) -> tuple[list, list]:
    """(order, factors) of a random colour change, drawn as torchvision's ColorJitter draws
    them: a shuffled order of the four operations, then brightness, contrast, saturation and
    hue factors (the same for every frame of a sample)."""
    order = list(range(4))
    rng.shuffle(order)
    factors = [rng.uniform(*COLOR_JITTER[k]) for k in ("brightness", "contrast", "saturation", "hue")]
    return order, factors


def pil_color_jitter(order, factors):
    """PIL image -> jittered PIL image with the given parameters: the same PIL operations as
    torchvision's ColorJitter on PIL images (byte-identical output), without importing
    torchvision in every loader worker (over a second each at start-up)."""
    ops = (lambda img, f: ImageEnhance.Brightness(img).enhance(f),
           lambda img, f: ImageEnhance.Contrast(img).enhance(f),
           lambda img, f: ImageEnhance.Color(img).enhance(f),
           shift_hue)

    def apply(img: Image.Image) -> Image.Image:
        for i in order:
            img = ops[i](img, factors[i])
        return img
    return apply


def random_color_jitter(rng: random.Random):
    """Random brightness/contrast/saturation/hue change as a function of a PIL image."""
    return pil_color_jitter(*draw_color_jitter(rng))


class MonoDataset(data.Dataset):
    """The torch Dataset of any layout: sampling, augmentation, pyramid, intrinsics, hints.

    filenames: split-file lines or Samples; frame_ids like (0, -1, 1, "s"). ``layout``: a
    DatasetLayout; without one the class's ``layout_class`` is built from ``data_path``,
    ``img_ext`` and ``layout_options`` (e.g. sceneflow_pass). Samples are checked against the
    layout at construction."""

    #: the layout a subclass binds (KITTIRAWDataset: KittiRawLayout, ...)
    layout_class: type = None
    flip_probability = 0.5
    color_aug_probability = 0.5

    def __init__(self, data_path: str, filenames, height: int, width: int, frame_ids,
                 num_scales: int = NUM_SCALES, is_train: bool = False, img_ext: str = ".jpg",
                 use_depth_hints: bool = False, depth_hint_path: str | None = None,
                 load_depth_gt: bool = False, layout: DatasetLayout | None = None,
                 augment_on: str = "cpu", cache=None, **layout_options):
        super().__init__()
        if height % 32 or width % 32:
            raise ValueError(f"height {height} and width {width} must be multiples of 32 "
                             f"(--height/--width)")
        self.data_path = data_path
        self.samples = [as_sample(f) for f in filenames]
        self.height, self.width = height, width
        self.frame_ids = tuple(frame_ids)
        self.num_scales = num_scales
        self.is_train = is_train
        self.img_ext = img_ext
        self.use_depth_hints = use_depth_hints
        self.depth_hint_path = depth_hint_path or os.path.join(data_path, "depth_hints")
        self.load_depth_gt = load_depth_gt
        self.interp = Image.LANCZOS
        if augment_on not in AUGMENT_ON:
            raise ValueError(f"augment_on must be one of {AUGMENT_ON}, got {augment_on!r} (--augment_on)")
        self.augment_on = augment_on
        if cache is not None and (cache.height, cache.width) != (height, width):
            raise ValueError(f"the training cache {cache.dir} is {cache.width}x{cache.height}, "
                             f"not {width}x{height} (--cache_dir, --width/--height)")
        #: a depth_hints.cache.TrainingCache: frames (and hints) as rows at the training size
        self.cache = cache
        if layout is None:
            if self.layout_class is None:
                raise TypeError("MonoDataset needs a layout (or a subclass with layout_class)")
            layout = self.layout_class(data_path, img_ext=img_ext, **layout_options)
        self.layout = layout
        for s in self.samples:
            layout.check_sample(s)

    # -- from the layout --------------------------------------------------------------------
    def image_path(self, folder: str, frame_index: int, side: str) -> str:
        return self.layout.image_path(folder, frame_index, side)

    def get_depth(self, folder: str, frame_index: int, side: str) -> np.ndarray | None:
        """Ground-truth depth [h, w] in metres (SceneFlow: scene units), or None where the
        dataset has none."""
        return self.layout.gt_depth(folder, frame_index, side)

    def intrinsics(self, sample: Sample, do_flip: bool = False) -> torch.Tensor:
        """Normalised 4x4 intrinsics of a sample (its folder's or frame's camera); mirrored
        (cx -> 1 - cx) with ``do_flip``."""
        camera = self.layout.camera(sample.folder, sample.frame_index)
        return (camera.flipped() if do_flip else camera).K()

    def stereo_transform(self, sample: Sample, do_flip: bool = False) -> torch.Tensor:
        """``stereo_T`` of a sample: the nominal baseline, signed by side and flip, with the
        rig's doffs as the other view's principal-point offset (``geometry.stereo_transform``)."""
        camera = self.layout.camera(sample.folder, sample.frame_index)
        offset = camera.doffs / camera.fx_normalised if camera.doffs else 0.0
        return geometry.stereo_transform(sample.side, do_flip, principal_offset=offset)

    # -- shared -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.samples)

    def other_side(self, side: str) -> str:
        return other_side(side)

    def get_color(self, folder: str, frame_index: int, side: str, do_flip: bool) -> Image.Image:
        """The stored image after the layout's crop (from a cache: already at the training
        size, the same bytes as the LANCZOS resize below makes), mirrored with ``do_flip``."""
        if self.cache is not None:
            img = Image.fromarray(np.ascontiguousarray(self.cache.image(Sample(folder, frame_index, side))))
        else:
            img = self.layout.crop_image(load_rgb(self.image_path(folder, frame_index, side), DatasetError))
        return img.transpose(Image.FLIP_LEFT_RIGHT) if do_flip else img

    def color_u8(self, folder: str, frame_index: int, side: str, do_flip: bool) -> tuple:
        """(uint8 [3, H, W] at the training size, mirrored with ``do_flip``; the stored size
        (w, h) before resizing, or None from a cache)."""
        if self.cache is not None:
            array = self.cache.image(Sample(folder, frame_index, side))
            size = None
        else:
            img = self.get_color(folder, frame_index, side, do_flip=False)
            size = img.size
            array = np.asarray(img.resize((self.width, self.height), self.interp))
        if do_flip:  # mirroring commutes with PIL's LANCZOS resize: the same bytes
            array = array[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))), size

    def hint_path(self, sample: Sample) -> str:
        return hint_file_path(self.depth_hint_path, sample.folder, sample.frame_index, sample.side)

    def missing_files(self, limit: int = 10) -> list[str]:
        """Target images, their temporal neighbours and other views (as --frame_ids asks) and
        hint files (with hints) that do not exist; checked before training. A neighbour the
        layout cannot have (outside its sequence) raises the layout's LayoutError."""
        missing = []
        offsets = [f for f in self.frame_ids if f != "s" and f != 0]
        for s in self.samples:
            paths = [self.image_path(s.folder, s.frame_index, s.side)]
            if "s" in self.frame_ids:  # the other view of the pair
                paths.append(self.image_path(s.folder, s.frame_index, other_side(s.side)))
            for offset in offsets:
                neighbour = self.layout.neighbour(s, offset)
                paths.append(self.image_path(neighbour.folder, neighbour.frame_index, neighbour.side))
            if self.use_depth_hints:
                paths.append(self.hint_path(s))
            missing.extend(p for p in paths if not os.path.isfile(p))
            if len(missing) >= limit:
                break
        return missing

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        # Drawn from torch's RNG so that --seed (and per-worker seeding) makes runs repeatable.
        rng = random.Random(int(torch.randint(0, 2 ** 62, ()).item())) if self.is_train else None
        do_color_aug = self.is_train and rng.random() < self.color_aug_probability
        do_flip = self.is_train and rng.random() < self.flip_probability
        jitter = random_color_jitter(rng) if do_color_aug else None

        inputs: dict = {}
        stored_sizes = {}
        compact = self.augment_on == "device"
        if compact:
            order, factors = draw_color_jitter(rng) if do_color_aug else ([0, 1, 2, 3], [1.0, 1.0, 1.0, 0.0])
            inputs[augment.JITTER_ORDER] = torch.tensor(order, dtype=torch.int64)
            inputs[augment.JITTER_FACTORS] = torch.tensor(factors, dtype=torch.float64)
            inputs[augment.DO_JITTER] = torch.tensor(bool(do_color_aug))
            inputs[augment.DO_FLIP] = torch.tensor(bool(do_flip))
            jitter = None
        else:
            jitter = random_color_jitter(rng) if do_color_aug else None
        for f in self.frame_ids:
            frame = (Sample(sample.folder, sample.frame_index, self.other_side(sample.side)) if f == "s"
                     else self.layout.neighbour(sample, f))
            if compact:  # scale 0 as uint8; the device makes the rest (depth_hints/augment.py)
                inputs[(augment.U8, f)], stored_sizes[f] = self.color_u8(
                    frame.folder, frame.frame_index, frame.side, do_flip)
                continue
            img = self.get_color(frame.folder, frame.frame_index, frame.side, do_flip)
            stored_sizes[f] = img.size
            for s in range(self.num_scales):
                # each scale from the one above, as monodepth2 builds its pyramid (and cheaper)
                img = img.resize((self.width // 2 ** s, self.height // 2 ** s), self.interp)
                color = to_tensor(img)
                inputs[("color", f, s)] = color
                # jittered as a PIL image, like monodepth2 (and far cheaper than on tensors)
                inputs[("color_aug", f, s)] = to_tensor(jitter(img)) if jitter else color

        if "s" in stored_sizes and stored_sizes["s"] != stored_sizes[0]:
            self.layout.check_pair(sample)  # raises DatasetError naming the pair
        K_norm = self.intrinsics(sample, do_flip)
        for s in range(self.num_scales):
            K = geometry.scale_intrinsics(K_norm, self.width // 2 ** s, self.height // 2 ** s)
            inputs[("K", s)] = K
            inputs[("inv_K", s)] = torch.linalg.inv(K)

        if "s" in self.frame_ids:
            inputs["stereo_T"] = self.stereo_transform(sample, do_flip)

        if self.use_depth_hints:
            if self.cache is not None and self.cache.has_hints():
                hint = self.cache.hint(sample).astype(np.float32)
            else:
                hint = load_hint(self.hint_path(sample))
                hint = cv2.resize(hint, (self.width, self.height), interpolation=cv2.INTER_NEAREST)
            if do_flip:
                hint = hint[:, ::-1]
            hint = torch.from_numpy(np.ascontiguousarray(hint))[None]
            inputs["depth_hint"] = hint
            inputs["depth_hint_mask"] = (hint > 0).float()

        if self.load_depth_gt:
            depth = self.get_depth(sample.folder, sample.frame_index, sample.side)
            if depth is not None:
                if do_flip:
                    depth = depth[:, ::-1]
                inputs["depth_gt"] = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None]
        return inputs
