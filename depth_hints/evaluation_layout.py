"""Evaluation on a layout's own test frames and ground truth: own stereo rigs (``--dataset
stereo``), Middlebury, Cityscapes (``--dataset cityscapes`` / ``--eval_split cityscapes``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datasets.cityscapes import (CITYSCAPES_EVAL_SPLIT, EVAL_COLUMNS, EVAL_FRAME_SIZE, EVAL_ROWS,
                                 CITYSCAPES_CROP_ROWS, cityscapes_test_file, is_cityscapes_test_list,
                                 read_cityscapes_test_list)
from datasets.layout import DatasetError, LayoutError
from datasets.registry import make_layout
from depth_hints.checkpoints import metric_scale_factor, recorded_metric_scale
from depth_hints.evaluation_base import (MAX_DEPTH, MIN_DEPTH, EvaluationError, finish, format_table,
                                         load_gt_depths, load_or_predict, report_median_ratios,
                                         save_and_choose_scaling, score_frame)
from depth_hints.geometry import STEREO_SCALE_FACTOR
from depth_hints.metrics import METRIC_NAMES
from depth_hints.pfm import PFMError
from depth_hints.splits import read_split_file, split_dir

#: datasets evaluated through their layout's ground truth (``evaluate_layout``)
LAYOUT_EVAL_DATASETS = ("stereo", "middlebury", "cityscapes")


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

    pred_disps, source = load_or_predict(options, collected, test_images, stereo_factor,
                                         crop=layout.crop_image)
    if len(pred_disps) != len(samples):
        raise EvaluationError(f"{len(pred_disps)} predictions ({source}) but {len(samples)} lines "
                              f"in {test_file}; they must match one to one (same order).")
    result.update(n=int(len(pred_disps)), predictions=source, post_process=bool(options.post_process))
    scale_factor, use_median = save_and_choose_scaling(
        options, pred_disps, Path(options.eval_split).name, result, collected, stereo_factor,
        "--eval_stereo scales by " + ("each frame's camera factor" if per_frame_factor
                                      else f"{stereo_factor:g}"))
    if options.no_eval:
        print("-> Evaluation disabled (--no_eval).")
        return finish(options, result, collected)

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
    return finish(options, result, collected)
