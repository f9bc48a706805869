"""RGB image loading: the one loader of the training set, the precompute, the evaluation and
inference."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from depth_hints.errors import DepthHintsError


class ImageError(DepthHintsError, FileNotFoundError):
    """A missing or unreadable image; the message names the file."""


def load_rgb(path: str, error: type = ImageError, fix: str = "") -> Image.Image:
    """Open an image file as an RGB PIL image.

    A missing or unreadable file raises ``error`` (a DepthHintsError subclass of the caller)
    naming the file, whether the other of .jpg / .png exists (the --png flag), and ``fix``."""
    if not os.path.isfile(path):
        stem, ext = os.path.splitext(path)
        alt = {".jpg": ".png", ".png": ".jpg"}.get(ext)
        hint = ""
        if alt and os.path.isfile(stem + alt):
            hint = f" A {alt} file exists: {'add' if alt == '.png' else 'remove'} --png."
        raise error(f"Image {path} does not exist.{hint}{' ' + fix if fix else ''}")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except Exception as e:
        raise error(f"Image {path} could not be read ({type(e).__name__}: {e}).") from None


def load_rgb_array(path: str, height: int, width: int, error: type = ImageError,
                   crop=None) -> np.ndarray:
    """An image as RGB uint8 [height, width, 3], resized with PIL's LANCZOS (the training's
    resize) when its size differs; ``crop`` (PIL image -> PIL image, e.g. a layout's
    ``crop_image``) is applied first."""
    image = load_rgb(path, error)
    if crop is not None:
        image = crop(image)
    if image.size != (width, height):
        image = image.resize((width, height), Image.LANCZOS)
    return np.asarray(image, dtype=np.uint8).copy()
