"""Depth evaluation on KITTI: metrics, the Garg crop, scaling, post-processing and the loop.

Protocol (monodepth2's, so numbers are comparable with published tables):

* predictions are scaled disparities (``disp_to_depth(sigmoid, min_depth, max_depth)[0]``) at
  the model's resolution, resized to the ground truth's size with bilinear interpolation;
  depth = 1 / disparity;
* split ``eigen``: ground truth in (1e-3, 80) m inside the Garg crop; every other split
  (``eigen_benchmark``, folders of other names): every pixel with ground truth > 0;
* stereo-trained models: depth x 5.4 (nominal baseline 0.1 -> KITTI's 0.54 m), no median
  scaling; mono-trained models: per-image median scaling;
* predicted depth clipped to [1e-3, 80] m before the metrics.

SceneFlow (``--dataset sceneflow`` or ``--eval_split sceneflow_test``, ``evaluate_sceneflow``):
the ground truth is each test frame's PFM disparity at full resolution (valid: finite, > 0);
predictions are resized to it; stereo-trained models: depth x 10 (nominal baseline 0.1 ->
SceneFlow's 1 scene unit), mono-trained: per-image median scaling. Disparity metrics (EPE,
bad-1, bad-3 in pixels) on every valid pixel; the seven depth metrics with depth =
fx * 1 / disparity in (1e-3, 1000) scene units, predictions clipped to that range.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from datasets.cityscapes import (CITYSCAPES_EVAL_SPLIT, EVAL_COLUMNS, EVAL_FRAME_SIZE, EVAL_ROWS,
                                 CITYSCAPES_CROP_ROWS, cityscapes_test_file, is_cityscapes_test_list,
                                 read_cityscapes_test_list)
from datasets.layout import DatasetError, LayoutError
from datasets.registry import make_layout
from depth_hints.atomic import atomic_write
from depth_hints.checkpoints import (load_depth_model, load_state, metric_scale_factor, read_options,
                                     recorded_metric_scale)
from depth_hints.errors import DepthHintsError
from depth_hints.geometry import STEREO_SCALE_FACTOR, disp_to_depth
from depth_hints.images import load_rgb
from depth_hints.inference import predict_disp, to_input_tensor
from depth_hints.kitti import save_depth_png
# the metrics live in depth_hints.metrics; imported here so that
# ``depth_hints.evaluation.compute_errors`` stays where monodepth2 users look for it
from depth_hints.metrics import (DISPARITY_METRIC_NAMES, METRIC_NAMES, compute_errors,  # noqa: F401
                                 disparity_metrics, valid_disparity_mask)
from depth_hints.options import device_from
from depth_hints.pfm import PFMError
from depth_hints.splits import PROJECT_SPLITS_DIR, read_split_file, split_dir

MIN_DEPTH = 1e-3
MAX_DEPTH = 80.0
# Garg et al.'s crop as fractions of the image: rows top, bottom; columns left, right.
GARG_CROP_FRACTIONS = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
GARG_CROP_SPLITS = ("eigen",)
# Every image of the KITTI depth-prediction benchmark's test set is 1216 x 352 (W x H).
BENCHMARK_IMAGE_SIZE = (352, 1216)
BENCHMARK_SPLIT = "benchmark"
EXPORT_HINT = "python scripts/export_gt_depth.py --data_path <kitti raw> --split {split}"


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


def cityscapes_eval_mask(gt_depth: np.ndarray) -> np.ndarray:
    """Pixels that count on Cityscapes [H,W] bool, ``gt_depth`` being the top 75 % of the
    frame: MIN_DEPTH < gt < MAX_DEPTH inside rows 256..768 and columns 192..1856 of the
    1024 x 2048 frame (scaled proportionally for other frame sizes)."""
    height, width = gt_depth.shape[:2]
    frame_height = height / CITYSCAPES_CROP_ROWS
    top, bottom = (int(round(r * frame_height / EVAL_FRAME_SIZE[0])) for r in EVAL_ROWS)
    left, right = (int(round(c * width / EVAL_FRAME_SIZE[1])) for c in EVAL_COLUMNS)
    window = np.zeros((height, width), bool)
    window[top:bottom, left:right] = True
    return window & (gt_depth > MIN_DEPTH) & (gt_depth < MAX_DEPTH)


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

def load_gt_depths(path: str | os.PathLike):
    """``gt_depths.npz`` (key ``data``: an object array of [H,W] or a plain [N,H,W] array)
    -> indexable sequence of [H,W] depths in metres."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise EvaluationError(f"Ground truth {path} does not exist. Export it with "
                              f"`{EXPORT_HINT.format(split='eigen|eigen_benchmark|<folder>')}` "
                              f"or point --gt_path at it.")
    with np.load(path, allow_pickle=True, fix_imports=True, encoding="latin1") as npz:
        if "data" not in npz:
            raise EvaluationError(f"Ground truth {path} has no 'data' array (keys: {list(npz.keys())}).")
        data = npz["data"]
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


def write_benchmark_pngs(pred_disps: np.ndarray, out_dir: str, scale_factor: float = STEREO_SCALE_FACTOR,
                         size: tuple[int, int] = BENCHMARK_IMAGE_SIZE) -> list[str]:
    """Disparities [N,h,w] -> ``<out_dir>/<index:010d>.png``: depth = scale_factor / disparity
    resized to ``size`` (H, W), clipped to [0, 80] m, stored as uint16 depth x 256."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for index in tqdm(range(len(pred_disps)), desc="benchmark png", unit="frame"):
        disp = disp_to_gt_size(pred_disps[index], *size)
        with np.errstate(divide="ignore"):
            depth = scale_factor / disp
        path = os.path.join(out_dir, f"{index:010d}.png")
        save_depth_png(path, depth, max_depth=MAX_DEPTH)
        paths.append(path)
    return paths


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


def kitti_test_image_paths(data_path: str, samples, png: bool = False) -> list[str]:
    """Split samples -> image paths: KITTI raw ``<folder>/image_0{2,3}/data/<frame:010d>.jpg``
    (``.png`` with --png; the other extension is accepted when only it exists), else the flat
    ``<folder>/<frame:010d>.<ext>`` of KITTI's benchmark test images (``--data_path
    .../test_depth_prediction_anonymous`` with the ``image <n>`` lines of splits/benchmark).
    A missing image raises naming it."""
    extensions = (".png", ".jpg") if png else (".jpg", ".png")
    layouts = [make_layout("kitti", data_path, img_ext=ext) for ext in extensions]
    paths = []
    for sample in samples:
        candidates = [layout.image_path(sample.folder, sample.frame_index, sample.side)
                      for layout in layouts]
        candidates += [layout.benchmark_image_path(sample.folder, sample.frame_index)
                       for layout in layouts]
        found = next((c for c in candidates if os.path.isfile(c)), None)
        if found is None:
            raise EvaluationError(f"Test image {candidates[0]} does not exist (nor with "
                                  f"{extensions[1]}, nor {candidates[2]}); check --data_path "
                                  f"{data_path} and --png.")
        paths.append(found)
    return paths


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

def _warn(message: str, collected: list) -> None:
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
        _warn(f"{options.load_weights_folder} was trained with stereo (use_stereo=True) but is "
              f"evaluated with --eval_mono: per-image median scaling borrows the ground truth's "
              f"scale and inflates its numbers. Use --eval_stereo for stereo-trained models.",
              collected)
    if use_stereo is False and options.eval_stereo:
        _warn(f"{options.load_weights_folder} was trained without stereo (use_stereo=False) but is "
              f"evaluated with --eval_stereo: its scale is arbitrary, so x{stereo_scale_factor:g} "
              f"without median scaling gives meaningless numbers. Use --eval_mono.", collected)


def _output_folder(options) -> str:
    """Where saved predictions go: --eval_out_dir, else the weights folder, else beside
    --ext_disp_to_eval."""
    if options.eval_out_dir:
        return options.eval_out_dir
    if options.load_weights_folder:
        return options.load_weights_folder
    return os.path.dirname(os.path.abspath(options.ext_disp_to_eval))


def _eigen_to_benchmark(pred_disps: np.ndarray) -> np.ndarray:
    ids_path = split_dir("benchmark") / "eigen_to_benchmark_ids.npy"
    if not ids_path.is_file():
        raise EvaluationError(f"--eval_eigen_to_benchmark needs {ids_path}; fetch it with "
                              f"`python scripts/fetch_kitti_splits.py`.")
    ids = np.load(ids_path)
    if len(pred_disps) <= ids.max():
        raise EvaluationError(f"--eval_eigen_to_benchmark: {ids_path} indexes eigen predictions up to "
                              f"{ids.max()}, but there are only {len(pred_disps)} predictions; "
                              f"give predictions over the eigen test list.")
    return pred_disps[ids]


def _kitti_test_images(options):
    """-> (image paths, test list) of the split's KITTI test list (the eigen list with
    --eval_eigen_to_benchmark)."""
    predict_split = "eigen" if options.eval_eigen_to_benchmark else options.eval_split
    test_files = split_dir(predict_split) / "test_files.txt"
    paths = kitti_test_image_paths(options.data_path, read_split_file(test_files, require_side=False),
                                   options.png)
    return paths, test_files


def _load_or_predict(options, collected: list, test_images=_kitti_test_images,
                     stereo_scale_factor: float = STEREO_SCALE_FACTOR, crop=None):
    """Predicted disparities [N,h,w] from --ext_disp_to_eval or the model over the images of
    ``test_images(options) -> (paths, test list)`` (default: the KITTI test list)
    -> (disparities, description). Misuse of the scaling flags is warned about here."""
    if options.ext_disp_to_eval is not None:
        print(f"-> Loading predictions from {options.ext_disp_to_eval}")
        if options.load_weights_folder:
            _check_scaling(options, _checkpoint_use_stereo(options.load_weights_folder), collected,
                           stereo_scale_factor)
        return load_pred_disps(options.ext_disp_to_eval), options.ext_disp_to_eval


    device = device_from(options.no_cuda)
    encoder, decoder, info = load_depth_model(os.path.expanduser(options.load_weights_folder), device)
    _check_scaling(options, info.use_stereo, collected, stereo_scale_factor)
    height, width = info.height or options.height, info.width or options.width
    paths, test_files = test_images(options)
    print(f"-> Predicting {len(paths)} images of {test_files} at {width}x{height} on {device}")
    pred_disps = predict_disparities(encoder, decoder, paths, height, width, options.batch_size,
                                     options.post_process, options.min_depth, options.max_depth,
                                     device, options.num_workers, crop)
    return pred_disps, f"{options.load_weights_folder} over {test_files}"



def report_median_ratios(ratios) -> dict:
    """Print monodepth2's median-scaling line and return {median_ratio, median_ratio_std}
    (the std of the per-frame ratios over their median)."""
    ratios = np.asarray(ratios, np.float64)
    med = float(np.median(ratios))
    std = float(np.std(ratios / med))
    print(f" Scaling ratios | med: {med:0.3f} | std: {std:0.3f}")
    return {"median_ratio": med, "median_ratio_std": std}

def evaluate(options) -> dict:
    """Predict (or load) disparities for ``--eval_split`` and score them -> result dict: the
    seven metrics by name plus split, n, scaling and warnings. ``options``: EvaluateOptions.
    ``--dataset sceneflow`` or ``--eval_split sceneflow_test``: ``evaluate_sceneflow``."""
    if options.dataset == "sceneflow" or options.eval_split == SCENEFLOW_TEST_SPLIT:
        return evaluate_sceneflow(options)
    if options.dataset in LAYOUT_EVAL_DATASETS or options.eval_split == CITYSCAPES_EVAL_SPLIT:
        return evaluate_layout(options)
    split_name = Path(options.eval_split).name
    collected: list[str] = []
    result: dict = {"split": options.eval_split}

    if options.eval_eigen_to_benchmark and split_name in ("eigen", BENCHMARK_SPLIT):
        raise EvaluationError("--eval_eigen_to_benchmark scores eigen predictions on the "
                              "eigen_benchmark ground truth: use --eval_split eigen_benchmark.")

    stereo_factor = _recorded_stereo_factor(options)
    pred_disps, source = _load_or_predict(options, collected, stereo_scale_factor=stereo_factor)
    if options.eval_eigen_to_benchmark:
        pred_disps = _eigen_to_benchmark(pred_disps)
    result.update(n=int(len(pred_disps)), predictions=source, post_process=bool(options.post_process))

    scale_factor, use_median = _save_and_choose_scaling(
        options, pred_disps, split_name, result, collected, stereo_factor,
        f"--eval_stereo scales by {stereo_factor:g}")

    if options.no_eval:
        print("-> Evaluation disabled (--no_eval).")
        return _finish(options, result, collected)

    if split_name == BENCHMARK_SPLIT:
        if not options.eval_stereo:
            _warn("Benchmark predictions of a mono model are written without median scaling (there "
                  "is no public ground truth): their scale is not metric.", collected)
        out_dir = os.path.join(_output_folder(options), "benchmark_predictions")
        write_benchmark_pngs(pred_disps, out_dir, scale_factor)
        print(f"-> Wrote {len(pred_disps)} benchmark predictions to {out_dir}; the benchmark has no "
              f"public ground truth, so nothing is scored.")
        result["benchmark_predictions"] = out_dir
        return _finish(options, result, collected)

    gt_path = options.gt_path or os.fspath(split_dir(options.eval_split) / "gt_depths.npz")
    gt_depths = load_gt_depths(gt_path)
    if len(gt_depths) != len(pred_disps):
        raise EvaluationError(f"{len(pred_disps)} predictions ({source}) but {len(gt_depths)} "
                              f"ground-truth frames in {gt_path}; they must match one to one "
                              f"(same split, same order).")
    if options.eval_protocol == "auto":
        garg_crop = split_name in GARG_CROP_SPLITS
    else:
        garg_crop = options.eval_protocol == "eigen"
    print("-> Evaluating")
    if options.eval_stereo:
        print(f"   Stereo evaluation - disabling median scaling, scaling by {scale_factor:g}")
    elif use_median:
        print("   Mono evaluation - using median scaling")
    scores = score_predictions(gt_depths, pred_disps, garg_crop, scale_factor, use_median)
    if scores["ratios"] is not None:
        result.update(report_median_ratios(scores["ratios"]))
    result.update({name: float(v) for name, v in zip(METRIC_NAMES, scores["mean"])})
    result.update(gt_path=gt_path, garg_crop=garg_crop)
    print("\n" + format_table(scores["mean"]))
    for message in collected:
        print(f"WARNING: {message}", file=sys.stderr)
    print("\n-> Done!")
    return _finish(options, result, collected)


def _save_and_choose_scaling(options, pred_disps, split_name: str, result: dict, collected: list,
                             stereo_scale_factor: float, stereo_note: str):
    """--save_pred_disps, then the depth scaling the flags ask for -> (scale factor, median
    scaling?); both recorded in ``result``. ``stereo_note`` starts the warning given when
    --pred_depth_scale_factor is overridden by --eval_stereo."""
    if options.save_pred_disps:
        out = os.path.join(_output_folder(options), f"disps_{split_name}_split.npy")
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


def _finish(options, result: dict, collected: list) -> dict:
    result["warnings"] = list(collected)
    if options.output_json:
        _save_json(options.output_json, result)
        print(f"-> Wrote {options.output_json}")
    return result


# ----------------------------------------------------------------------------- SceneFlow

SCENEFLOW_TEST_SPLIT = "sceneflow_test"
SCENEFLOW_SPLITS_HINT = "python scripts/make_sceneflow_splits.py --data_path <sceneflow root>"
#: depth caps on SceneFlow, in scene units (baseline 1): the ground truth counts in
#: (MIN, MAX), predictions are clipped to [MIN, MAX]. 1000 units is a disparity of 1.05 px at
#: 960 px and 1050 px focal length (finer disparities are below what the metrics resolve),
#: and exactly the farthest depth a stereo-trained model with the default --max_depth 100
#: can predict (100 nominal units x 10).
SCENEFLOW_MIN_DEPTH = 1e-3
SCENEFLOW_MAX_DEPTH = 1000.0


def score_sceneflow_frame(gt_disp: np.ndarray, pred_disp: np.ndarray, fx_px: float,
                          baseline: float = 1.0, scale_factor: float = 1.0,
                          use_median_scaling: bool = False,
                          min_depth: float = SCENEFLOW_MIN_DEPTH, max_depth: float = SCENEFLOW_MAX_DEPTH):
    """One SceneFlow frame -> (seven depth errors, (epe, bad1, bad3), median ratio or None).

    gt_disp [H,W]: ground-truth disparity in pixels at full resolution (valid: finite, > 0);
    pred_disp [h,w]: the network's scaled disparity, resized bilinearly to [H,W]; fx_px: focal
    length in pixels at W. Predicted depth = scale_factor / disparity, times the per-image
    ratio median(gt depth) / median(predicted depth) with ``use_median_scaling``; its disparity
    fx_px * baseline / depth gives the disparity errors over every valid pixel. Depth errors:
    ground truth depth fx_px * baseline / gt_disp in (min_depth, max_depth), prediction
    clipped to [min_depth, max_depth]."""
    height, width = gt_disp.shape[:2]
    pred = disp_to_gt_size(pred_disp, height, width).astype(np.float64)
    valid = valid_disparity_mask(gt_disp)
    if not valid.any():
        raise EvaluationError("the ground-truth disparity has no valid pixels (finite, > 0).")
    gt_depth = np.zeros((height, width), np.float64)
    gt_depth[valid] = fx_px * baseline / gt_disp[valid].astype(np.float64)
    depth_valid = valid & (gt_depth > min_depth) & (gt_depth < max_depth)
    if not depth_valid.any():
        raise EvaluationError(f"no ground-truth depth inside ({min_depth:g}, {max_depth:g}) "
                              f"scene units.")
    with np.errstate(divide="ignore"):
        pred_depth = scale_factor / pred
    ratio, factor = None, scale_factor
    if use_median_scaling:
        _, ratio = median_scaling(gt_depth[depth_valid], pred_depth[depth_valid])
        pred_depth = pred_depth * ratio
        factor = scale_factor * ratio
    # the predicted disparity in pixels: fx_px * baseline / depth, with depth = factor / pred
    pred_disparity = pred * (fx_px * baseline / factor)
    disparity_errors = disparity_metrics(pred_disparity[valid], gt_disp[valid])
    depth_errors = compute_errors(gt_depth[depth_valid],
                                  np.clip(pred_depth[depth_valid], min_depth, max_depth))
    return depth_errors, disparity_errors, ratio


def sceneflow_test_file(eval_split: str) -> Path:
    """--eval_split -> its SceneFlow test list: ``sceneflow_test`` is the project's
    splits/sceneflow/test_files.txt, anything else a split folder's test_files.txt."""
    if eval_split == SCENEFLOW_TEST_SPLIT:
        path = PROJECT_SPLITS_DIR / "sceneflow" / "test_files.txt"
        if not path.is_file():
            raise EvaluationError(f"--eval_split {SCENEFLOW_TEST_SPLIT} reads {path}, which does "
                                  f"not exist: make it with `{SCENEFLOW_SPLITS_HINT}` (FlyingThings3D "
                                  f"TEST -> test_files.txt), or pass --eval_split <a folder with a "
                                  f"test_files.txt of SceneFlow lines>.")
        return path
    path = split_dir(eval_split) / "test_files.txt"
    if not path.is_file():
        raise EvaluationError(f"--dataset sceneflow --eval_split {eval_split}: {path} does not "
                              f"exist. Make SceneFlow split lists with `{SCENEFLOW_SPLITS_HINT} "
                              f"--out_dir <folder>`.")
    return path


def _sceneflow_samples(layout, test_file: Path) -> list:
    samples = read_split_file(test_file, require_side=False)
    for sample in samples:
        try:
            layout.check_sample(sample)
        except LayoutError as e:
            raise EvaluationError(f"{test_file}: {e} (--dataset sceneflow)") from None
    return samples


def _sceneflow_test_images(options, layout, samples, test_file):
    """-> (image paths, test list) of SceneFlow test samples; a missing image raises naming it."""
    paths = [layout.image_path(s.folder, s.frame_index, s.side) for s in samples]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise EvaluationError(f"Test image {missing[0]} does not exist ({len(missing)} of "
                              f"{len(paths)} missing); check --data_path {options.data_path} and "
                              f"--sceneflow_pass {options.sceneflow_pass}.")
    return paths, test_file


def _sceneflow_gt_disparity(layout, sample) -> np.ndarray:
    try:
        return layout.read_gt(sample.folder, sample.frame_index, sample.side).values
    except (DatasetError, PFMError) as e:
        raise EvaluationError(str(e)) from None


def evaluate_sceneflow(options) -> dict:
    """SceneFlow evaluation (``--dataset sceneflow`` or ``--eval_split sceneflow_test``).

    Predictions (the model over the test list's images of --sceneflow_pass, or
    --ext_disp_to_eval) are resized to each frame's ground-truth PFM disparity (full
    resolution). Scaling: --eval_stereo multiplies depth by SCENEFLOW_STEREO_SCALE_FACTOR (the
    nominal baseline 0.1 -> SceneFlow's 1.0); --eval_mono scales each image by its median
    depth ratio. Reports the seven depth metrics (caps SCENEFLOW_MIN/MAX_DEPTH) and epe, bad1,
    bad3 (pixels at full resolution, every pixel with finite positive ground truth), each the
    mean over frames. -> result dict (as ``evaluate``'s, plus the disparity metrics)."""
    layout = make_layout("sceneflow", options.data_path, sceneflow_pass=options.sceneflow_pass)
    if options.eval_eigen_to_benchmark:
        raise EvaluationError("--eval_eigen_to_benchmark is a KITTI option; drop it for SceneFlow.")
    split_name = Path(options.eval_split).name
    test_file = sceneflow_test_file(options.eval_split)
    samples = _sceneflow_samples(layout, test_file)
    # every SceneFlow camera has the renders' baseline: one metric factor (10) for all frames
    stereo_scale_factor = layout.camera(samples[0].folder).metric_scale if samples else 10.0
    collected: list[str] = []
    result: dict = {"split": options.eval_split, "dataset": "sceneflow", "test_files": str(test_file)}

    pred_disps, source = _load_or_predict(
        options, collected, lambda o: _sceneflow_test_images(o, layout, samples, test_file),
        stereo_scale_factor)
    if len(pred_disps) != len(samples):
        raise EvaluationError(f"{len(pred_disps)} predictions ({source}) but {len(samples)} lines "
                              f"in {test_file}; they must match one to one (same order).")
    result.update(n=int(len(pred_disps)), predictions=source, post_process=bool(options.post_process))
    scale_factor, use_median = _save_and_choose_scaling(
        options, pred_disps, split_name, result, collected, stereo_scale_factor,
        f"--eval_stereo scales by {stereo_scale_factor:g} on SceneFlow")
    result["depth_caps"] = [SCENEFLOW_MIN_DEPTH, SCENEFLOW_MAX_DEPTH]
    if options.no_eval:
        print("-> Evaluation disabled (--no_eval).")
        return _finish(options, result, collected)

    print("-> Evaluating on SceneFlow ground-truth disparities")
    if options.eval_stereo:
        print(f"   Stereo evaluation - disabling median scaling, scaling by "
              f"{stereo_scale_factor:g}")
    elif use_median:
        print("   Mono evaluation - using median scaling")
    depth_errors, disparity_errors, ratios = [], [], []
    for sample, pred_disp in tqdm(list(zip(samples, pred_disps)), desc="score", unit="frame"):
        gt_disp = _sceneflow_gt_disparity(layout, sample)
        camera = layout.camera(sample.folder)
        fx_px = camera.fx_px(gt_disp.shape[1])
        try:
            frame_depth, frame_disp, ratio = score_sceneflow_frame(
                gt_disp, pred_disp, fx_px, camera.baseline, scale_factor, use_median)
        except EvaluationError as e:
            raise EvaluationError(f"{sample.folder} {sample.frame_index} {sample.side}: {e}") from None
        depth_errors.append(frame_depth)
        disparity_errors.append(frame_disp)
        ratios.append(ratio)
    depth_mean = np.array(depth_errors, np.float64).mean(0)
    disparity_mean = np.array(disparity_errors, np.float64).mean(0)
    if use_median:
        result.update(report_median_ratios(ratios))
    result.update({name: float(v) for name, v in zip(METRIC_NAMES, depth_mean)})
    result.update({name: float(v) for name, v in zip(DISPARITY_METRIC_NAMES, disparity_mean)})
    print("\n" + format_table(depth_mean))
    print("\n  " + "".join(f"{name:>8} | " for name in DISPARITY_METRIC_NAMES) + "  (pixels at full "
          "resolution; bad-k: fraction with error > k px)\n"
          + "".join(f"&{value: 8.3f}  " for value in disparity_mean) + "\\\\")
    for message in collected:
        print(f"WARNING: {message}", file=sys.stderr)
    print("\n-> Done!")
    return _finish(options, result, collected)


# ----------------------------------------------------------------------------- any layout

#: datasets evaluated through their layout's ground truth (``evaluate_layout``)
LAYOUT_EVAL_DATASETS = ("stereo", "middlebury", "cityscapes")


def _recorded_stereo_factor(options) -> float:
    """--eval_stereo's factor: --pred_depth_scale_factor when given, else the one the weights'
    training recorded, KITTI's 5.4 for weights that record none (released ones), an error for
    a mixed-rig training set. Not --eval_stereo: 5.4 (unused)."""
    if not options.eval_stereo:
        return STEREO_SCALE_FACTOR
    override = options.pred_depth_scale_factor if options.pred_depth_scale_factor != 1.0 else None
    folder = os.path.expanduser(options.load_weights_folder) if options.load_weights_folder else None
    return metric_scale_factor(folder, override)


def load_gt_depth_folder(folder: str, count: int) -> list:
    """ManyDepth's published ground truth: ``<folder>/NNN_depth.npy`` (index 000, 001, ...)
    -> ``count`` [H,W] depths in metres; a missing file raises naming it."""
    depths = []
    for index in range(count):
        path = os.path.join(folder, f"{index:03d}_depth.npy")
        if not os.path.isfile(path):
            raise EvaluationError(f"--gt_path {folder}: {path} does not exist ({count} test images "
                                  f"need 000_depth.npy .. {count - 1:03d}_depth.npy).")
        depths.append(np.load(path, allow_pickle=False).astype(np.float32))
    return depths


def _layout_samples(options, layout):
    """-> (samples, test list path) of --eval_split for a layout evaluation."""
    if options.dataset == "cityscapes" or options.eval_split == CITYSCAPES_EVAL_SPLIT:
        path = cityscapes_test_file(options.eval_split)
        if options.eval_split == CITYSCAPES_EVAL_SPLIT or is_cityscapes_test_list(path):
            return read_cityscapes_test_list(path), path
    else:
        path = split_dir(options.eval_split) / "test_files.txt"
    samples = read_split_file(path, require_side=False, named_frames=layout.named_frames)
    for sample in samples:
        try:
            layout.check_sample(sample)
        except LayoutError as e:
            raise EvaluationError(f"{path}: {e}") from None
    return samples, path


def evaluate_layout(options) -> dict:
    """Evaluation on a layout's own test frames and ground truth (``--dataset stereo``,
    ``middlebury``, ``cityscapes`` / ``--eval_split cityscapes``).

    Images are cropped as the layout's loader crops them (Cityscapes: top 75 %), predicted,
    and scored against ``--gt_path`` (an npz of [H,W] depths, or a folder of ManyDepth's
    NNN_depth.npy full frames, cropped alike) or else each frame's ground truth from the
    layout (depth; disparity converted with the frame's camera). Cityscapes counts depths in
    (1e-3, 80) m inside rows 256..768, columns 192..1856 of the frame; other layouts every
    pixel with ground truth in (1e-3, 80) m (predictions are clipped to that range). Scaling: --eval_mono per-image median; --eval_stereo the
    factor the training recorded (Cityscapes without one: each frame's own camera, baseline /
    0.1), --pred_depth_scale_factor overrides."""
    dataset = "cityscapes" if options.eval_split == CITYSCAPES_EVAL_SPLIT else options.dataset
    layout = make_layout(dataset, options.data_path, img_ext=".png" if options.png else ".jpg")
    samples, test_file = _layout_samples(options, layout)
    collected: list[str] = []
    result: dict = {"split": options.eval_split, "dataset": dataset, "test_files": str(test_file)}
    folder = os.path.expanduser(options.load_weights_folder) if options.load_weights_folder else None
    override = options.pred_depth_scale_factor if options.pred_depth_scale_factor != 1.0 else None
    per_frame_factor = False
    if options.eval_stereo:
        recorded, value = recorded_metric_scale(folder)
        if dataset == "cityscapes" and override is None and (not recorded or value is None):
            per_frame_factor = True  # each frame's own camera: baseline / 0.1
        stereo_factor = 1.0 if per_frame_factor else metric_scale_factor(folder, override)
    else:
        stereo_factor = STEREO_SCALE_FACTOR

    def test_images(_options):
        paths = [layout.image_path(s.folder, s.frame_index, s.side) for s in samples]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise EvaluationError(f"Test image {missing[0]} does not exist ({len(missing)} of "
                                  f"{len(paths)} missing); check --data_path {options.data_path}.")
        return paths, test_file

    pred_disps, source = _load_or_predict(options, collected, test_images, stereo_factor,
                                          crop=layout.crop_image)
    if len(pred_disps) != len(samples):
        raise EvaluationError(f"{len(pred_disps)} predictions ({source}) but {len(samples)} lines "
                              f"in {test_file}; they must match one to one (same order).")
    result.update(n=int(len(pred_disps)), predictions=source, post_process=bool(options.post_process))
    scale_factor, use_median = _save_and_choose_scaling(
        options, pred_disps, Path(options.eval_split).name, result, collected, stereo_factor,
        "--eval_stereo scales by " + ("each frame's camera factor" if per_frame_factor
                                      else f"{stereo_factor:g}"))
    if options.no_eval:
        print("-> Evaluation disabled (--no_eval).")
        return _finish(options, result, collected)

    gt_depths = None
    if options.gt_path and os.path.isdir(options.gt_path):
        gt_depths = [layout.crop_array(d) for d in load_gt_depth_folder(options.gt_path, len(samples))]
    elif options.gt_path:
        gt_depths = load_gt_depths(options.gt_path)
        if len(gt_depths) != len(samples):
            raise EvaluationError(f"{len(samples)} test lines in {test_file} but {len(gt_depths)} "
                                  f"ground-truth frames in {options.gt_path}.")
    print(f"-> Evaluating on {dataset} ground truth"
          + (" (rows 256-768, columns 192-1856 of the frame, depth in (1e-3, 80) m)"
             if dataset == "cityscapes" else ""))
    if options.eval_stereo:
        print("   Stereo evaluation - disabling median scaling, scaling by "
              + ("each frame's camera factor (baseline / 0.1)" if per_frame_factor else f"{scale_factor:g}"))
    elif use_median:
        print("   Mono evaluation - using median scaling")
    errors, ratios, factors = [], [], []
    for index, (sample, pred_disp) in enumerate(tqdm(list(zip(samples, pred_disps)), desc="score",
                                                     unit="frame")):
        where = f"{sample.folder} {sample.frame_index} {sample.side}"
        if gt_depths is not None:
            gt = np.asarray(gt_depths[index], np.float32)
        else:
            try:
                gt = layout.gt_depth(sample.folder, sample.frame_index, sample.side)
            except (DatasetError, PFMError) as e:
                raise EvaluationError(str(e)) from None
            if gt is None:
                raise EvaluationError(f"{where}: no ground truth at {layout.gt_path(sample.folder, sample.frame_index, sample.side)}; "
                                      f"pass --gt_path (Cityscapes test: ManyDepth's gt_depths folder).")
        factor = scale_factor
        if per_frame_factor and options.eval_stereo:
            factor = layout.camera(sample.folder, sample.frame_index).metric_scale
        mask = (cityscapes_eval_mask(gt) if dataset == "cityscapes"
                else (gt > MIN_DEPTH) & (gt < MAX_DEPTH))
        try:
            frame_errors, ratio = score_frame(gt, pred_disp, False, factor, use_median, mask=mask)
        except EvaluationError as e:
            raise EvaluationError(f"{where}: {e}") from None
        errors.append(frame_errors)
        ratios.append(ratio)
        factors.append(factor)
    mean = np.array(errors, np.float64).mean(0)
    if use_median:
        result.update(report_median_ratios(ratios))
    if per_frame_factor and options.eval_stereo:
        result["pred_depth_scale_factor"] = float(np.mean(factors))
        result["scaling"] = "stereo (each frame's camera)"
    result.update({name: float(v) for name, v in zip(METRIC_NAMES, mean)})
    print("\n" + format_table(mean))
    for message in collected:
        print(f"WARNING: {message}", file=sys.stderr)
    print("\n-> Done!")
    return _finish(options, result, collected)
