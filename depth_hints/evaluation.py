"""Depth evaluation: the KITTI protocol, and ``evaluate``, which dispatches to the others.

Protocol (monodepth2's, so numbers are comparable with published tables):

* predictions are scaled disparities (``disp_to_depth(sigmoid, min_depth, max_depth)[0]``) at
  the model's resolution, resized to the ground truth's size with bilinear interpolation;
  depth = 1 / disparity;
* split ``eigen``: ground truth in (1e-3, 80) m inside the Garg crop; every other split
  (``eigen_benchmark``, folders of other names): every pixel with ground truth > 0;
* stereo-trained models: depth x 5.4 (nominal baseline 0.1 -> KITTI's 0.54 m), no median
  scaling; mono-trained models: per-image median scaling;
* predicted depth clipped to [1e-3, 80] m before the metrics.

SceneFlow: ``depth_hints.evaluation_sceneflow``; own rigs, Middlebury, Cityscapes:
``depth_hints.evaluation_layout``; the pieces all protocols share (the Garg crop, scaling,
post-processing, the prediction loop): ``depth_hints.evaluation_base``, re-exported here.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datasets.cityscapes import CITYSCAPES_EVAL_SPLIT
from datasets.registry import make_layout
from depth_hints.checkpoints import metric_scale_factor
# the shared pieces and the metrics, re-exported: ``depth_hints.evaluation.compute_errors`` stays
# where monodepth2 users look for it
from depth_hints.evaluation_base import (GARG_CROP_FRACTIONS, MAX_DEPTH, MIN_DEPTH,  # noqa: F401
                                         EvaluationError, batch_post_process_disparity,
                                         disp_to_gt_size, finish, format_table, garg_crop_mask,
                                         load_gt_depths, load_or_predict, load_pred_disps,
                                         median_scaling, output_folder, predict_disparities,
                                         report_median_ratios, save_and_choose_scaling, score_frame,
                                         score_predictions, valid_gt_mask, warn)
from depth_hints.evaluation_layout import (LAYOUT_EVAL_DATASETS, cityscapes_eval_mask,  # noqa: F401
                                           evaluate_layout, load_gt_depth_folder)
from depth_hints.evaluation_sceneflow import (SCENEFLOW_MAX_DEPTH, SCENEFLOW_MIN_DEPTH,  # noqa: F401
                                              SCENEFLOW_TEST_SPLIT, evaluate_sceneflow,
                                              score_sceneflow_frame, sceneflow_test_file)
from depth_hints.geometry import STEREO_SCALE_FACTOR
from depth_hints.kitti import save_depth_png
from depth_hints.metrics import (DISPARITY_METRIC_NAMES, METRIC_NAMES, compute_errors,  # noqa: F401
                                 disparity_metrics, valid_disparity_mask)
from depth_hints.splits import read_split_file, split_dir

GARG_CROP_SPLITS = ("eigen",)
# Every image of the KITTI depth-prediction benchmark's test set is 1216 x 352 (W x H).
BENCHMARK_IMAGE_SIZE = (352, 1216)
BENCHMARK_SPLIT = "benchmark"
EXPORT_HINT = "python scripts/export_gt_depth.py --data_path <kitti raw> --split {split}"


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


def _recorded_stereo_factor(options) -> float:
    """--eval_stereo's factor: --pred_depth_scale_factor when given, else the one the weights'
    training recorded, KITTI's 5.4 for weights that record none (released ones), an error for
    a mixed-rig training set. Not --eval_stereo: 5.4 (unused)."""
    if not options.eval_stereo:
        return STEREO_SCALE_FACTOR
    override = options.pred_depth_scale_factor if options.pred_depth_scale_factor != 1.0 else None
    folder = os.path.expanduser(options.load_weights_folder) if options.load_weights_folder else None
    return metric_scale_factor(folder, override)


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
    gt_path = gt_depths = None
    if not options.no_eval and split_name != BENCHMARK_SPLIT:  # checked before predicting
        gt_path = options.gt_path or os.fspath(split_dir(options.eval_split) / "gt_depths.npz")
        export = EXPORT_HINT.format(split="eigen|eigen_benchmark|<folder>")
        gt_depths = load_gt_depths(gt_path, f"export it with `{export}` or point --gt_path at it")
    pred_disps, source = load_or_predict(options, collected, _kitti_test_images, stereo_factor)
    if options.eval_eigen_to_benchmark:
        pred_disps = _eigen_to_benchmark(pred_disps)
    result.update(n=int(len(pred_disps)), predictions=source, post_process=bool(options.post_process))

    scale_factor, use_median = save_and_choose_scaling(
        options, pred_disps, split_name, result, collected, stereo_factor,
        f"--eval_stereo scales by {stereo_factor:g}")

    if options.no_eval:
        print("-> Evaluation disabled (--no_eval).")
        return finish(options, result, collected)

    if split_name == BENCHMARK_SPLIT:
        if not options.eval_stereo:
            warn("Benchmark predictions of a mono model are written without median scaling (there "
                 "is no public ground truth): their scale is not metric.", collected)
        out_dir = os.path.join(output_folder(options), "benchmark_predictions")
        write_benchmark_pngs(pred_disps, out_dir, scale_factor)
        print(f"-> Wrote {len(pred_disps)} benchmark predictions to {out_dir}; the benchmark has no "
              f"public ground truth, so nothing is scored.")
        result["benchmark_predictions"] = out_dir
        return finish(options, result, collected)

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
    return finish(options, result, collected)


