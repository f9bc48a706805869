"""Weights folders in the monodepth2 layout, and loading them back.

``<folder>/encoder.pth`` (state dict + ``height``, ``width``, ``use_stereo``), ``depth.pth``,
optionally ``pose_encoder.pth``, ``pose.pth``, ``adam.pth``; ours also holds ``opt.json`` (the
options of the run) and ``train_state.pth`` (scheduler, epoch, step, RNG) for a true resume.
Released monodepth2 / Depth Hints folders load unchanged.
"""
from __future__ import annotations

from depth_hints.errors import DepthHintsError
import json
import os
import shutil
from dataclasses import dataclass, field

import torch

import networks
from depth_hints.geometry import STEREO_SCALE_FACTOR

DEFAULT_FEED_HEIGHT = 192
DEFAULT_FEED_WIDTH = 640
ENCODER_EXTRA_KEYS = ("height", "width", "use_stereo")
#: opt.json key: a stereo-trained model's depth times this -> metres (the training rig's
#: baseline / 0.1; null for a training set mixing rigs). Other code reads this name.
METRIC_SCALE_KEY = "metric_scale_factor"
#: the factor of weights that record none: KITTI's 0.54 m / 0.1 (released monodepth2 / Depth
#: Hints weights, runs from before the key existed)
DEFAULT_METRIC_SCALE = STEREO_SCALE_FACTOR
_BLOCKS_TO_LAYERS = {(2, False): 18, (6, False): 34, (6, True): 50, (23, True): 101, (36, True): 152}


#: names of complete checkpoint folders in a run's models/: weights_N, and weights_N.old,
#: the previous weights_N while a save replaces it (never weights_N.tmp, written in place)
COMPLETE_CHECKPOINT_PATTERN = r"weights_(\d+)(\.old)?"


class CheckpointError(DepthHintsError, FileNotFoundError):
    """A weights folder or file that is missing or does not fit; the message says which."""


@dataclass(frozen=True)
class DepthModelInfo:
    """What a weights folder says about the depth model it holds."""
    num_layers: int
    height: int | None
    width: int | None
    use_stereo: bool | None
    options: dict = field(default_factory=dict)

    def feed_size(self) -> tuple[int, int]:
        """(height, width) the model was trained at; monodepth2's 192x640 if not recorded."""
        return int(self.height or DEFAULT_FEED_HEIGHT), int(self.width or DEFAULT_FEED_WIDTH)


def load_state(folder: str, name: str, map_location="cpu") -> dict:
    """Load ``<folder>/<name>.pth`` -> state dict; a missing file raises naming it."""
    path = os.path.join(folder, f"{name}.pth")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} does not exist (weights folder {folder!r} lacks {name}.pth).")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:
        raise CheckpointError(f"{path} could not be read ({type(e).__name__}: {e}).") from None


def infer_num_layers(encoder_state: dict) -> int:
    """ResNet depth from an encoder state dict (block count of layer3, bottleneck or not)."""
    blocks = {k.split(".")[2] for k in encoder_state if k.startswith("encoder.layer3.")}
    bottleneck = "encoder.layer1.0.conv3.weight" in encoder_state
    key = (len(blocks), bottleneck)
    if key not in _BLOCKS_TO_LAYERS:
        raise CheckpointError(f"Encoder state dict matches no ResNet (layer3 has {len(blocks)} blocks).")
    return _BLOCKS_TO_LAYERS[key]


def read_options(folder: str) -> dict:
    """The opt.json saved with a weights folder (or in its run folder), else {}."""
    for candidate in (os.path.join(folder, "opt.json"),
                      os.path.join(folder, os.pardir, os.pardir, "models", "opt.json")):
        if os.path.isfile(candidate):
            with open(candidate) as f:
                return json.load(f)
    return {}


def recorded_metric_scale(folder: str) -> tuple:
    """(recorded?, factor) from a weights folder's opt.json: (False, None) when the key is
    absent, (True, None) for a mixed-rig training set, else (True, float)."""
    options = read_options(folder) if folder else {}
    if METRIC_SCALE_KEY not in options:
        return False, None
    value = options[METRIC_SCALE_KEY]
    return True, (None if value is None else float(value))


def metric_scale_factor(folder: str | None, override: float | None = None,
                        flag: str = "--pred_depth_scale_factor") -> float:
    """The factor from a stereo-trained model's depth to metres: ``override`` (the flag) when
    given, else the factor the training recorded, else DEFAULT_METRIC_SCALE (KITTI's 5.4).
    A model trained on mixed rigs recorded none: CheckpointError asking for ``flag``."""
    if override is not None:
        return float(override)
    recorded, value = recorded_metric_scale(folder)
    if not recorded:
        return DEFAULT_METRIC_SCALE
    if value is None:
        raise CheckpointError(f"{folder} was trained on rigs of different baselines (opt.json "
                              f"{METRIC_SCALE_KEY}: null), so its depth has no single metric "
                              f"scale: pass {flag} <your camera's baseline in metres / 0.1>.")
    return value


def load_depth_model(folder: str, device=None):
    """Weights folder -> (encoder, depth_decoder, DepthModelInfo), in eval mode on ``device``.

    Works for our folders and the released monodepth2 / Depth Hints ones."""
    if not os.path.isdir(folder):
        raise CheckpointError(f"Weights folder {folder!r} does not exist (--load_weights_folder / --model_path).")
    encoder_state = load_state(folder, "encoder")
    extras = {k: encoder_state.pop(k) for k in ENCODER_EXTRA_KEYS if k in encoder_state}
    num_layers = infer_num_layers(encoder_state)
    encoder = networks.ResnetEncoder(num_layers, False)
    encoder.load_state_dict(encoder_state)
    decoder = networks.DepthDecoder(encoder.num_ch_enc, scales=range(4))
    decoder.load_state_dict(load_state(folder, "depth"))
    options = read_options(folder)
    info = DepthModelInfo(
        num_layers=num_layers,
        height=int(extras["height"]) if "height" in extras else options.get("height"),
        width=int(extras["width"]) if "width" in extras else options.get("width"),
        use_stereo=bool(extras["use_stereo"]) if "use_stereo" in extras else options.get("use_stereo"),
        options=options)
    device = device or torch.device("cpu")
    return encoder.to(device).eval(), decoder.to(device).eval(), info


def load_pose_networks(folder: str, device=None):
    """A separate-ResNet pose network from ``pose_encoder.pth`` (ResNet over 2 stacked frames)
    and ``pose.pth`` (PoseDecoder for 1 frame pair) -> (encoder, decoder), loaded strictly, in
    eval mode on ``device``."""
    encoder_state = load_state(folder, "pose_encoder")
    encoder = networks.ResnetEncoder(infer_num_layers(encoder_state), False, num_input_images=2)
    encoder.load_state_dict(encoder_state)
    decoder = networks.PoseDecoder(encoder.num_ch_enc, 1, 2)
    decoder.load_state_dict(load_state(folder, "pose"))
    device = device or torch.device("cpu")
    return encoder.to(device).eval(), decoder.to(device).eval()


def load_into(model: torch.nn.Module, folder: str, name: str, strict: bool = False) -> list:
    """Load ``<folder>/<name>.pth`` into ``model``; returns the skipped tensors' descriptions.

    ``strict`` (``--resume``): every tensor must be present with the same shape, else a
    CheckpointError names the file and the tensor. Lenient (fine-tuning, as monodepth2): loads
    the tensors that fit, prints what it skipped, and raises only if nothing fits."""
    path = os.path.join(folder, name + ".pth")
    state = load_state(folder, name)
    for key in ENCODER_EXTRA_KEYS if name == "encoder" else ():
        state.pop(key, None)
    own = model.state_dict()
    skipped = [f"{k} (not in the file)" for k in own if k not in state]
    skipped += [f"{k} (not in the {name} network)" for k in state if k not in own]
    skipped += [f"{k} (shape {tuple(v.shape)} in the file, {tuple(own[k].shape)} in the network)"
                for k, v in state.items() if k in own and own[k].shape != v.shape]
    if strict and skipped:
        raise CheckpointError(f"{path} does not fit the {name} network: {skipped[0]}"
                              f"{f' and {len(skipped) - 1} more' if len(skipped) > 1 else ''}; "
                              f"resume with the flags the run was started with (its opt.json).")
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise CheckpointError(f"{path} has no weights that fit the {name} network.")
    if skipped:
        print(f"note: {path}: loaded {len(matched)} tensors, skipped {len(skipped)}: "
              + "; ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    own.update(matched)
    model.load_state_dict(own)
    return skipped


def save_weights_folder(folder: str, models: dict, height: int, width: int, use_stereo: bool,
                        optimizer=None, train_state: dict | None = None, options: dict | None = None):
    """Write a complete weights folder atomically: a temp folder renamed into place.

    Replacing an existing ``folder`` takes two renames (a folder cannot be renamed over a
    non-empty one): the old one to ``<folder>.old``, the new one into place. A kill between
    them leaves ``<folder>.old``, still complete, which ``--resume`` takes while ``folder``
    is missing (COMPLETE_CHECKPOINT_PATTERN): a resumable checkpoint exists at every instant."""
    tmp = folder.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name, model in models.items():
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if name == "encoder":
            state.update(height=height, width=width, use_stereo=use_stereo)
        torch.save(state, os.path.join(tmp, f"{name}.pth"))
    if optimizer is not None:
        torch.save(optimizer.state_dict(), os.path.join(tmp, "adam.pth"))
    if train_state is not None:
        torch.save(train_state, os.path.join(tmp, "train_state.pth"))
    if options is not None:
        with open(os.path.join(tmp, "opt.json"), "w") as f:
            json.dump(options, f, indent=2, sort_keys=True)
    _fsync_tree(tmp)  # on disk before the rename makes it visible (a preempted job may be killed next)
    old = folder.rstrip("/") + ".old"
    if os.path.isdir(folder):
        shutil.rmtree(old, ignore_errors=True)  # stale: folder itself is complete
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(folder: str) -> None:
    """Flush every file of ``folder`` and the folder itself to disk."""
    for name in os.listdir(folder):
        fd = os.open(os.path.join(folder, name), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
