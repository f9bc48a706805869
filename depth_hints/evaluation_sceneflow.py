"""SceneFlow evaluation (``--dataset sceneflow`` or ``--eval_split sceneflow_test``).

The ground truth is each test frame's PFM disparity at full resolution (valid: finite, > 0);
predictions are resized to it; stereo-trained models: depth x 10 (nominal baseline 0.1 ->
SceneFlow's 1 scene unit), mono-trained: per-image median scaling. Disparity metrics (EPE,
bad-1, bad-3 in pixels) on every valid pixel; the seven depth metrics with depth =
fx * 1 / disparity in (1e-3, 1000) scene units, predictions clipped to that range.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datasets.layout import DatasetError, LayoutError
from datasets.registry import make_layout
from depth_hints.evaluation_base import (EvaluationError, disp_to_gt_size, finish, format_table,
                                         load_or_predict, median_scaling, report_median_ratios,
                                         save_and_choose_scaling)
from depth_hints.metrics import (DISPARITY_METRIC_NAMES, METRIC_NAMES, compute_errors,
                                 disparity_metrics, valid_disparity_mask)
from depth_hints.pfm import PFMError
from depth_hints.splits import PROJECT_SPLITS_DIR, read_split_file, split_dir

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
    if not options.no_eval:  # the ground truth of every test frame, before predicting
        missing = [p for p in (layout.gt_path(s.folder, s.frame_index, s.side) for s in samples)
                   if not os.path.isfile(p)]
        if missing:
            raise EvaluationError(f"Ground-truth disparity {missing[0]} does not exist ({len(missing)} "
                                  f"of {len(samples)} test frames of {test_file} without); unpack "
                                  f"SceneFlow's disparity package under --data_path {options.data_path}.")

    pred_disps, source = load_or_predict(
        options, collected, lambda o: _sceneflow_test_images(o, layout, samples, test_file),
        stereo_scale_factor)
    if len(pred_disps) != len(samples):
        raise EvaluationError(f"{len(pred_disps)} predictions ({source}) but {len(samples)} lines "
                              f"in {test_file}; they must match one to one (same order).")
    result.update(n=int(len(pred_disps)), predictions=source, post_process=bool(options.post_process))
    scale_factor, use_median = save_and_choose_scaling(
        options, pred_disps, split_name, result, collected, stereo_scale_factor,
        f"--eval_stereo scales by {stereo_scale_factor:g} on SceneFlow")
    result["depth_caps"] = [SCENEFLOW_MIN_DEPTH, SCENEFLOW_MAX_DEPTH]
    if options.no_eval:
        print("-> Evaluation disabled (--no_eval).")
        return finish(options, result, collected)

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
    return finish(options, result, collected)

