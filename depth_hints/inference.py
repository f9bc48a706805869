"""Running a depth network on images: loading and resizing inputs, the forward pass, and
``test_simple.py`` (an image, a folder of images or a video -> disparity / depth files).

Outputs per input ``<name>``: ``<name>_disp.jpeg`` (magma colour map at the input's size) and
``<name>_disp.npy`` (scaled disparity [1,1,h,w] at the model's resolution) or, with
``--pred_metric_depth``, ``<name>_depth.npy`` (metric depth [1,1,h,w] = the factor the
training recorded (its rig's baseline / 0.1; 5.4 for KITTI and released weights, or
--pred_depth_scale_factor) x the nominal-baseline depth of a stereo-trained model).
The model runs through ``depth_hints.predictor.DepthPredictor`` (a weights folder, or an
exported ``.onnx`` / TorchScript file).
"""
from __future__ import annotations

import glob
import os
import sys
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from depth_hints.geometry import disp_to_depth
from depth_hints.atomic import atomic_write
# the inputs' loader and tensor conversion live with the predictor; re-exported here for callers
from depth_hints.predictor import DepthPredictor, InferenceError, load_rgb, to_input_tensor

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
OUTPUT_SUFFIX = "_disp"


@torch.no_grad()
def predict_disp(encoder: torch.nn.Module, decoder: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Images [B,3,H,W] in [0,1] -> sigmoid disparity [B,1,H,W] at scale 0."""
    return decoder(encoder(images))[("disp", 0)]


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


def save_prediction(output_dir: str, name: str, prediction, metric_depth: bool,
                    depth_from_disp) -> list[str]:
    """Write ``<name>_disp.jpeg`` (the disparity at the input's size, magma) and
    ``<name>_disp.npy`` (scaled disparity) or ``<name>_depth.npy`` (metric depth), both
    [1,1,h,w] at the model's resolution. ``prediction``: a DepthPrediction;
    ``depth_from_disp``: sigmoid disp -> (scaled disparity, metric depth)."""
    from depth_hints.visualize import colorize_disparity

    scaled_disp, depth = depth_from_disp(prediction.model_disp[None, None])
    if metric_depth:
        npy_path = os.path.join(output_dir, f"{name}_depth.npy")
        array = depth
    else:
        npy_path = os.path.join(output_dir, f"{name}{OUTPUT_SUFFIX}.npy")
        array = scaled_disp
    _atomic(npy_path, lambda f: np.save(f, np.asarray(array, dtype=np.float32)))

    colour = colorize_disparity(prediction.disp)
    jpeg_path = os.path.join(output_dir, f"{name}{OUTPUT_SUFFIX}.jpeg")
    _atomic(jpeg_path, lambda f: Image.fromarray(colour).save(f, format="JPEG", quality=95))
    return [npy_path, jpeg_path]


def run_test_simple(options) -> list[str]:
    """Predict for every input of ``--image_path`` with ``--model_path`` (a weights folder or
    an exported model file); returns the written paths. ``options``: TestSimpleOptions."""
    from depth_hints.checkpoints import metric_scale_factor
    from depth_hints.options import device_from

    if not os.path.exists(options.image_path):
        raise InferenceError(f"--image_path {options.image_path} does not exist.")
    device = device_from(options.no_cuda)
    predictor = DepthPredictor.load(options.model_path, device)
    meta = predictor.metadata
    metric_scale = 1.0
    if options.pred_metric_depth:
        if os.path.isdir(options.model_path):  # the factor the training recorded, or the flag
            metric_scale = metric_scale_factor(options.model_path, options.pred_depth_scale_factor)
        elif options.pred_depth_scale_factor is not None:
            metric_scale = float(options.pred_depth_scale_factor)
        elif meta.metric_scale_factor != meta.metric_scale_factor:  # NaN: exported from mixed rigs
            raise InferenceError(f"{options.model_path} was trained on rigs of different baselines "
                                 f"and records no metric factor: pass --pred_depth_scale_factor.")
        else:
            metric_scale = meta.metric_scale_factor
        print(f"-> Metric depth: nominal depth x {metric_scale:g}")

    def depth_from_disp(disp):
        scaled_disp, depth = disp_to_depth(disp, meta.min_depth, meta.max_depth)
        return scaled_disp, metric_scale * depth

    if options.pred_metric_depth and meta.use_stereo is False:
        warn(f"--pred_metric_depth multiplies by {metric_scale:g}, which is only meaningful "
             f"for stereo-trained models; {options.model_path} was trained without stereo, so "
             f"its depths are not in metres.")
    output_dir = options.output_dir or default_output_dir(options.image_path)
    os.makedirs(output_dir, exist_ok=True)
    print(f"-> Model {options.model_path} at {predictor.size[1]}x{predictor.size[0]} on {device} ({predictor.backend}); "
          f"writing to {output_dir}")

    written = []
    total = count_inputs(options.image_path, options.ext)
    for name, image in tqdm(iter_inputs(options.image_path, options.ext), total=total,
                            desc="predict", unit="img"):
        written += save_prediction(output_dir, name, predictor.predict(image),
                                   options.pred_metric_depth, depth_from_disp)
    print(f"-> Wrote {len(written) // 2} predictions to {output_dir}")
    return written
