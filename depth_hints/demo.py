"""The main job on the embedded default data: does Depth Hints help on the synthetic world?

world -> hints -> ground truth -> train stereo ResNet18 without and with hints (same seed and
budget) -> Eigen-protocol evaluation (``--eval_stereo``) -> metrics.json, report.md, figures.
Every stage reuses what a previous run left (re-runs are cheap); each stage is a call into the
same code the command-line tools use.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from .atomic import atomic_write
from .errors import DepthHintsError

RUNS = ("without_hints", "with_hints")


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and budgets of one demo run: a fixed amount of work (reproducible results), sized
    so that `make demo` (one seed) finishes within 10 minutes, set-up included, on a quiet
    2-core CPU, and `make demo SEEDS=3` within 25.

    Both runs share every setting but --use_depth_hints. Two settings depart from monodepth2's
    defaults, as optional flags of train.py, because the demo trains from scratch (no ImageNet
    weights offline) for a few hundred steps instead of 20 epochs of ImageNet-initialised
    training: --init_depth (the decoder starts at a mid-range depth instead of ~1 m, where a
    stereo warp leaves the image and the photometric gradient pushes nearer still) and a 10x
    learning rate with a short linear warm-up (--lr_warmup_steps). See README "What made the
    difference"."""
    num_drives: int = 4
    frames_per_drive: int = 26  # 3 training drives (~130 training views), 24 test frames
    world_width: int = 640    # a scaled KITTI rig (fx = 0.58 W, fy = 1.92 H, baseline 0.54 m)
    world_height: int = 192
    train_width: int = 320
    train_height: int = 96
    batch_size: int = 6
    num_steps: int = 400      # ~3 min per run on 2 cores with the training cache
    learning_rate: float = 1e-3
    lr_warmup_steps: int = 40  # 10 % of the steps: with 10, a 2-thread run of seed 0 was thrown into a stuck state as the rate reached 1e-3
    init_depth: float = 2.0   # training units (baseline 0.1): about 11 m on the KITTI rig
    num_workers: int = 2
    seed: int = 0             # the world's seed and the first training seed
    seeds: int = 1            # training seeds seed, seed + 1, ... (same world)
    num_figures: int = 3
    disable_automasking: bool = False  # auto-masking on in both runs (the paper's default)

    @classmethod
    def quick(cls, **changes) -> "DemoConfig":
        return cls(**{**dict(num_drives=3, frames_per_drive=12, num_steps=40, num_figures=2), **changes})

    @classmethod
    def tiny(cls, **changes) -> "DemoConfig":
        """For the test suite: seconds, not minutes."""
        return cls(**{**dict(num_drives=2, frames_per_drive=5, world_width=256, world_height=96,
                             train_width=128, train_height=64, batch_size=2, num_steps=2,
                             lr_warmup_steps=1, num_workers=0, num_figures=1), **changes})

    @property
    def training_seeds(self) -> tuple:
        return tuple(range(self.seed, self.seed + self.seeds))


def time_one_step(cfg: DemoConfig) -> float:
    """Seconds of one training step (stereo + hints: networks, loss, backward, Adam) at the
    demo's size on random images; the second of two steps (the first warms up)."""
    import torch
    from . import geometry, objective
    from .model import DepthHintsModel
    b, h, w = cfg.batch_size, cfg.train_height, cfg.train_width
    model = DepthHintsModel(18, False, (0, "s"))  # the trainer runs channels_first on CPU
    adam = torch.optim.Adam(model.parameters(), cfg.learning_rate)
    loss_cfg = objective.LossConfig(frame_ids=(0, "s"), use_depth_hints=True,
                                    automask=not cfg.disable_automasking)
    gen = torch.Generator().manual_seed(0)
    inputs = {"stereo_T": geometry.stereo_transform("l")[None].repeat(b, 1, 1),
              "depth_hint": torch.rand(b, 1, h, w, generator=gen) * 10 + 1,
              "depth_hint_mask": torch.ones(b, 1, h, w)}
    for s in range(4):
        hs, ws = h // 2 ** s, w // 2 ** s
        for f in (0, "s"):
            inputs[("color", f, s)] = inputs[("color_aug", f, s)] = torch.rand(b, 3, hs, ws, generator=gen)
        K = geometry.kitti_intrinsics(ws, hs)[None].repeat(b, 1, 1)
        inputs[("K", s)], inputs[("inv_K", s)] = K, torch.linalg.inv(K)
    seconds = 0.0
    for _ in range(2):
        start = time.time()
        outputs = model(inputs)
        objective.synthesise_views(inputs, outputs, loss_cfg)
        adam.zero_grad()
        objective.compute_losses(inputs, outputs, loss_cfg)["loss"].backward()
        adam.step()
        seconds = time.time() - start
    return seconds


# Calibrated on a quiet 2-core machine with the training cache and the device-side augmentation
# (issue 18): one timed step 0.66 s, a 300-step run 130-145 s of training. So a run's steps cost
# 0.70 timed steps each (validation batches, loading, logging), start-up + checkpoint +
# evaluation 8, and the world, hints, cache and ground truth 80 per 100 frames.
STEP_FACTOR = 0.70
RUN_OVERHEAD_STEPS = 8
WORLD_STEPS_PER_100_FRAMES = 80


def expected_seconds(cfg: DemoConfig, step: float, runs: int | None = None,
                     world_ready: bool = False) -> tuple:
    """(total, training) seconds expected for ``cfg`` when one training step takes ``step``
    seconds: ``runs`` training runs (default all, 2 x seeds) of (num_steps x STEP_FACTOR +
    RUN_OVERHEAD_STEPS) steps each, plus the world, hints, cache and ground truth
    (WORLD_STEPS_PER_100_FRAMES per 100 frames) unless ``world_ready``."""
    runs = 2 * cfg.seeds if runs is None else runs
    training = runs * cfg.num_steps * step * STEP_FACTOR
    world = 0.0 if world_ready else cfg.num_drives * cfg.frames_per_drive / 100 * WORLD_STEPS_PER_100_FRAMES
    return training + (runs * RUN_OVERHEAD_STEPS + world) * step, training


def print_expected_time(cfg: DemoConfig, runs: int | None = None, world_ready: bool = False) -> float:
    """Print the expected wall time of the demo from one timed step (only the ``runs`` still to
    train, the world only when it is not there yet); returns it in seconds."""
    step = time_one_step(cfg)
    total, training = expected_seconds(cfg, step, runs, world_ready)
    left = 2 * cfg.seeds if runs is None else runs
    done = f", {2 * cfg.seeds - left} of {2 * cfg.seeds} runs trained before" if left < 2 * cfg.seeds else ""
    print(f"==> one training step takes {step:.2f} s here: expect about {total / 60:.0f} minutes "
          f"({training / 60:.0f} of them training, {cfg.seeds} seed{'s' if cfg.seeds > 1 else ''}{done}; "
          f"more if the CPU is shared)", flush=True)
    return total


def _stage(name: str) -> None:
    print(f"\n==> {name}", flush=True)


def make_world(data_dir: str, cfg: DemoConfig) -> str:
    """Generate the synthetic world (if absent); returns its split folder."""
    from . import synthetic
    _stage(f"synthetic world: {cfg.num_drives} drives x {cfg.frames_per_drive} frames at "
           f"{cfg.world_width}x{cfg.world_height} -> {data_dir}")
    remove_outdated_world(data_dir, cfg)
    summary = synthetic.write_synthetic_kitti(data_dir, cfg.num_drives, cfg.frames_per_drive, cfg.world_width,
                                              cfg.world_height, seed=cfg.seed, show_progress=True)
    return str(summary.get("split_dir") or os.path.join(data_dir, "splits", "synthetic"))


WORLD_FORMAT = "depth-hints synthetic KITTI raw"


def _world_record(data_dir: str) -> dict | None:
    path = os.path.join(data_dir, "synthetic_kitti.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def world_is_current(data_dir: str, cfg: DemoConfig) -> bool:
    """Whether ``data_dir`` holds the world ``cfg`` asks for, written by this generator."""
    from .synthetic.scene import WORLD_VERSION
    recorded = _world_record(data_dir) or {}
    wanted = {"format": WORLD_FORMAT, "version": WORLD_VERSION, "seed": cfg.seed, "width": cfg.world_width,
              "height": cfg.world_height, "frames_per_drive": cfg.frames_per_drive}
    return all(recorded.get(k) == v for k, v in wanted.items())


def remove_outdated_world(data_dir: str, cfg: DemoConfig) -> bool:
    """The demo owns its world folder: one written by another version of the generator, or
    with another seed or size, is removed with everything derived from it (hints, training
    cache, ground truth) so that it is generated afresh. A folder that is not a generated
    world is left alone. Returns whether it was removed."""
    import shutil
    from .synthetic.scene import WORLD_VERSION
    recorded = _world_record(data_dir)
    if recorded is None or recorded.get("format") != WORLD_FORMAT or world_is_current(data_dir, cfg):
        return False
    print(f"{data_dir} holds a world of generator version {recorded.get('version')} ({recorded.get('width')}x"
          f"{recorded.get('height')}, seed {recorded.get('seed')}); this demo needs version {WORLD_VERSION} "
          f"({cfg.world_width}x{cfg.world_height}, seed {cfg.seed}): regenerating it with its hints, "
          f"cache and ground truth", flush=True)
    shutil.rmtree(data_dir)
    return True


def precompute_hints(data_dir: str, split: str, cfg: DemoConfig) -> dict:
    """Fused-SGM hints at the world's resolution for the training (and test) frames."""
    from .precompute import precompute
    from .options import parse_precompute
    _stage("depth hints (fused SGM)")
    results = {}
    for name in ("train_files.txt", "val_files.txt", "test_files.txt"):
        opts = parse_precompute(["--data_path", data_dir, "--filenames", os.path.join(split, name), "--png",
                                 "--height", str(cfg.world_height), "--width", str(cfg.world_width),
                                 "--num_workers", str(cfg.num_workers),
                                 "--report", os.path.join(split, f"hint_report_{name[:-10]}.json")])
        summary = precompute(opts)
        results[name] = summary.to_dict()
    return results


def cache_training_data(data_dir: str, split: str, cfg: DemoConfig) -> dict:
    """The training-resolution cache (issue 18) of the world's frames and hints, which train.py
    finds by convention: the loader then copies bytes instead of decoding and resizing PNGs.
    Rebuilt when the world or its hints changed."""
    from .cache import CacheSpec, build
    _stage(f"training cache ({cfg.train_width}x{cfg.train_height})")
    spec = CacheSpec(data_dir, split, cfg.train_height, cfg.train_width, img_ext=".png", use_depth_hints=True)
    return build(spec, overwrite=True)


def export_ground_truth(data_dir: str, split: str) -> str:
    """Dense ground truth of the test frames -> <split>/gt_depths.npz (once)."""
    from datasets.kitti_raw import export_gt_depths
    path = os.path.join(split, "gt_depths.npz")
    if not os.path.isfile(path):
        _stage("ground truth export")
        export_gt_depths(data_dir, split, mode="dense", output=path)
    return path


def train_argv(name: str, data_dir: str, split: str, log_dir: str, cfg: DemoConfig, seed: int) -> list:
    """train.py's flags for one run: the two runs differ only in --use_depth_hints."""
    argv = ["--data_path", data_dir, "--split", split, "--png", "--model_name", name, "--log_dir", log_dir,
            "--height", str(cfg.train_height), "--width", str(cfg.train_width),
            "--frame_ids", "0", "--use_stereo", "--weights_init", "scratch",
            "--batch_size", str(cfg.batch_size), "--learning_rate", str(cfg.learning_rate),
            "--lr_warmup_steps", str(cfg.lr_warmup_steps), "--init_depth", str(cfg.init_depth),
            "--num_epochs", "1000", "--scheduler_step_size", "1000", "--num_steps", str(cfg.num_steps),
            "--save_frequency", "1000",  # only the final weights (~325 MB each, not one per epoch)
            "--num_workers", str(cfg.num_workers), "--seed", str(seed),
            "--log_frequency", str(max(cfg.num_steps // 10, 1))]
    if name == "with_hints":
        argv.append("--use_depth_hints")
    if cfg.disable_automasking:
        argv.append("--disable_automasking")
    return argv


def training_signature(cfg: DemoConfig, seed: int) -> str:
    """What a trained run depends on: the configuration less the number of seeds and figures
    (a SEEDS=3 run reuses seed 0 of a one-seed run), plus its seed."""
    fields = {k: v for k, v in asdict(cfg).items() if k not in ("seeds", "num_figures")}
    return json.dumps({**fields, "training_seed": seed}, sort_keys=True)


def trained_before(name: str, log_dir: str, cfg: DemoConfig, seed: int) -> bool:
    """Whether run ``name`` of ``seed`` finished before with this configuration."""
    models_dir = os.path.join(log_dir, name, "models")
    done_marker = os.path.join(models_dir, "DONE")
    if not (os.path.isfile(done_marker) and os.path.isfile(os.path.join(models_dir, "losses.json"))):
        return False
    with open(done_marker) as f:
        return f.read().strip() == training_signature(cfg, seed)


def train_run(name: str, data_dir: str, split: str, log_dir: str, cfg: DemoConfig, seed: int):
    """Train one model (skipped when its final weights exist); returns (weights folder, the
    training loss of every step)."""
    from .options import parse_train
    from .trainer import Trainer, latest_checkpoint
    models_dir = os.path.join(log_dir, name, "models")
    done_marker = os.path.join(models_dir, "DONE")
    losses_path = os.path.join(models_dir, "losses.json")
    signature = training_signature(cfg, seed)
    if trained_before(name, log_dir, cfg, seed):
        with open(losses_path) as f:
            return latest_checkpoint(models_dir), json.load(f)  # trained before with this configuration
    _stage(f"training {name}, seed {seed} ({cfg.num_steps} steps, batch {cfg.batch_size}, "
           f"{cfg.train_width}x{cfg.train_height})")
    if os.path.isdir(models_dir):  # an interrupted or differently configured run: start afresh
        import shutil
        shutil.rmtree(os.path.dirname(models_dir))
    summary = Trainer(parse_train(train_argv(name, data_dir, split, log_dir, cfg, seed))).train()
    if summary.get("preempted") or summary["steps"] < cfg.num_steps:  # e.g. Ctrl-C / SIGTERM
        raise DepthHintsError(f"training {name} (seed {seed}) stopped at step {summary['steps']} of "
                              f"{cfg.num_steps}; run the demo again to train it afresh "
                              f"(finished runs are kept)")
    losses = [float(v) for v in summary["losses"]]
    with atomic_write(losses_path, "w") as f:
        json.dump(losses, f)
    with atomic_write(done_marker, "w") as f:
        f.write(signature + "\n")
    return latest_checkpoint(models_dir), losses


def evaluate_run(name: str, weights: str, data_dir: str, split: str, out_dir: str) -> dict:
    """Eigen-protocol evaluation with --eval_stereo; saves the predicted disparities under
    ``out_dir``/``name``. Reused when those weights were evaluated there before."""
    from .evaluation import METRIC_NAMES, evaluate
    from .options import parse_evaluate
    pred_dir = os.path.join(out_dir, name)
    pred_disps = os.path.join(pred_dir, f"disps_{os.path.basename(split.rstrip('/'))}_split.npy")
    record = os.path.join(pred_dir, "evaluated.json")
    stamp = {"weights": os.path.abspath(weights),
             "mtime": os.path.getmtime(os.path.join(weights, "depth.pth"))}
    if os.path.isfile(record) and os.path.isfile(pred_disps):
        with open(record) as f:
            saved = json.load(f)
        if saved.get("stamp") == stamp:
            return {**saved["metrics"], "pred_disps": pred_disps}
    _stage(f"evaluating {name}")
    os.makedirs(pred_dir, exist_ok=True)
    opts = parse_evaluate(["--data_path", data_dir, "--load_weights_folder", weights, "--eval_stereo",
                           "--eval_split", split, "--eval_protocol", "eigen", "--png", "--save_pred_disps",
                           "--eval_out_dir", pred_dir, "--num_workers", "0",
                           "--output_json", os.path.join(pred_dir, "metrics.json")])
    result = evaluate(opts)
    with atomic_write(record, "w") as f:
        json.dump({"stamp": stamp, "metrics": {k: float(result[k]) for k in METRIC_NAMES}}, f)
    return {**result, "pred_disps": pred_disps}


def thin_masks(data_dir: str, split: str) -> list:
    """The generator's thin-structure label maps of the test frames (bool [H,W] each)."""
    import cv2
    from .splits import read_split_file
    from .synthetic.kitti_writer import thin_mask_path
    masks = []
    for s in read_split_file(os.path.join(split, "test_files.txt")):
        path = thin_mask_path(data_dir, s.folder, s.frame_index, s.side)
        mask = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise FileNotFoundError(f"Thin-structure mask {path} is missing; regenerate the world.")
        masks.append(mask > 0)
    return masks


def region_metrics(gt_depths, pred_disps, region_masks) -> dict:
    """The seven metrics (stereo scaling, Eigen caps and crop) restricted to region pixels."""
    from .evaluation import (MAX_DEPTH, METRIC_NAMES, MIN_DEPTH, compute_errors, disp_to_gt_size,
                             valid_gt_mask)
    from .geometry import STEREO_SCALE_FACTOR
    gts, preds = [], []
    for gt, disp, region in zip(gt_depths, pred_disps, region_masks):
        mask = valid_gt_mask(gt, garg_crop=True) & region
        if not mask.any():
            continue
        pred = STEREO_SCALE_FACTOR / disp_to_gt_size(disp, *gt.shape)
        gts.append(gt[mask])
        preds.append(np.clip(pred[mask], MIN_DEPTH, MAX_DEPTH))
    if not gts:
        return {}
    errors = compute_errors(np.concatenate(gts), np.concatenate(preds))
    return {name: float(v) for name, v in zip(METRIC_NAMES, errors)} | {"pixels": int(sum(map(len, gts)))}


THIN_DEFINITION = ("pixels whose first surface is a primitive the world generator labels thin: "
                   "street-lamp poles, sign posts, railing posts and rails, bollards and tree "
                   "trunks (2.5 to 16 cm in radius or half-width), as rendered in each test frame's thin_mask; "
                   "evaluated like all pixels (Eigen crop, 1e-3..80 m, --eval_stereo)")


def spread(values) -> dict:
    """mean, sample standard deviation (0 for one value), min and max of a list of numbers."""
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "n": int(a.size)}


def summarise(per_seed: dict) -> dict:
    """{seed: {run: {region: {metric: v}}}} -> {run: {region: {metric: spread}}}, plus per
    region the number of seeds where with_hints beats without_hints on abs_rel and on a1."""
    from .evaluation import METRIC_NAMES
    seeds = list(per_seed)
    out: dict = {}
    for run in RUNS:
        out[run] = {}
        for region in ("all", "thin"):
            out[run][region] = {k: spread([per_seed[s][run][region][k] for s in seeds])
                                for k in METRIC_NAMES if all(per_seed[s][run][region] for s in seeds)}
    out["hints_better"] = {
        region: {"abs_rel": sum(per_seed[s]["with_hints"][region].get("abs_rel", np.inf)
                                < per_seed[s]["without_hints"][region].get("abs_rel", -np.inf) for s in seeds),
                 "a1": sum(per_seed[s]["with_hints"][region].get("a1", -np.inf)
                           > per_seed[s]["without_hints"][region].get("a1", np.inf) for s in seeds),
                 "seeds": len(seeds)}
        for region in ("all", "thin")}
    return out


def run_demo(quick: bool = False, out_dir: str = "demo_output", data_dir: str = "data/synthetic_kitti",
             cfg: DemoConfig | None = None) -> dict:
    """The whole job; returns the metrics dict also written to <out_dir>/metrics.json.

    metrics.json: "config"; "per_seed" {seed: {run: {"all": 7 metrics, "thin": 7 metrics +
    "pixels"}}}; "summary" {run: {"all"|"thin": {metric: {mean, std, min, max, n}}},
    "hints_better": seeds won}; the means also as metrics[run] and
    metrics["thin_structures"][run]; "losses" {seed: {run: per-step training loss}}; "hints";
    "thin_definition"; "seconds" and "expected_seconds"."""
    from .evaluation import METRIC_NAMES, load_gt_depths, load_pred_disps
    cfg = cfg or (DemoConfig.quick() if quick else DemoConfig())
    start = time.time()
    log_root = os.path.join(out_dir, "runs", "quick" if quick else "full")
    to_train = sum(not trained_before(name, os.path.join(log_root, f"seed_{seed}"), cfg, seed)
                   for seed in cfg.training_seeds for name in RUNS)
    expected = print_expected_time(cfg, to_train, world_is_current(data_dir, cfg))
    os.makedirs(out_dir, exist_ok=True)
    split = make_world(data_dir, cfg)
    hint_summary = precompute_hints(data_dir, split, cfg)
    cache_training_data(data_dir, split, cfg)
    gt_path = export_ground_truth(data_dir, split)
    gt_depths = load_gt_depths(gt_path)
    masks = thin_masks(data_dir, split)
    per_seed, losses, first_disps = {}, {}, None
    for seed in cfg.training_seeds:
        key = str(seed)
        per_seed[key], losses[key], disps = {}, {}, {}
        for name in RUNS:
            weights, losses[key][name] = train_run(name, data_dir, split, os.path.join(log_root, f"seed_{seed}"),
                                                   cfg, seed)
            result = evaluate_run(name, weights, data_dir, split, os.path.join(out_dir, "predictions", f"seed_{seed}"))
            disps[name] = load_pred_disps(result["pred_disps"])
            per_seed[key][name] = {"all": {k: float(result[k]) for k in METRIC_NAMES},
                                   "thin": region_metrics(gt_depths, disps[name], masks)}
        first_disps = first_disps or disps
    summary = summarise(per_seed)
    metrics: dict = {"config": asdict(cfg), "seeds": list(cfg.training_seeds), "per_seed": per_seed,
                     "summary": summary, "thin_definition": THIN_DEFINITION}
    for name in RUNS:  # the means, under the keys of earlier versions
        metrics[name] = {k: v["mean"] for k, v in summary[name]["all"].items()}
    metrics["thin_structures"] = {name: {k: v["mean"] for k, v in summary[name]["thin"].items()}
                                  | {"pixels": per_seed[str(cfg.seed)][name]["thin"].get("pixels", 0)}
                                  for name in RUNS}
    metrics["losses"] = losses
    metrics["hints"] = hint_summary
    metrics["expected_seconds"] = round(expected, 1)
    metrics["seconds"] = round(time.time() - start, 1)
    metrics["report"] = write_figures_and_report(out_dir, data_dir, split, metrics, first_disps, gt_depths,
                                                 masks, cfg.num_figures)
    with atomic_write(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, default=str)
    _print_summary(metrics)
    return metrics


def write_figures_and_report(out_dir: str, data_dir: str, split: str, metrics: dict, disps: dict,
                             gt_depths, thin: list, num_figures: int) -> str:
    """The loss curves and PNG figures for a few evenly spaced test frames, then report.md."""
    import cv2
    from datasets.kitti_raw import KittiRawLayout
    from . import demo_report
    from .images import load_rgb
    from .evaluation import disp_to_gt_size
    from .geometry import STEREO_SCALE_FACTOR
    from .hint_files import hint_file_path, load_hint
    from .splits import read_split_file
    samples = read_split_file(os.path.join(split, "test_files.txt"))
    layout = KittiRawLayout(data_dir, img_ext=".png")
    picks = np.linspace(0, len(samples) - 1, num_figures).round().astype(int) if num_figures else []
    figures = []
    for i in picks:
        s = samples[i]
        image = np.asarray(load_rgb(layout.image_path(s.folder, s.frame_index, s.side)))
        gt = gt_depths[i]
        hint_path = hint_file_path(os.path.join(data_dir, "depth_hints"), s.folder, s.frame_index, s.side)
        hint = None
        if os.path.isfile(hint_path):
            hint = cv2.resize(load_hint(hint_path), gt.shape[::-1], interpolation=cv2.INTER_NEAREST) * STEREO_SCALE_FACTOR
        preds = {name: disp_to_gt_size(disps[name][i], *gt.shape) / STEREO_SCALE_FACTOR for name in RUNS}
        path = os.path.join(out_dir, f"figure_{len(figures)}.png")
        demo_report.demo_figure(path, image, gt, hint, preds, thin[i], title=f"{s.folder} frame {s.frame_index}")
        figures.append(path)
    loss_png = os.path.join(out_dir, "loss_curves.png")
    demo_report.loss_plot(loss_png, metrics["losses"])
    return demo_report.write_demo_report(out_dir, metrics, figures, loss_png, RUNS)


def _print_summary(metrics: dict) -> None:
    summary = metrics["summary"]
    n = len(metrics["per_seed"])
    print(f"\n==> results on the synthetic test split (Eigen protocol, --eval_stereo; "
          f"{'mean ± std over ' + str(n) + ' seeds' if n > 1 else 'one seed'})")
    print(f"{'':26s}{'abs_rel':>16s}{'a1':>16s}")
    for name in RUNS:
        for region, label in (("all", "all pixels"), ("thin", "thin")):
            m = summary[name][region]
            if m:
                cells = "".join(f"{m[k]['mean']:9.3f} ±{m[k]['std']:5.3f}" for k in ("abs_rel", "a1"))
                print(f"{name + ' ' + label:26s}{cells}")
    print(f"report: {metrics.get('report', 'demo_output/report.md')}; {metrics['seconds']:.0f} s "
          f"(expected {metrics['expected_seconds']:.0f} s)")
