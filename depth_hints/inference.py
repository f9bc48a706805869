"""Running a depth network on images: loading and resizing inputs, the forward pass, and
``test_simple.py`` (an image, a folder of images or a video -> disparity / depth files).

Outputs per input ``<name>``: ``<name>_disp.jpeg`` (magma colour map at the input's size) and
``<name>_disp.npy`` (scaled disparity [1,1,h,w] at the model's resolution) or, with
``--pred_metric_depth``, ``<name>_depth.npy`` (metric depth [1,1,h,w] = the factor the
training recorded (its rig's baseline / 0.1; 5.4 for KITTI and released weights, or
--pred_depth_scale_factor) x the nominal-baseline depth of a stereo-trained model).
"""
from __future__ import annotations

from depth_hints.errors import DepthHintsError
import glob
import os
import sys
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from depth_hints import images
from depth_hints.atomic import atomic_write
from depth_hints.geometry import STEREO_SCALE_FACTOR, disp_to_depth

DEFAULT_FEED_HEIGHT = 192
DEFAULT_FEED_WIDTH = 640
# test_simple.py converts the network output with monodepth2's training range.
TEST_MIN_DEPTH = 0.1
TEST_MAX_DEPTH = 100.0
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
OUTPUT_SUFFIX = "_disp"


class InferenceError(DepthHintsError, FileNotFoundError):
    """An input that is missing or unreadable; the message names it."""


# ----------------------------------------------------------------------------- shared pieces

def load_rgb(path: str) -> Image.Image:
    """Open an image file as RGB (``images.load_rgb``); a missing or unreadable file raises
    InferenceError naming it."""
    return images.load_rgb(path, InferenceError)


def to_input_tensor(image: Image.Image, width: int, height: int) -> torch.Tensor:
    """PIL RGB image -> network input [1,3,height,width] in [0,1] (LANCZOS resize, as in
    training and monodepth2's evaluation)."""
    if image.size != (width, height):
        image = image.resize((width, height), Image.LANCZOS)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


@torch.no_grad()
def predict_disp(encoder: torch.nn.Module, decoder: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Images [B,3,H,W] in [0,1] -> sigmoid disparity [B,1,H,W] at scale 0."""
    return decoder(encoder(images))[("disp", 0)]


def feed_size(info) -> tuple[int, int]:
    """(height, width) the model was trained at, from its checkpoint; default 192x640."""
    height = info.height or DEFAULT_FEED_HEIGHT
    width = info.width or DEFAULT_FEED_WIDTH
    return int(height), int(width)


def warn(message: str) -> None:
    """A loud warning on stderr."""
    print(f"WARNING: {message}", file=sys.stderr, flush=True)


def _atomic(path: str, write) -> None:
    with atomic_write(path, "wb") as f:
        write(f)


# ----------------------------------------------------------------------------- test_simple

def _normalised_ext(ext: str) -> str:
    return ext if ext.startswith(".") else "." + ext


def is_video(path: str) -> bool:
    """Whether ``path`` names a video file (by extension)."""
    return os.path.isfile(path) and os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def list_images(image_path: str, ext: str = "jpg") -> list[str]:
    """An image file -> [it]; a folder -> its ``*.<ext>`` files, sorted, without our own
    ``*_disp.*`` outputs."""
    if os.path.isfile(image_path):
        return [image_path]
    if os.path.isdir(image_path):
        pattern = os.path.join(glob.escape(image_path), "*" + _normalised_ext(ext))
        paths = sorted(p for p in glob.glob(pattern)
                       if not os.path.splitext(os.path.basename(p))[0].endswith(OUTPUT_SUFFIX))
        if not paths:
            raise InferenceError(f"--image_path {image_path} holds no *{_normalised_ext(ext)} "
                                 f"images (set --ext to their extension).")
        return paths
    raise InferenceError(f"--image_path {image_path} is neither a file nor a folder.")


def iter_inputs(image_path: str, ext: str = "jpg") -> Iterator[tuple[str, Image.Image]]:
    """Yield (output name, RGB image) for an image, a folder of images or a video's frames
    (named ``<video stem>_<frame:06d>``)."""
    if is_video(image_path):
        capture = cv2_capture(image_path)
        stem = os.path.splitext(os.path.basename(image_path))[0]
        index = 0
        try:
            while True:
                ok, frame_bgr = capture.read()
                if not ok:
                    break
                yield f"{stem}_{index:06d}", Image.fromarray(frame_bgr[:, :, ::-1].copy())
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise InferenceError(f"Video {image_path} yielded no frames (unsupported codec?).")
        return
    for path in list_images(image_path, ext):
        yield os.path.splitext(os.path.basename(path))[0], load_rgb(path)


def cv2_capture(path: str):
    """Open a video with OpenCV; raises naming the file if it cannot."""
    import cv2

    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise InferenceError(f"Video {path} could not be opened by OpenCV.")
    return capture


def count_inputs(image_path: str, ext: str = "jpg") -> int | None:
    """Number of inputs (frames for a video, when OpenCV knows it) for the progress bar."""
    if is_video(image_path):
        capture = cv2_capture(image_path)
        import cv2
        n = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.release()
        return n if n > 0 else None
    return len(list_images(image_path, ext))


def default_output_dir(image_path: str) -> str:
    """Beside the inputs: the folder itself, or the folder holding the image / video."""
    if os.path.isdir(image_path):
        return image_path
    return os.path.dirname(os.path.abspath(image_path))


def save_prediction(output_dir: str, name: str, disp: torch.Tensor, original_size: tuple[int, int],
                    metric_depth: bool, metric_scale: float = STEREO_SCALE_FACTOR) -> list[str]:
    """Write ``<name>_disp.jpeg`` (disparity resized bilinearly to ``original_size`` (W, H),
    magma) and ``<name>_disp.npy`` (scaled disparity) or ``<name>_depth.npy`` (metric depth),
    both [1,1,h,w] at the model's resolution. ``disp``: sigmoid disparity [1,1,h,w];
    ``metric_scale``: nominal depth -> metres (the rig's baseline / 0.1)."""
    from depth_hints.visualize import colorize_disparity

    width, height = original_size
    scaled_disp, depth = disp_to_depth(disp, TEST_MIN_DEPTH, TEST_MAX_DEPTH)
    if metric_depth:
        npy_path = os.path.join(output_dir, f"{name}_depth.npy")
        array = (metric_scale * depth).cpu().numpy()
    else:
        npy_path = os.path.join(output_dir, f"{name}{OUTPUT_SUFFIX}.npy")
        array = scaled_disp.cpu().numpy()
    _atomic(npy_path, lambda f: np.save(f, array))

    disp_resized = F.interpolate(disp, size=(height, width), mode="bilinear", align_corners=False)
    colour = colorize_disparity(disp_resized[0, 0].cpu().numpy())
    jpeg_path = os.path.join(output_dir, f"{name}{OUTPUT_SUFFIX}.jpeg")
    _atomic(jpeg_path, lambda f: Image.fromarray(colour).save(f, format="JPEG", quality=95))
    return [npy_path, jpeg_path]


def run_test_simple(options) -> list[str]:
    """Predict for every input of ``--image_path`` with ``--model_path``; returns the written
    paths. ``options``: TestSimpleOptions."""
    from depth_hints.checkpoints import load_depth_model, metric_scale_factor
    from depth_hints.options import device_from

    if not os.path.exists(options.image_path):
        raise InferenceError(f"--image_path {options.image_path} does not exist.")
    device = device_from(options.no_cuda)
    encoder, decoder, info = load_depth_model(options.model_path, device)
    height, width = feed_size(info)
    metric_scale = None
    if options.pred_metric_depth:
        metric_scale = metric_scale_factor(options.model_path, options.pred_depth_scale_factor)
        print(f"-> Metric depth: nominal depth x {metric_scale:g}")
    if options.pred_metric_depth and info.use_stereo is False:
        warn(f"--pred_metric_depth multiplies by {metric_scale:g}, which is only meaningful "
             f"for stereo-trained models; {options.model_path} was trained without stereo, so "
             f"its depths are not in metres.")
    output_dir = options.output_dir or default_output_dir(options.image_path)
    os.makedirs(output_dir, exist_ok=True)
    print(f"-> Model {options.model_path} at {width}x{height} on {device}; writing to {output_dir}")

    written = []
    total = count_inputs(options.image_path, options.ext)
    for name, image in tqdm(iter_inputs(options.image_path, options.ext), total=total,
                            desc="predict", unit="img"):
        batch = to_input_tensor(image, width, height).to(device)
        disp = predict_disp(encoder, decoder, batch)
        written += save_prediction(output_dir, name, disp, image.size, options.pred_metric_depth,
                                   metric_scale)
    print(f"-> Wrote {len(written) // 2} predictions to {output_dir}")
    return written
