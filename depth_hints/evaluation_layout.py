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




#: datasets whose --eval_stereo factor is each frame's own camera (baseline / 0.1) unless
#: the training recorded a single one or --pred_depth_scale_factor is given: every Cityscapes
#: image and every Middlebury scene has its own calibration
PER_FRAME_CAMERA_DATASETS = ("cityscapes", "middlebury")
#: how to give ground truth on Cityscapes, whose test images have no public disparity
CITYSCAPES_GT_ADVICE = ("Cityscapes' test images have no public disparity: pass --gt_path "
                        "ManyDepth's gt_depths folder (000_depth.npy, 001_depth.npy, ...: full "
                        "frames, depth in metres) or an .npz of those frames (key 'data')")
LAYOUT_GT_ADVICE = ("pass --gt_path an .npz of the test frames' [H,W] depths in metres (key "
                    "'data', full stored frames) or a folder of 000_depth.npy, 001_depth.npy, ...")


def gt_advice(dataset: str, layout=None) -> str:
    """The fix named when a layout evaluation finds no ground truth (``layout.gt_files``: where
    that layout keeps its own)."""
    if dataset == "cityscapes":
        return CITYSCAPES_GT_ADVICE
    own = getattr(layout, "gt_files", "")
    return f"add {own}, or {LAYOUT_GT_ADVICE}" if own else LAYOUT_GT_ADVICE


def gt_depth_folder_paths(folder: str, count: int) -> list:
    """ManyDepth's published ground truth: ``<folder>/NNN_depth.npy`` (index 000, 001, ...)
    -> the ``count`` paths. A missing file, or one whose .npy header is unreadable or not of
    an [H,W] array, raises naming it (only the headers are read)."""
    paths = [os.path.join(folder, f"{index:03d}_depth.npy") for index in range(count)]
    for path in paths:
        if not os.path.isfile(path):
            raise EvaluationError(f"--gt_path {folder}: {path} does not exist ({count} test images "
                                  f"need 000_depth.npy .. {count - 1:03d}_depth.npy).")
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape = read_header(f)[0]
        except Exception as e:
            raise EvaluationError(f"Ground truth {path} is not a readable .npy ({type(e).__name__}); "
                                  f"expected [H,W] depths in metres.") from None
        if len(shape) != 2 and not (len(shape) == 3 and shape[0] == 1):
            raise EvaluationError(f"Ground truth {path} has shape {shape}; expected [H,W] depths in "
                                  f"metres.")
    return paths


def load_gt_depth_npy(path: str) -> np.ndarray:
    """One ``NNN_depth.npy`` -> [H,W] float32 depth in metres; unreadable: one line naming it."""
    try:
        depth = np.load(path, allow_pickle=False)
    except Exception as e:
        raise EvaluationError(f"Ground truth {path} could not be read ({type(e).__name__}); "
                              f"expected a .npy of [H,W] depths in metres.") from None
    if depth.ndim == 3 and depth.shape[0] == 1:
        depth = depth[0]
    if depth.ndim != 2:
        raise EvaluationError(f"Ground truth {path} has shape {depth.shape}; expected [H,W] depths "
                              f"in metres.")
    return depth.astype(np.float32)


def load_gt_depth_folder(folder: str, count: int) -> list:
    """ManyDepth's published ground truth: ``<folder>/NNN_depth.npy`` -> ``count`` [H,W]
    depths in metres; a missing or unreadable file raises naming it."""
    return [load_gt_depth_npy(path) for path in gt_depth_folder_paths(folder, count)]


def _where(sample) -> str:
    return f"{sample.folder} {sample.frame_index} {sample.side}"


def layout_gt_reader(options, layout, dataset: str, samples, test_file):
    """Checks that every test frame has ground truth, before anything is predicted, ->
    ``read(index) -> [H,W] depth in metres`` as the loader sees the frame (the layout's crop
    applied; ``--gt_path`` frames are full stored frames, read one at a time from a folder).
    Missing ground truth raises one line with the dataset's advice (``gt_advice``)."""
    if options.gt_path:
        gt_path = os.path.expanduser(options.gt_path)
        if os.path.isdir(gt_path):
            paths = gt_depth_folder_paths(gt_path, len(samples))
            return lambda index: layout.crop_array(load_gt_depth_npy(paths[index]))
        depths = load_gt_depths(gt_path, gt_advice(dataset, layout))
        if len(depths) != len(samples):
            raise EvaluationError(f"{len(samples)} test lines in {test_file} but {len(depths)} "
                                  f"ground-truth frames in {gt_path}.")
        return lambda index: layout.crop_array(np.asarray(depths[index], np.float32))
    missing = [(s, layout.gt_path(s.folder, s.frame_index, s.side)) for s in samples]
    missing = [(s, path) for s, path in missing if path is None or not os.path.isfile(path)]
    if missing:
        sample, path = missing[0]
        where = f"at {path}" if path else f"in --dataset {dataset}"
        raise EvaluationError(f"{test_file}: '{_where(sample)}' has no ground truth {where} "
                              f"({len(missing)} of {len(samples)} test frames without); "
                              f"{gt_advice(dataset, layout)}.")

    def read(index):
        sample = samples[index]
        try:
            gt = layout.gt_depth(sample.folder, sample.frame_index, sample.side)
        except (DatasetError, PFMError) as e:
            raise EvaluationError(str(e)) from None
        if gt is None:
            raise EvaluationError(f"'{_where(sample)}': no ground truth at "
                                  f"{layout.gt_path(sample.folder, sample.frame_index, sample.side)}; "
                                  f"{gt_advice(dataset, layout)}.")
        return gt
    return read


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


def _stereo_factor(options, dataset: str) -> tuple:
    """--eval_stereo's factor -> (factor, per frame?): --pred_depth_scale_factor when given,
    else the one the training recorded; on PER_FRAME_CAMERA_DATASETS without a single
    recorded one (mixed rigs, or released weights), each frame's camera (factor 1.0, per
    frame True). Not --eval_stereo: (5.4, False), unused."""
    if not options.eval_stereo:
        return STEREO_SCALE_FACTOR, False
    folder = os.path.expanduser(options.load_weights_folder) if options.load_weights_folder else None
    override = options.pred_depth_scale_factor if options.pred_depth_scale_factor != 1.0 else None
    recorded, value = recorded_metric_scale(folder)
    if dataset in PER_FRAME_CAMERA_DATASETS and override is None and (not recorded or value is None):
        return 1.0, True
    return metric_scale_factor(folder, override), False


def evaluate_layout(options) -> dict:
    """Evaluation on a layout's own test frames and ground truth (``--dataset stereo``,
    ``middlebury``, ``cityscapes`` / ``--eval_split cityscapes``).

    The ground truth of every test frame is checked first: ``--gt_path`` (an npz of [H,W]
    depths, or a folder of ManyDepth's NNN_depth.npy; full stored frames, cropped as the
    loader crops them) or else each frame's ground truth from the layout (depth; disparity
    converted with the frame's camera). Images are then cropped alike (Cityscapes: top 75 %),
    predicted and scored. Cityscapes counts depths in (1e-3, 80) m inside rows 256..768,
    columns 192..1856 of the frame; other layouts every pixel with ground truth in (1e-3, 80)
    m (predictions are clipped to that range). Scaling: --eval_mono per-image median;
    --eval_stereo the factor the training recorded (Cityscapes, Middlebury without a single
    one: each frame's own camera, baseline / 0.1), --pred_depth_scale_factor overrides."""
    dataset = "cityscapes" if options.eval_split == CITYSCAPES_EVAL_SPLIT else options.dataset
    layout = make_layout(dataset, options.data_path, img_ext=".png" if options.png else ".jpg")
    samples, test_file = _layout_samples(options, layout)
    collected: list[str] = []
    result: dict = {"split": options.eval_split, "dataset": dataset, "test_files": str(test_file)}
    stereo_factor, per_frame_factor = _stereo_factor(options, dataset)
    read_gt = None if options.no_eval else layout_gt_reader(options, layout, dataset, samples, test_file)

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
        gt = read_gt(index)
        factor = scale_factor
        if per_frame_factor and options.eval_stereo:
            factor = layout.camera(sample.folder, sample.frame_index).metric_scale
        mask = (cityscapes_eval_mask(gt) if dataset == "cityscapes"
                else (gt > MIN_DEPTH) & (gt < MAX_DEPTH))
        try:
            frame_errors, ratio = score_frame(gt, pred_disp, False, factor, use_median, mask=mask)
        except EvaluationError as e:
            raise EvaluationError(f"{_where(sample)}: {e}") from None
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
