"""Error measures: depth errors (the seven of the KITTI tables) and disparity errors (EPE,
bad-k), used by the evaluation and the precompute's report alike. Pure numpy.
"""
from __future__ import annotations

import numpy as np

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
DISPARITY_METRIC_NAMES = ("epe", "bad1", "bad3")


# ----------------------------------------------------------------------------- depth

def compute_errors(gt: np.ndarray, pred: np.ndarray):
    """Depth metrics between valid ground truth and predicted depths (same shape, metres, > 0)
    -> (abs_rel, sq_rel, rmse, rmse_log, a1, a2, a3).

    abs_rel = mean(|gt - pred| / gt), sq_rel = mean((gt - pred)^2 / gt), rmse = sqrt(mean((gt -
    pred)^2)), rmse_log = sqrt(mean((ln gt - ln pred)^2)), a_k = mean(max(gt/pred, pred/gt) <
    1.25^k)."""
    gt = np.asarray(gt, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    ratio = np.maximum(gt / pred, pred / gt)
    a1 = np.mean(ratio < 1.25)
    a2 = np.mean(ratio < 1.25 ** 2)
    a3 = np.mean(ratio < 1.25 ** 3)
    diff = gt - pred
    rmse = np.sqrt(np.mean(diff ** 2))
    rmse_log = np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2))
    abs_rel = np.mean(np.abs(diff) / gt)
    sq_rel = np.mean(diff ** 2 / gt)
    return abs_rel, sq_rel, rmse, rmse_log, a1, a2, a3


# ----------------------------------------------------------------------------- disparity

def disparity_metrics(pred_disp: np.ndarray, gt_disp: np.ndarray):
    """Disparity errors over corresponding pixels (same shape, pixels) -> (epe, bad1, bad3):
    epe = mean |pred - gt|, bad_k = fraction of pixels with |pred - gt| > k px."""
    error = np.abs(np.asarray(pred_disp, np.float64) - np.asarray(gt_disp, np.float64))
    return float(error.mean()), float((error > 1).mean()), float((error > 3).mean())


def valid_disparity_mask(gt_disp: np.ndarray) -> np.ndarray:
    """Pixels with ground-truth disparity [H,W] bool: finite and > 0."""
    gt_disp = np.asarray(gt_disp)
    valid = np.isfinite(gt_disp)
    valid[valid] = gt_disp[valid] > 0
    return valid


def disparity_errors(disparity: np.ndarray, gt_disparity: np.ndarray) -> dict:
    """End-point error and bad-1 / bad-3 rates (|error| > 1 / 3 px, ``disparity_metrics``)
    of a disparity map against ground truth, both [H,W] pixels, over
    pixels where both are > 0; plus ``coverage`` (the fraction of ground-truth pixels the map
    covers). Values are None without overlap."""
    gt_valid = gt_disparity > 0
    valid = gt_valid & (disparity > 0)
    count = int(valid.sum())
    out = {"pixels": count, "coverage": float(valid.sum() / max(int(gt_valid.sum()), 1))}
    if count == 0:
        out.update(epe=None, bad1=None, bad3=None)
        return out
    epe, bad1, bad3 = disparity_metrics(disparity[valid], gt_disparity[valid])
    out.update(epe=epe, bad1=bad1, bad3=bad3)
    return out
