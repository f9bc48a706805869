"""Colour maps, figures and reports."""
from __future__ import annotations

import json
import os

import numpy as np

from depth_hints.atomic import atomic_write


def colorize_disparity(disp: np.ndarray, vmax_percentile: float = 95.0, cmap: str = "magma") -> np.ndarray:
    """Disparity [H,W] -> uint8 RGB [H,W,3] with a matplotlib colour map.

    Normalised to [min(disp), percentile(disp, vmax_percentile)]; values above the upper bound
    take the top colour."""
    import matplotlib

    disp = np.asarray(disp, dtype=np.float64)
    if disp.ndim != 2:
        raise ValueError(f"colorize_disparity expects an [H,W] array, got shape {disp.shape}")
    vmin = float(np.min(disp))
    vmax = float(np.percentile(disp, vmax_percentile))
    span = vmax - vmin
    normalised = np.clip((disp - vmin) / span, 0.0, 1.0) if span > 0 else np.zeros_like(disp)
    rgba = matplotlib.colormaps[cmap](normalised)
    return (rgba[..., :3] * 255).astype(np.uint8)


def colorize_error(error: np.ndarray, valid: np.ndarray, vmax: float = 0.5) -> np.ndarray:
    """Absolute relative error [H,W] -> uint8 RGB (black where ``valid`` is False), 0..vmax."""
    import matplotlib

    rgb = (matplotlib.colormaps["inferno"](np.clip(error / vmax, 0, 1))[..., :3] * 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def _fmt_row(name: str, m: dict, keys) -> str:
    return f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in keys) + " |"


def demo_figure(path: str, image: np.ndarray, gt_depth: np.ndarray, hint_depth, pred_disps: dict,
                title: str = "") -> None:
    """One test frame: input, ground truth, hint, and per run the prediction and its error map.
    ``pred_disps``: {run name: disparity resized to the image size, in metric-scaled units}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    valid = gt_depth > 0
    inv_gt = np.where(valid, 1.0 / np.maximum(gt_depth, 1e-3), 0)
    panels = [("input", image), ("ground truth (inverse depth)", colorize_disparity(inv_gt))]
    if hint_depth is not None:
        inv_hint = np.where(hint_depth > 0, 1.0 / np.maximum(hint_depth, 1e-3), 0)
        panels.append(("depth hint (inverse depth, black = none)", colorize_disparity(inv_hint)))
    for name, disp in pred_disps.items():
        depth = 1.0 / np.maximum(disp, 1e-6)
        panels.append((f"{name}: prediction", colorize_disparity(disp)))
        error = np.abs(depth - gt_depth) / np.maximum(gt_depth, 1e-3)
        panels.append((f"{name}: abs rel error (0..0.5)", colorize_error(error, valid & (gt_depth < 80))))
    cols = 2
    rows = (len(panels) + 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(12, 1.9 * rows + 0.4))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, (label, img) in zip(np.ravel(axes), panels):
        ax.imshow(img)
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_demo_report(out_dir: str, metrics: dict, figures: list, runs=("without_hints", "with_hints")) -> str:
    """report.md: the metric tables (all pixels, thin structures) and the figures."""
    keys = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
    lines = ["# Depth Hints on the synthetic KITTI world", "",
             "Stereo-trained ResNet18 from scratch, identical seed and budget, evaluated on the held-out "
             "drive with the Eigen protocol (Garg crop, 1e-3..80 m, `--eval_stereo`: depth x 5.4).", "",
             *(["Both runs use `--disable_automasking`: at this budget, from scratch, auto-masking keeps the "
                "photometric-only baseline at its initial near-depth guess (see `DemoConfig` in "
                "depth_hints/demo.py).", ""] if metrics.get("config", {}).get("disable_automasking") else []),
             f"Configuration: `{json.dumps(metrics.get('config', {}))}`", "",
             "## All pixels", "", "| run | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += [_fmt_row(r, metrics[r], keys) for r in runs]
    thin = metrics.get("thin_structures", {})
    if all(thin.get(r) for r in runs):
        lines += ["", "## Thin-structure pixels (poles, sign posts, railings, trunks)", "",
                  "| run | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        lines += [_fmt_row(r, thin[r], keys) for r in runs]
        lines += ["", f"Thin-structure pixels evaluated: {thin[runs[0]]['pixels']}."]
    lines += ["", "Lower is better for abs_rel, sq_rel, rmse, rmse_log; higher for a1..a3.", "", "## Figures", ""]
    lines += [f"![{os.path.basename(f)}]({os.path.basename(f)})" for f in figures]
    lines += ["", f"Total time: {metrics.get('seconds', 0):.0f} s. TensorBoard logs: `runs/`."]
    path = os.path.join(out_dir, "report.md")
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
