"""``DepthPredictor``: depth for numpy / PIL images from a weights folder or an exported file.

    from depth_hints import DepthPredictor
    predictor = DepthPredictor.from_folder("weights_19")      # or .from_onnx("model.onnx")
    predictor = DepthPredictor.from_pretrained("DH-HR-Resnet50")  # a released model, cached
    result = predictor.predict(image)   # HxWx3 uint8 array, PIL image, path, or a list of them
    result.disp, result.depth           # [H, W] at the input's size; depth in metres or None

Each image is resized to the model's size (LANCZOS, as in training and ``test_simple.py``), run,
and the disparity resized back bilinearly to the image's own size. Backends: ``onnxruntime``
(an in-memory ONNX export; the fastest on CPU, see README "Deploy"), ``torch`` (eager) and
``torchscript``. ``backend="auto"`` picks onnxruntime on CPU when it is installed, else eager
PyTorch (and always eager PyTorch on CUDA).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from depth_hints import images
from depth_hints.errors import DepthHintsError
from depth_hints.export import ExportMetadata, ModelFileError, graph_from_folder, load_torchscript, onnx_bytes
from depth_hints.geometry import disp_to_depth

BACKENDS = ("auto", "onnxruntime", "torch", "torchscript")
ImageLike = Union[np.ndarray, Image.Image, str, os.PathLike]


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


@dataclass(frozen=True)
class DepthPrediction:
    """One image's result. ``disp``: the network's sigmoid disparity [H, W] at the input's size;
    ``depth``: metres [H, W] (stereo-trained models, else None); ``model_disp``: the sigmoid
    disparity [h, w] at the model's size, as the network produced it."""
    disp: np.ndarray
    depth: np.ndarray | None
    model_disp: np.ndarray


class DepthPredictor:
    """A depth network ready to run on images; build it with ``from_folder``, ``from_onnx``,
    ``from_torchscript`` or ``load``."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], metadata: ExportMetadata, backend: str,
                 source: str) -> None:
        """``run``: images float32 [B,3,h,w] in [0,1] -> sigmoid disparity [B,1,h,w] (numpy)."""
        self._run = run
        self.metadata = metadata
        self.backend = backend
        self.source = source

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_folder(cls, folder: str, device=None, backend: str = "auto") -> "DepthPredictor":
        """A weights folder (ours or a released monodepth2 / Depth Hints one)."""
        device = torch.device(device) if device is not None else torch.device("cpu")
        if backend not in BACKENDS:
            raise ModelFileError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}.")
        graph, metadata = graph_from_folder(folder, metric=False, device=device)
        if backend == "auto":
            backend = "onnxruntime" if device.type == "cpu" and _has_onnxruntime() else "torch"
        if backend == "onnxruntime":
            run = _onnx_runner(onnx_bytes(graph.cpu(), metadata), device)
        elif backend == "torchscript":
            from depth_hints.export import torchscript_module
            run = _torch_runner(torchscript_module(graph, metadata), device)
        else:
            run = _torch_runner(graph, device)
        return cls(run, metadata, backend, folder)

    @classmethod
    def from_pretrained(cls, name: str, device=None, backend: str = "auto") -> "DepthPredictor":
        """A released monodepth2 / Depth Hints model by name (``depth-hints-models`` lists
        them), downloaded, checked and cached on first use (``depth_hints.released_models``)."""
        from depth_hints.released_models import fetch_model
        return cls.from_folder(fetch_model(name), device, backend)

    @classmethod
    def from_onnx(cls, path: str, device=None) -> "DepthPredictor":
        """An ONNX file written by ``depth-hints-export`` (ONNX Runtime; CUDA if ``device`` is
        CUDA and the CUDA provider is installed)."""
        if not os.path.isfile(path):
            raise ModelFileError(f"Model file {path} does not exist.")
        run, strings = _onnx_runner_and_metadata(path, torch.device(device or "cpu"))
        return cls(run, ExportMetadata.from_strings(strings, path), "onnxruntime", path)

    @classmethod
    def from_torchscript(cls, path: str, device=None) -> "DepthPredictor":
        """A TorchScript file written by ``depth-hints-export --format torchscript``."""
        device = torch.device(device or "cpu")
        module, metadata = load_torchscript(path, device)
        return cls(_torch_runner(module, device), metadata, "torchscript", path)

    @classmethod
    def load(cls, path: str, device=None) -> "DepthPredictor":
        """A weights folder, an ``.onnx`` file or a TorchScript file, by what ``path`` is."""
        if os.path.isdir(path):
            return cls.from_folder(path, device)
        if path.lower().endswith(".onnx"):
            return cls.from_onnx(path, device)
        if os.path.isfile(path):
            return cls.from_torchscript(path, device)
        raise ModelFileError(f"--model_path {path} is neither a weights folder nor a model file.")

    # ------------------------------------------------------------------ running

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) the images are resized to."""
        return self.metadata.height, self.metadata.width

    @property
    def metric(self) -> bool:
        """Whether ``depth`` is given: the model was trained with stereo on one rig (a mixed-rig
        model records no metric factor)."""
        return self.metadata.use_stereo is True and self.metadata.metric_scale_factor == self.metadata.metric_scale_factor

    def depth_from_disp(self, disp):
        """Sigmoid disparity (array or tensor, any shape) -> (scaled disparity, depth in metres
        = metric_scale_factor x the depth of the model's min_depth..max_depth range)."""
        scaled_disp, depth = disp_to_depth(disp, self.metadata.min_depth, self.metadata.max_depth)
        return scaled_disp, self.metadata.metric_scale_factor * depth

    def predict_tensor(self, images: np.ndarray) -> np.ndarray:
        """Images float32 [B,3,h,w] in [0,1] at the model's size -> sigmoid disparity [B,1,h,w]."""
        return self._run(np.ascontiguousarray(images, dtype=np.float32))

    def predict(self, image: ImageLike | Sequence[ImageLike]) -> DepthPrediction | list[DepthPrediction]:
        """One image (HxWx3 uint8 array, PIL image or path) -> DepthPrediction; a batch (a list
        of them, or a BxHxWx3 uint8 array) -> a list, each at its own image's size."""
        single = not (isinstance(image, (list, tuple)) or (isinstance(image, np.ndarray) and image.ndim == 4))
        images = [_as_pil(im) for im in ([image] if single else list(image))]
        if not images:
            return []
        height, width = self.size
        batch = torch.cat([to_input_tensor(im, width, height) for im in images]).numpy()
        model_disp = torch.from_numpy(np.asarray(self.predict_tensor(batch), dtype=np.float32))
        results = []
        for im, disp in zip(images, model_disp):
            resized = F.interpolate(disp[None], size=(im.height, im.width), mode="bilinear",
                                    align_corners=False)[0, 0]
            depth = self.depth_from_disp(resized)[1].numpy() if self.metric else None
            results.append(DepthPrediction(resized.numpy(), depth, disp[0].numpy()))
        return results[0] if single else results


def _as_pil(image: ImageLike) -> Image.Image:
    """Any accepted image -> PIL RGB; raises naming what is wrong and the fix."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, os.PathLike)):
        return load_rgb(os.fspath(image))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InferenceError(f"predict() takes HxWx3 uint8 RGB arrays; got shape {image.shape} "
                                 f"dtype {image.dtype} (convert with (x * 255).astype(np.uint8)).")
        return Image.fromarray(image)
    raise InferenceError(f"predict() takes a numpy array, a PIL image, a path or a list of them; "
                         f"got {type(image).__name__}.")


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _torch_runner(module: torch.nn.Module, device: torch.device):
    module = module.to(device).eval()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = module(torch.from_numpy(images).to(device))
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out.float().cpu().numpy()
    return run


def _session(model, device: torch.device):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelFileError("ONNX models need onnxruntime: pip install -e .[export]") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the process's CPU budget, as for torch
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(model, options, providers=providers)


def _onnx_runner(model, device: torch.device):
    session = _session(model, device)
    name = session.get_inputs()[0].name
    return lambda images: session.run(None, {name: images})[0]


def _onnx_runner_and_metadata(path: str, device: torch.device):
    try:
        session = _session(path, device)
    except ModelFileError:
        raise
    except Exception as e:
        message = " ".join(str(e).split())[:200]
        raise ModelFileError(f"{path} is not a readable ONNX model ({type(e).__name__}: {message}).") from None
    strings = dict(session.get_modelmeta().custom_metadata_map)
    name = session.get_inputs()[0].name
    return (lambda images: session.run(None, {name: images})[0]), strings
