"""The pieces every depth-evaluation protocol shares: the error type, the depth caps and
Garg's crop, per-frame scoring and scaling, loading ground truth and predictions, the
prediction loop, and the steps around it (load or predict, save, choose the scaling, finish).

The protocols themselves: KITTI (``depth_hints.evaluation``, which also dispatches),
SceneFlow (``depth_hints.evaluation_sceneflow``), the layouts' own ground truth: own rigs,
Middlebury, Cityscapes (``depth_hints.evaluation_layout``).
"""
from __future__ import annotations

import json
import os
import sys

import cv2
import numpy as np
import torch
from tqdm import tqdm

from depth_hints.atomic import atomic_write
from depth_hints.checkpoints import load_depth_model, load_state, read_options
from depth_hints.errors import DepthHintsError
from depth_hints.geometry import STEREO_SCALE_FACTOR, disp_to_depth
from depth_hints.images import load_rgb
from depth_hints.inference import predict_disp, to_input_tensor
from depth_hints.metrics import METRIC_NAMES, compute_errors
from depth_hints.options import DEFAULT_MAX_DEPTH, DEFAULT_MIN_DEPTH, device_from, usable_cores
from depth_hints.trainer import loader_workers

MIN_DEPTH = 1e-3
MAX_DEPTH = 80.0
# Garg et al.'s crop as fractions of the image: rows top, bottom; columns left, right.
GARG_CROP_FRACTIONS = (0.40810811, 0.99189189, 0.03594771, 0.96405229)


class EvaluationError(DepthHintsError, ValueError):
    """Inputs that do not fit together; the message names the files, flags and the fix."""


# ----------------------------------------------------------------------------- pure math

def garg_crop_mask(height: int, width: int) -> np.ndarray:
    """Boolean [H,W]: True inside Garg's crop, rows int(0.40810811 H)..int(0.99189189 H) and
    columns int(0.03594771 W)..int(0.96405229 W) (end exclusive)."""
    top, bottom, left, right = (np.array(GARG_CROP_FRACTIONS)
                                * np.array([height, height, width, width])).astype(np.int32)
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def valid_gt_mask(gt_depth: np.ndarray, garg_crop: bool) -> np.ndarray:
    """Pixels that count [H,W] bool: with ``garg_crop`` MIN_DEPTH < gt < MAX_DEPTH inside the
    Garg crop (split eigen), otherwise gt > 0 (the other splits)."""
    if not garg_crop:
        return gt_depth > 0
    in_range = (gt_depth > MIN_DEPTH) & (gt_depth < MAX_DEPTH)
    return in_range & garg_crop_mask(*gt_depth.shape[:2])


def median_scaling(gt: np.ndarray, pred: np.ndarray):
    """Scale ``pred`` so its median matches ``gt``'s -> (scaled pred, ratio median(gt)/median(pred))."""
    ratio = float(np.median(gt) / np.median(pred))
    return pred * ratio, ratio


def batch_post_process_disparity(l_disp: np.ndarray, l_disp_flipped: np.ndarray) -> np.ndarray:
    """Monodepth's post-processing of [N,H,W] disparities: ``l_disp`` from the image,
    ``l_disp_flipped`` from the mirrored image flipped back. The left 5 % of columns come from
    the flipped prediction, the right 5 % from the original, the middle is their mean, with
    linear ramps over the next 5 % on each side."""
    _, _, width = l_disp.shape
    x = np.linspace(0.0, 1.0, width)
    left_weight = 1.0 - np.clip(20.0 * (x - 0.05), 0.0, 1.0)  # 1 at the left edge
    right_weight = left_weight[::-1]
    mean = 0.5 * (l_disp + l_disp_flipped)
    return (right_weight * l_disp + left_weight * l_disp_flipped
            + (1.0 - left_weight - right_weight) * mean)


def disp_to_gt_size(pred_disp: np.ndarray, height: int, width: int) -> np.ndarray:
    """Disparity [h,w] -> [height,width] with OpenCV bilinear interpolation."""

    pred_disp = np.asarray(pred_disp, dtype=np.float32)
    if pred_disp.shape == (height, width):
        return pred_disp
    return cv2.resize(pred_disp, (width, height), interpolation=cv2.INTER_LINEAR)


def score_frame(gt_depth: np.ndarray, pred_disp: np.ndarray, garg_crop: bool, scale_factor: float = 1.0,
                use_median_scaling: bool = False, mask: np.ndarray | None = None):
    """One frame: gt depth [H,W] metres, predicted disparity [h,w] -> (seven errors, median
    ratio or None). Depth = scale_factor / resized disparity, then median scaling, then
    clipping to [MIN_DEPTH, MAX_DEPTH]. ``mask`` [H,W]: the pixels that count (default
    ``valid_gt_mask(gt_depth, garg_crop)``)."""
    height, width = gt_depth.shape[:2]
    with np.errstate(divide="ignore"):
        pred_depth = 1.0 / disp_to_gt_size(pred_disp, height, width)
    if mask is None:
        mask = valid_gt_mask(gt_depth, garg_crop)
    if not mask.any():
        raise EvaluationError("A ground-truth frame has no valid pixels.")
    gt = gt_depth[mask]
    pred = pred_depth[mask] * scale_factor
    ratio = None
    if use_median_scaling:
        pred, ratio = median_scaling(gt, pred)
    pred = np.clip(pred, MIN_DEPTH, MAX_DEPTH)
    return compute_errors(gt, pred), ratio


def score_predictions(gt_depths, pred_disps, garg_crop: bool, scale_factor: float = 1.0,
                      use_median_scaling: bool = False, progress: bool = True) -> dict:
    """All frames -> {"errors": [N,7], "mean": [7], "ratios": [N] or None}."""
    errors, ratios = [], []
    for i in tqdm(range(len(pred_disps)), desc="score", unit="frame", disable=not progress):
        try:
            frame_errors, ratio = score_frame(np.asarray(gt_depths[i]), pred_disps[i], garg_crop,
                                              scale_factor, use_median_scaling)
        except EvaluationError as e:
            raise EvaluationError(f"Frame {i}: {e}") from None
        errors.append(frame_errors)
        ratios.append(ratio)
    errors = np.array(errors, dtype=np.float64)
    return {"errors": errors, "mean": errors.mean(0),
            "ratios": np.array(ratios, dtype=np.float64) if use_median_scaling else None}


def format_table(mean_errors) -> str:
    """The familiar two-line table: metric names, then ``&``-separated values (3 decimals)."""
    header = "  " + "".join(f"{name:>8} | " for name in METRIC_NAMES)
    values = "".join(f"&{value: 8.3f}  " for value in mean_errors) + "\\\\"
    return header + "\n" + values


# ----------------------------------------------------------------------------- files

def load_gt_depths(path: str | os.PathLike, missing_advice: str = "point --gt_path at it"):
    """``gt_depths.npz`` (key ``data``: an object array of [H,W] or a plain [N,H,W] array)
    -> indexable sequence of [H,W] depths in metres. ``missing_advice``: the fix named when
    the file does not exist. Anything but a readable npz raises one line naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise EvaluationError(f"Ground truth {path} does not exist: {missing_advice}.")
    expected = "expected an .npz with a 'data' array of [H,W] depths in metres"
    try:
        with np.load(path, allow_pickle=True, fix_imports=True, encoding="latin1") as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise EvaluationError(f"Ground truth {path} is a single array, not an npz; {expected} "
                                      f"(np.savez_compressed(path, data=depths)).")
            if "data" not in npz:
                raise EvaluationError(f"Ground truth {path} has no 'data' array (keys: "
                                      f"{list(npz.keys())}); {expected}.")
            data = npz["data"]
    except EvaluationError:
        raise
    except AttributeError:  # a plain .npy: np.load returned an ndarray, not a context manager
        raise EvaluationError(f"Ground truth {path} is a single array, not an npz; {expected} "
                              f"(np.savez_compressed(path, data=depths)).") from None
    except Exception as e:
        raise EvaluationError(f"Ground truth {path} could not be read ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}); {expected}: export it "
                              f"again.") from None
    if data.dtype != object and data.ndim != 3:
        raise EvaluationError(f"Ground truth {path}: 'data' has shape {data.shape}; expected "
                              f"[N,H,W] or an object array of [H,W] depths.")
    return data


def load_pred_disps(path: str | os.PathLike) -> np.ndarray:
    """``.npy`` of disparities [N,h,w] (or [N,1,h,w]) -> [N,h,w] float32."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise EvaluationError(f"--ext_disp_to_eval {path} does not exist.")
    disps = np.load(path, allow_pickle=False)
    if disps.ndim == 4 and disps.shape[1] == 1:
        disps = disps[:, 0]
    if disps.ndim != 3:
        raise EvaluationError(f"--ext_disp_to_eval {path}: shape {disps.shape}; expected [N,h,w].")
    return disps.astype(np.float32, copy=False)


def _save_npy(path: str, array: np.ndarray) -> None:
    with atomic_write(path, "wb") as f:
        np.save(f, array)


def _save_json(path: str, data: dict) -> None:
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2)


# ----------------------------------------------------------------------------- prediction

class _ImageList(torch.utils.data.Dataset):
    """Image paths -> network inputs [3,H,W] in [0,1]; ``crop``: a layout's ``crop_image``
    applied before the resize."""

    def __init__(self, paths, height: int, width: int, crop=None):
        self.paths, self.height, self.width, self.crop = list(paths), height, width, crop

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        image = load_rgb(self.paths[index], EvaluationError)
        if self.crop is not None:
            image = self.crop(image)
        return to_input_tensor(image, self.width, self.height)[0]


@torch.no_grad()
def predict_disparities(encoder, decoder, image_paths, height: int, width: int, batch_size: int = 16,
                        post_process: bool = False, min_depth: float = 0.1, max_depth: float = 100.0,
                        device=None, num_workers: int = 0, crop=None) -> np.ndarray:
    """Images -> scaled disparities [N,height,width] float32 (``disp_to_depth``'s first
    output); with ``post_process`` the mirrored image is predicted too and the two merged.
    ``crop``: applied to each image before the resize (a layout's ``crop_image``)."""
    device = device or torch.device("cpu")
    loader = torch.utils.data.DataLoader(_ImageList(image_paths, height, width, crop), batch_size=batch_size,
                                         shuffle=False, num_workers=num_workers,
                                         pin_memory=device.type == "cuda")
    outputs = []
    for images in tqdm(loader, desc="predict", unit="batch"):
        images = images.to(device)
        if post_process:
            images = torch.cat([images, torch.flip(images, [3])], 0)
        scaled_disp, _ = disp_to_depth(predict_disp(encoder, decoder, images), min_depth, max_depth)
        scaled_disp = scaled_disp[:, 0].float().cpu().numpy()
        if post_process:
            n = scaled_disp.shape[0] // 2
            scaled_disp = batch_post_process_disparity(scaled_disp[:n], scaled_disp[n:, :, ::-1])
        outputs.append(scaled_disp.astype(np.float32))
    return np.concatenate(outputs) if outputs else np.zeros((0, height, width), np.float32)


# ----------------------------------------------------------------------------- orchestration

def warn(message: str, collected: list) -> None:
    print(f"WARNING: {message}", file=sys.stderr, flush=True)
    collected.append(message)


def _checkpoint_use_stereo(folder: str):
    """use_stereo recorded in a weights folder (encoder.pth extras, else opt.json), or None."""

    if not os.path.isfile(os.path.join(folder, "encoder.pth")):
        return read_options(folder).get("use_stereo")
    value = load_state(folder, "encoder").get("use_stereo")
    return bool(value) if value is not None else read_options(folder).get("use_stereo")


def _check_scaling(options, use_stereo, collected: list,
                   stereo_scale_factor: float = STEREO_SCALE_FACTOR) -> None:
    if use_stereo and options.eval_mono and not options.disable_median_scaling:
        warn(f"{options.load_weights_folder} was trained with stereo (use_stereo=True) but is "
             f"evaluated with --eval_mono: per-image median scaling borrows the ground truth's "
             f"scale and inflates its numbers. Use --eval_stereo for stereo-trained models.",
             collected)
    if use_stereo is False and options.eval_stereo:
        warn(f"{options.load_weights_folder} was trained without stereo (use_stereo=False) but is "
             f"evaluated with --eval_stereo: its scale is arbitrary, so x{stereo_scale_factor:g} "
             f"without median scaling gives meaningless numbers. Use --eval_mono.", collected)


def output_folder(options) -> str:
    """Where saved predictions go: --eval_out_dir, else the weights folder, else beside
    --ext_disp_to_eval."""
    if options.eval_out_dir:
        return options.eval_out_dir
    if options.load_weights_folder:
        return options.load_weights_folder
    return os.path.dirname(os.path.abspath(options.ext_disp_to_eval))


def load_or_predict(options, collected: list, test_images,
                    stereo_scale_factor: float = STEREO_SCALE_FACTOR, crop=None):
    """Predicted disparities [N,h,w] from --ext_disp_to_eval or the model over the images of
    ``test_images(options) -> (paths, test list)`` -> (disparities, description). The test
    images are checked before the model is loaded; the depth range is --min_depth /
    --max_depth, else the checkpoint's opt.json, else 0.1 / 100; loader workers are capped to
    the cores as in training. Misuse of the scaling flags is warned about here."""
    if options.ext_disp_to_eval is not None:
        print(f"-> Loading predictions from {options.ext_disp_to_eval}")
        if options.load_weights_folder:
            _check_scaling(options, _checkpoint_use_stereo(options.load_weights_folder), collected,
                           stereo_scale_factor)
        return load_pred_disps(options.ext_disp_to_eval), options.ext_disp_to_eval

    paths, test_files = test_images(options)
    device = device_from(options.no_cuda)
    folder = os.path.expanduser(options.load_weights_folder)
    print(f"-> Loading weights from {folder}")
    encoder, decoder, info = load_depth_model(folder, device)
    _check_scaling(options, info.use_stereo, collected, stereo_scale_factor)
    height, width = info.height or options.height, info.width or options.width
    min_depth, max_depth = recorded_depth_range(options, info.options)
    workers = loader_workers(options.num_workers, usable_cores())
    print(f"-> Predicting {len(paths)} images of {test_files} at {width}x{height} on {device} "
          f"(depth range {min_depth:g}..{max_depth:g}, {workers} loader worker{'s' * (workers != 1)})")
    pred_disps = predict_disparities(encoder, decoder, paths, height, width, options.batch_size,
                                     options.post_process, min_depth, max_depth, device, workers, crop)
    return pred_disps, f"{options.load_weights_folder} over {test_files}"


def recorded_depth_range(options, recorded: dict) -> tuple:
    """(min_depth, max_depth) of ``disp_to_depth``: the flags when given, else the ones the
    checkpoint's opt.json ``recorded``, else 0.1 / 100 (what test_simple and the predictor use)."""
    return tuple(float(getattr(options, key) if getattr(options, key) is not None
                       else recorded.get(key, default))
                 for key, default in (("min_depth", DEFAULT_MIN_DEPTH), ("max_depth", DEFAULT_MAX_DEPTH)))


def report_median_ratios(ratios) -> dict:
    """Print monodepth2's median-scaling line and return {median_ratio, median_ratio_std}
    (the std of the per-frame ratios over their median)."""
    ratios = np.asarray(ratios, np.float64)
    med = float(np.median(ratios))
    std = float(np.std(ratios / med))
    print(f" Scaling ratios | med: {med:0.3f} | std: {std:0.3f}")
    return {"median_ratio": med, "median_ratio_std": std}


def save_and_choose_scaling(options, pred_disps, split_name: str, result: dict, collected: list,
                            stereo_scale_factor: float, stereo_note: str):
    """--save_pred_disps, then the depth scaling the flags ask for -> (scale factor, median
    scaling?); both recorded in ``result``. ``stereo_note`` starts the warning given when
    --pred_depth_scale_factor is overridden by --eval_stereo."""
    if options.save_pred_disps:
        out = os.path.join(output_folder(options), f"disps_{split_name}_split.npy")
        _save_npy(out, pred_disps)
        print(f"-> Saved predicted disparities to {out}")
        result["saved_disps"] = out
    scale_factor = stereo_scale_factor if options.eval_stereo else options.pred_depth_scale_factor
    use_median = options.eval_mono and not options.disable_median_scaling
    if options.eval_stereo and options.pred_depth_scale_factor != 1.0:
        scale_factor = options.pred_depth_scale_factor
        print(f"   {stereo_note}; --pred_depth_scale_factor {scale_factor:g} overrides it.")
    result.update(scaling="stereo" if options.eval_stereo else ("median" if use_median else "none"),
                  pred_depth_scale_factor=scale_factor)
    return scale_factor, use_median


def finish(options, result: dict, collected: list) -> dict:
    result["warnings"] = list(collected)
    if options.output_json:
        _save_json(options.output_json, result)
        print(f"-> Wrote {options.output_json}")
    return result

