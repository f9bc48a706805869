"""Every command-line flag, defined once, with monodepth2 / Depth Hints names and defaults.

Each command has a parser builder (``train_parser()``, ``evaluate_parser()``, ...) and a
``parse_*`` function returning a frozen dataclass: options are read, never mutated. Options
derived from others (e.g. the default ``--depth_hint_path``) are resolved at parse time.
"""
from __future__ import annotations

from depth_hints.atomic import atomic_write
from depth_hints.errors import DepthHintsError
import argparse
import dataclasses
import json
import os
from typing import Any, Sequence

DATASETS = ("kitti", "kitti_odom", "kitti_depth", "kitti_test", "sceneflow", "stereo", "middlebury",
            "cityscapes")
EVAL_SPLITS = ("eigen", "eigen_benchmark", "benchmark", "odom_9", "odom_10", "sceneflow_test",
               "cityscapes")


class OptionsError(DepthHintsError, ValueError):
    """A bad flag or flag combination; the message names the flag and the fix."""


_KITTI_DEFAULT_SPLIT = "eigen_zhou"
#: datasets whose split lists the user makes, and how
_OWN_SPLIT_TOOLS = {
    "stereo": "make the lists with `python scripts/make_stereo_splits.py --data_path <rig> "
              "--out_dir splits/<rig>`, then pass --split splits/<rig>.",
    "sceneflow": "make the lists with `python scripts/make_sceneflow_splits.py --data_path "
                 "<SceneFlow root>`, then pass --split sceneflow.",
}

# flag -> (smallest allowed value, whether the bound itself is allowed, what it means)
_TRAIN_NUMBER_RULES = {
    "batch_size": (1, True, "at least 1"),
    "num_epochs": (1, True, "at least 1"),
    "learning_rate": (0, False, "positive"),
    "scheduler_step_size": (1, True, "at least 1 (epochs before the learning rate drops)"),
    "log_frequency": (1, True, "at least 1 (steps between logs)"),
    "save_frequency": (1, True, "at least 1 (epochs between checkpoints)"),
    "num_workers": (0, True, "0 (load in the main process) or more"),
    "num_steps": (0, True, "0 (no limit) or positive"),
    "save_every_steps": (0, True, "0 (off) or positive"),
    "disparity_smoothness": (0, True, "0 or more"),
    "min_depth": (0, False, "positive"),
    "max_depth": (0, False, "positive"),
    "init_depth": (0, True, "0 (the default initialisation) or a depth between --min_depth and --max_depth"),
    "lr_warmup_steps": (0, True, "0 (off) or more"),
}


# ----------------------------------------------------------------------------- flag groups

def _add_data_flags(p: argparse.ArgumentParser, height: int, width: int) -> None:
    p.add_argument("--data_path", type=str, default="kitti_data",
                   help="root of the dataset (KITTI raw layout for --dataset kitti)")
    p.add_argument("--dataset", type=str, default="kitti", choices=DATASETS,
                   help="which dataset loader to use")
    p.add_argument("--png", action="store_true",
                   help="images are .png (as downloaded) rather than converted .jpg")
    p.add_argument("--height", type=int, default=height, help="input image height (multiple of 32)")
    p.add_argument("--width", type=int, default=width, help="input image width (multiple of 32)")
    p.add_argument("--num_workers", type=int, default=12,
                   help="data loader / precompute worker processes (at most; capped to the cores)")
    p.add_argument("--no_cuda", action="store_true", help="run on the CPU even if CUDA is present")
    p.add_argument("--sceneflow_pass", type=str, default="clean", choices=("clean", "final"),
                   help="SceneFlow render pass")


#: the depth range of ``disp_to_depth`` when neither a flag nor a checkpoint gives one
DEFAULT_MIN_DEPTH, DEFAULT_MAX_DEPTH = 0.1, 100.0


def _add_model_flags(p: argparse.ArgumentParser, recorded_depth_range: bool = False) -> None:
    """``recorded_depth_range``: --min_depth / --max_depth default to None, meaning the range
    the checkpoint's opt.json records (else 0.1 / 100), as test_simple and the predictor use."""
    p.add_argument("--num_layers", type=int, default=18, choices=(18, 34, 50, 101, 152),
                   help="ResNet depth of the encoder")
    recorded = " (default: the checkpoint's opt.json, else {:g})" if recorded_depth_range else ""
    p.add_argument("--min_depth", type=float, default=None if recorded else DEFAULT_MIN_DEPTH,
                   help="minimum depth" + recorded.format(DEFAULT_MIN_DEPTH))
    p.add_argument("--max_depth", type=float, default=None if recorded else DEFAULT_MAX_DEPTH,
                   help="maximum depth" + recorded.format(DEFAULT_MAX_DEPTH))
    p.add_argument("--load_weights_folder", type=str, default=None,
                   help="folder of encoder.pth, depth.pth [, pose_encoder.pth, pose.pth]")


class _PretrainedAction(argparse.Action):
    """``--pretrained list`` prints the released models and exits (as --help does, before the
    required flags are checked); any other value is stored."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values == "list":
            from depth_hints.released_models import table
            print(table())
            parser.exit(0)
        setattr(namespace, self.dest, values)


def _add_pretrained_flag(p: argparse.ArgumentParser, instead_of: str) -> None:
    p.add_argument("--pretrained", type=str, default=None, action=_PretrainedAction, metavar="NAME",
                   help=f"a released monodepth2 / Depth Hints model by name (e.g. DH-HR-Resnet50, "
                        f"mono+stereo_640x192), downloaded, checked and cached in the torch hub "
                        f"folder on first use, instead of {instead_of}; `--pretrained list` "
                        f"prints them")


def train_parser() -> argparse.ArgumentParser:
    """Flags of ``train.py``."""
    p = argparse.ArgumentParser(description="Train a monocular depth network (Depth Hints).")
    _add_data_flags(p, height=192, width=640)
    _add_model_flags(p)
    p.add_argument("--log_dir", type=str, default=os.path.join(os.path.expanduser("~"), "tmp"),
                   help="where runs are written: <log_dir>/<model_name>/")
    p.add_argument("--model_name", type=str, default="mdp", help="folder name of this run")
    p.add_argument("--split", type=str, default=_KITTI_DEFAULT_SPLIT,
                   help="a split name under splits/ or a folder with train_files.txt, val_files.txt")
    p.add_argument("--disparity_smoothness", type=float, default=1e-3, help="smoothness weight")
    p.add_argument("--scales", nargs="+", type=int, default=[0, 1, 2, 3], help="loss scales")
    p.add_argument("--use_stereo", action="store_true", help="use the other stereo view ('s')")
    p.add_argument("--frame_ids", nargs="+", type=str, default=["0", "-1", "1"],
                   help="frames to load: 0 is the target, integers are temporal neighbours")
    p.add_argument("--batch_size", type=int, default=12, help="batch size")
    p.add_argument("--learning_rate", type=float, default=1e-4, help="learning rate")
    p.add_argument("--num_epochs", type=int, default=20, help="number of epochs")
    p.add_argument("--scheduler_step_size", type=int, default=15,
                   help="epochs after which the learning rate is multiplied by 0.1")
    p.add_argument("--v1_multiscale", action="store_true",
                   help="compute losses at each decoder scale (monodepth v1) instead of "
                        "upsampling every disparity to full resolution")
    p.add_argument("--avg_reprojection", action="store_true",
                   help="average the reprojection error over source views instead of the minimum")
    p.add_argument("--disable_automasking", action="store_true", help="no auto-masking")
    p.add_argument("--predictive_mask", action="store_true",
                   help="learn a per-pixel explainability mask (Zhou et al.)")
    p.add_argument("--no_ssim", action="store_true", help="L1 photometric error only")
    p.add_argument("--weights_init", type=str, default="pretrained",
                   choices=("pretrained", "scratch"), help="ImageNet weights or random")
    p.add_argument("--pose_model_input", type=str, default="pairs", choices=("pairs", "all"),
                   help="pose network sees frame pairs or all frames")
    p.add_argument("--pose_model_type", type=str, default="separate_resnet",
                   choices=("posecnn", "separate_resnet", "shared"), help="pose network")
    p.add_argument("--models_to_load", nargs="+", type=str,
                   default=["encoder", "depth", "pose_encoder", "pose"], help="models to load")
    _add_pretrained_flag(p, "--load_weights_folder (fine-tuning)")
    p.add_argument("--log_frequency", type=int, default=250, help="steps between tensorboard logs")
    p.add_argument("--save_frequency", type=int, default=1, help="epochs between checkpoints")
    p.add_argument("--use_depth_hints", action="store_true",
                   help="add the Depth Hints loss (needs --use_stereo / frame id 's')")
    p.add_argument("--depth_hint_path", type=str, default=None,
                   help="precomputed hints; default <data_path>/depth_hints")
    # New flags (not in monodepth2).
    p.add_argument("--seed", type=int, default=None, help="random seed for a reproducible run")
    p.add_argument("--resume", action="store_true",
                   help="continue <log_dir>/<model_name> from its last checkpoint "
                        "(weights, optimiser, scheduler, epoch)")
    p.add_argument("--num_steps", type=int, default=0,
                   help="stop after this many optimiser steps in total (0: no limit)")
    p.add_argument("--no_val", action="store_true", help="skip the validation batches")
    p.add_argument("--lr_warmup_steps", type=int, default=0,
                   help="linear learning-rate warm-up over the first N optimiser steps (0: none, "
                        "as monodepth2); the scheduler's learning rate is scaled by (step + 1) / N")
    p.add_argument("--init_depth", type=float, default=0.0,
                   help="bias the depth decoder's disparity heads so that training starts at this "
                        "depth (training units: baseline 0.1) instead of about 0.2, monodepth2's "
                        "initialisation (0: that default). From scratch, 0.2 is ~1 m on KITTI: the "
                        "near end, where stereo warps leave the image")
    p.add_argument("--no_channels_last", action="store_true",
                   help="keep NCHW memory format (default on the CPU, where channels-last is "
                        "slower; on CUDA it is the default)")
    p.add_argument("--channels_last", action="store_true",
                   help="channels-last memory format also on the CPU")
    p.add_argument("--bf16", action="store_true",
                   help="run the networks under bfloat16 autocast (fast on CPUs with AVX512-BF16 "
                        "or AMX and on Ampere+ GPUs); weights, geometry and losses stay float32")
    p.add_argument("--fp16", action="store_true",
                   help="float16 autocast with gradient scaling, for GPUs without bfloat16 "
                        "(refused on the CPU, where it is slower than float32); weights, "
                        "geometry and losses stay float32")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training step's networks and objective (opt-in; "
                        "needs a C++ compiler on the CPU, Triton on CUDA); prints the compile "
                        "time at the first step")
    # Scaling out (torchrun); see README "Scaling out".
    p.add_argument("--sync_bn", action="store_true",
                   help="under torchrun: BatchNorm statistics over the global batch (SyncBatchNorm)")
    p.add_argument("--save_every_steps", type=int, default=0,
                   help="also write a resumable checkpoint every N optimiser steps (0: off); "
                        "SIGTERM / SIGUSR1 always write one and exit 0")
    # Feeding the device (README "Training cache and device augmentation").
    p.add_argument("--augment_on", type=str, default="auto", choices=("auto", "cpu", "device"),
                   help="where colour jitter and the image pyramid are made: 'device' (the loader "
                        "ships uint8 at the training size, the training device jitters and builds "
                        "the levels the losses read), 'cpu' (the original PIL path, byte for "
                        "byte); auto: device")
    p.add_argument("--cache_dir", type=str, default=None,
                   help="training cache of scripts/cache_training_data.py (default: "
                        "<data_path>/training_cache/<split>_<H>x<W>[_png] when present)")
    p.add_argument("--no_cache", action="store_true", help="decode the images even if a cache exists")
    return p


def evaluate_parser() -> argparse.ArgumentParser:
    """Flags of ``evaluate_depth.py``."""
    p = argparse.ArgumentParser(description="Evaluate depth predictions.")
    _add_data_flags(p, height=192, width=640)
    _add_model_flags(p, recorded_depth_range=True)
    p.add_argument("--batch_size", type=int, default=16, help="evaluation batch size")
    p.add_argument("--eval_stereo", action="store_true",
                   help="stereo-trained model: scale by the factor its training recorded (rig "
                        "baseline / 0.1; 5.4 for KITTI and released weights), no median scaling")
    p.add_argument("--eval_mono", action="store_true",
                   help="mono-trained model: per-image median scaling")
    p.add_argument("--disable_median_scaling", action="store_true", help="no median scaling")
    p.add_argument("--pred_depth_scale_factor", type=float, default=1.0,
                   help="multiply predicted depths by this (with --eval_stereo: instead of the "
                        "recorded factor)")
    p.add_argument("--ext_disp_to_eval", type=str, default=None,
                   help=".npy of precomputed disparities to evaluate, or the name of a released "
                        "model whose Eigen predictions are fetched (e.g. DH-HR-Resnet50)")
    _add_pretrained_flag(p, "--load_weights_folder")
    p.add_argument("--eval_split", type=str, default="eigen",
                   help=f"one of {', '.join(EVAL_SPLITS)}, or a folder with test_files.txt")
    p.add_argument("--save_pred_disps", action="store_true", help="save the predicted disparities")
    p.add_argument("--no_eval", action="store_true", help="predict (and save) but do not score")
    p.add_argument("--eval_eigen_to_benchmark", action="store_true",
                   help="evaluate eigen-split predictions on the benchmark ground truth")
    p.add_argument("--eval_out_dir", type=str, default=None, help="where predictions are saved")
    p.add_argument("--post_process", action="store_true",
                   help="average with the prediction of the flipped image")
    p.add_argument("--gt_path", type=str, default=None,
                   help="ground-truth npz (default splits/<eval_split>/gt_depths.npz)")
    p.add_argument("--output_json", type=str, default=None, help="write the metrics as JSON here")
    p.add_argument("--eval_protocol", type=str, default="auto", choices=("auto", "eigen", "plain"),
                   help="eigen: Garg crop and 1e-3..80 m caps on the ground truth; plain: every "
                        "pixel with gt > 0; auto: eigen for --eval_split eigen, else plain")
    return p


def precompute_parser() -> argparse.ArgumentParser:
    """Flags of ``precompute_depth_hints.py``."""
    p = argparse.ArgumentParser(description="Precompute fused-SGM depth hints.")
    _add_data_flags(p, height=320, width=1024)
    p.add_argument("--filenames", type=str, default=None,
                   help="a split file of 'folder frame side' lines (default "
                        "splits/eigen_full/all_files.txt; --dataset sceneflow: "
                        "splits/sceneflow/train_files.txt and val_files.txt; required for "
                        "--dataset stereo, middlebury, cityscapes)")
    p.add_argument("--save_path", type=str, default=None,
                   help="where hints go (default <data_path>/depth_hints)")
    p.add_argument("--overwrite_saved_depths", action="store_true",
                   help="recompute hints that already exist")
    p.add_argument("--dtype", type=str, default="float32", choices=("float32", "float16"),
                   help="storage type of the hint files")
    p.add_argument("--report", type=str, default=None,
                   help="write per-frame coverage (and accuracy, when ground truth exists) here")
    p.add_argument("--gt_disparity", type=str, default=None,
                   help="folder of ground-truth disparities for --report")
    p.add_argument("--strict_candidates", action="store_true",
                   help="drop candidates without disparity instead of letting them compete "
                        "(the original competes them; see docs)")
    p.add_argument("--shard", type=str, default=None,
                   help="I/N (0-based): compute only shard I of N, the frames i of the sorted "
                        "split with i %% N == I (shards share only --save_path). Default: from "
                        "a SLURM array (SLURM_ARRAY_TASK_ID, see --num_shards), else every "
                        "frame. Under torchrun each rank takes part RANK of WORLD_SIZE of it")
    p.add_argument("--num_shards", type=int, default=None,
                   help="in a SLURM array: the number of shards N; each task computes shard "
                        "SLURM_ARRAY_TASK_ID of N, so the array is --array=0-<N-1> and failed "
                        "ids can be resubmitted alone (--array=3,11). Without it the array must "
                        "be 0..COUNT-1")
    p.add_argument("--verify", action="store_true",
                   help="compute nothing: check that every hint file of the split exists, "
                        "loads, is --height x --width, finite and non-negative; print a "
                        "summary and exit 1 on any problem")
    p.add_argument("--pick_device", type=str, default="auto", choices=("auto", "cpu", "cuda"),
                   help="where the per-pixel pick runs: cpu (in every worker), cuda (one "
                        "consumer on the GPU, fed by the CPU matcher pool), auto (cuda when a "
                        "GPU is visible and not --no_cuda)")
    return p


def test_simple_parser() -> argparse.ArgumentParser:
    """Flags of ``test_simple.py``."""
    p = argparse.ArgumentParser(description="Predict depth for images, a folder or a video.")
    p.add_argument("--image_path", type=str, required=True,
                   help="an image, a folder of images or a video file")
    p.add_argument("--model_path", type=str, default=None,
                   help="a weights folder, or a model exported by depth-hints-export (.onnx or "
                        "TorchScript)")
    _add_pretrained_flag(p, "--model_path")
    p.add_argument("--ext", type=str, default="jpg", help="image extension to search folders for")
    p.add_argument("--no_cuda", action="store_true", help="run on the CPU even if CUDA is present")
    p.add_argument("--pred_metric_depth", action="store_true",
                   help="stereo-trained models: save metric depth (the factor the training "
                        "recorded, its rig's baseline / 0.1; 5.4 for KITTI and released weights) "
                        "instead of disparity")
    p.add_argument("--pred_depth_scale_factor", type=float, default=None,
                   help="with --pred_metric_depth: multiply depth by this instead of the "
                        "recorded factor")
    p.add_argument("--output_dir", type=str, default=None,
                   help="where results go (default: beside the inputs)")
    return p


def export_parser() -> argparse.ArgumentParser:
    """Flags of ``scripts/export_model.py`` / ``depth-hints-export``."""
    p = argparse.ArgumentParser(description="Export encoder + depth decoder as one ONNX or "
                                            "TorchScript graph.")
    p.add_argument("--load_weights_folder", type=str, default=None,
                   help="weights folder (ours or a released monodepth2 / Depth Hints one)")
    _add_pretrained_flag(p, "--load_weights_folder")
    p.add_argument("--format", type=str, default="onnx", choices=("onnx", "torchscript"))
    p.add_argument("--height", type=int, default=None,
                   help="input height, a multiple of 32 (default: the trained height)")
    p.add_argument("--width", type=int, default=None,
                   help="input width, a multiple of 32 (default: the trained width)")
    p.add_argument("--out", type=str, required=True, help="the file to write")
    p.add_argument("--metric", action="store_true",
                   help="also output depth in metres (x the checkpoint's metric factor, 5.4 "
                        "for KITTI-trained and released weights)")
    p.add_argument("--dynamic_size", action="store_true",
                   help="height and width dynamic too (multiples of 32), not only the batch")
    return p


def evaluate_pose_parser() -> argparse.ArgumentParser:
    """Flags of ``evaluate_pose.py``."""
    p = argparse.ArgumentParser(description="Evaluate pose on KITTI odometry 09/10.")
    _add_data_flags(p, height=192, width=640)
    _add_model_flags(p)
    p.add_argument("--eval_split", type=str, default="odom_9", choices=("odom_9", "odom_10"))
    p.add_argument("--batch_size", type=int, default=16, help="evaluation batch size")
    p.add_argument("--frame_ids", nargs="+", type=str, default=["0", "1"], help="frames")
    p.add_argument("--pose_model_input", type=str, default="pairs", choices=("pairs", "all"))
    p.add_argument("--pose_model_type", type=str, default="separate_resnet",
                   choices=("posecnn", "separate_resnet", "shared"))
    p.add_argument("--output_json", type=str, default=None, help="write the ATE as JSON here")
    return p


# ----------------------------------------------------------------------------- frozen configs

def _config_class(name: str, parser: argparse.ArgumentParser):
    fields = [(a.dest, Any) for a in parser._actions if a.dest != "help"]
    return dataclasses.make_dataclass(name, fields, frozen=True, namespace={"__module__": __name__})


TrainOptions = _config_class("TrainOptions", train_parser())
EvaluateOptions = _config_class("EvaluateOptions", evaluate_parser())
PrecomputeOptions = _config_class("PrecomputeOptions", precompute_parser())
TestSimpleOptions = _config_class("TestSimpleOptions", test_simple_parser())
EvaluatePoseOptions = _config_class("EvaluatePoseOptions", evaluate_pose_parser())
ExportOptions = _config_class("ExportOptions", export_parser())


def _freeze(cls, values: dict):
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _check_size(height: int, width: int) -> None:
    for flag, value in (("--height", height), ("--width", width)):
        if value <= 0 or value % 32:
            raise OptionsError(f"{flag} {value} is not a positive multiple of 32; the encoder "
                               f"downsamples 5 times. Use e.g. --height 192 --width 640.")


def parse_frame_ids(frame_ids: Sequence[str]) -> tuple:
    """['0', '-1', '1', 's'] -> (0, -1, 1, 's'); the first must be 0."""
    out = []
    for f in frame_ids:
        if f == "s":
            out.append("s")
            continue
        try:
            out.append(int(f))
        except ValueError:
            raise OptionsError(f"--frame_ids: {f!r} is neither an integer offset nor 's'") from None
    if not out or out[0] != 0:
        raise OptionsError(f"--frame_ids must start with 0 (the target frame), got {list(frame_ids)}")
    if len(set(out)) != len(out):
        raise OptionsError(f"--frame_ids has duplicates: {list(frame_ids)}")
    return tuple(out)


def _resolve_pretrained(values: dict, folder_flag: str) -> dict:
    """``--pretrained NAME`` -> its cached weights folder (downloaded and checked on first use)
    as the value of ``folder_flag``; giving both is an error."""
    name, key = values.get("pretrained"), folder_flag.lstrip("-")
    if name is None:
        return values
    if values.get(key) is not None:
        raise OptionsError(f"--pretrained {name} and {folder_flag} {values[key]} exclude each "
                           f"other; give one of them.")
    from depth_hints.released_models import fetch_model, get_model
    get_model(name)  # an unknown name fails before anything else
    return {**values, key: fetch_model(name)}


def parse_train(argv: Sequence[str] | None = None):
    """Parse and validate ``train.py`` flags -> TrainOptions (``--pretrained NAME``: fine-tune
    from the released model, fetched into ``--load_weights_folder``)."""
    values = vars(train_parser().parse_args(argv))
    if values["pretrained"] is not None:
        from depth_hints.released_models import cached_manifest
        values = _resolve_pretrained(values, "--load_weights_folder")
        layers = cached_manifest(values["pretrained"])["num_layers"]
        if layers != values["num_layers"]:
            raise OptionsError(f"--pretrained {values['pretrained']} is a ResNet{layers}: add "
                               f"--num_layers {layers} (now {values['num_layers']}).")
    return train_options_from_dict(values)


def train_options_from_dict(values: dict):
    """Validate a dict of train flags (from the CLI or an opt.json) -> TrainOptions."""
    defaults = vars(train_parser().parse_args([]))
    unknown = set(values) - set(defaults)
    values = {**defaults, **{k: v for k, v in values.items() if k in defaults}}
    _check_size(values["height"], values["width"])
    frame_ids = list(parse_frame_ids([str(f) for f in values["frame_ids"]]))
    if values["use_stereo"] and "s" not in frame_ids:
        frame_ids.append("s")
    if "s" in frame_ids:
        values["use_stereo"] = True
    values["frame_ids"] = tuple(frame_ids)
    if values["use_depth_hints"] and "s" not in frame_ids:
        raise OptionsError("--use_depth_hints needs the stereo view: add --use_stereo "
                           "(or 's' to --frame_ids); hints are warped with the stereo pose.")
    if len(frame_ids) == 1:
        raise OptionsError("--frame_ids 0 alone gives nothing to reproject from: add --use_stereo "
                           "or temporal frames such as -1 1.")
    if values["depth_hint_path"] is None:
        values["depth_hint_path"] = os.path.join(values["data_path"], "depth_hints")
    if not values["scales"] or min(values["scales"]) < 0 or max(values["scales"]) > 3:
        raise OptionsError(f"--scales must be a subset of 0 1 2 3, got {values['scales']}")
    if values["pose_model_type"] == "shared" and values["pose_model_input"] == "all":
        raise OptionsError("--pose_model_type shared works with --pose_model_input pairs only")
    if values["predictive_mask"] and not values["disable_automasking"]:
        raise OptionsError("--predictive_mask is the alternative to auto-masking: add "
                           "--disable_automasking to use it (as monodepth2 requires).")
    if values["v1_multiscale"] and values["use_depth_hints"]:
        raise OptionsError("--v1_multiscale cannot be combined with --use_depth_hints (the original "
                           "refuses it; hints are full-resolution): drop one of the two flags.")
    _check_numbers(values, _TRAIN_NUMBER_RULES)
    if values["max_depth"] <= values["min_depth"]:
        raise OptionsError(f"--max_depth {values['max_depth']:g} must exceed --min_depth "
                           f"{values['min_depth']:g}; e.g. --min_depth 0.1 --max_depth 100.")
    if values["dataset"] in _OWN_SPLIT_TOOLS and values["split"] == _KITTI_DEFAULT_SPLIT:
        raise OptionsError(f"--dataset {values['dataset']} needs --split (the default "
                           f"{_KITTI_DEFAULT_SPLIT} lists KITTI frames): "
                           f"{_OWN_SPLIT_TOOLS[values['dataset']]}")
    if values["init_depth"] and not values["min_depth"] < values["init_depth"] < values["max_depth"]:
        raise OptionsError(f"--init_depth {values['init_depth']:g} must lie between --min_depth "
                           f"{values['min_depth']:g} and --max_depth {values['max_depth']:g} (0: the "
                           f"default initialisation)")
    _check_scaling_flags(values)
    del unknown  # extra keys of old opt.json files are ignored on purpose
    return _freeze(TrainOptions, values)


def _check_numbers(values: dict, rules: dict) -> None:
    """Each numeric flag in range (and finite), else a one-line OptionsError naming it."""
    import math
    for name, (bound, inclusive, meaning) in rules.items():
        value = values[name]
        ok = math.isfinite(value) and (value >= bound if inclusive else value > bound)
        if not ok:
            raise OptionsError(f"--{name} must be {meaning}, got {value}.")


def _check_scaling_flags(values: dict) -> None:
    """Precision, memory-format and checkpoint-interval flags that exclude each other."""
    if values["bf16"] and values["fp16"]:
        raise OptionsError("--bf16 and --fp16 exclude each other; pick one (--fp16 for GPUs "
                           "without bfloat16).")
    if values["channels_last"] and values["no_channels_last"]:
        raise OptionsError("--channels_last and --no_channels_last exclude each other; pass one "
                           "or neither (default: on for CUDA, off on the CPU).")


def parse_evaluate(argv: Sequence[str] | None = None):
    """Parse and validate ``evaluate_depth.py`` flags -> EvaluateOptions."""
    values = vars(evaluate_parser().parse_args(argv))
    if values["eval_stereo"] == values["eval_mono"]:
        raise OptionsError("Choose exactly one of --eval_stereo (stereo-trained: x5.4, no median "
                           "scaling) and --eval_mono (mono-trained: median scaling).")
    if values["ext_disp_to_eval"] is None and values["load_weights_folder"] is None \
            and values["pretrained"] is None:
        raise OptionsError("Nothing to evaluate: give --load_weights_folder, --pretrained NAME or "
                           "--ext_disp_to_eval.")
    _check_size(values["height"], values["width"])
    values = _resolve_pretrained(values, "--load_weights_folder")
    ext = values["ext_disp_to_eval"]
    if ext is not None and not os.path.exists(ext):
        from depth_hints.released_models import MODELS, fetch_predictions
        if ext in MODELS:  # a released model's name: its Eigen predictions, fetched once
            values["ext_disp_to_eval"] = fetch_predictions(ext)
    return _freeze(EvaluateOptions, values)


def parse_precompute(argv: Sequence[str] | None = None):
    """Parse ``precompute_depth_hints.py`` flags -> PrecomputeOptions."""
    values = vars(precompute_parser().parse_args(argv))
    if values["save_path"] is None:
        values["save_path"] = os.path.join(values["data_path"], "depth_hints")
    if values["height"] <= 0 or values["width"] <= 0:
        raise OptionsError("--height and --width must be positive")
    if values["pick_device"] == "cuda" and values["no_cuda"]:
        raise OptionsError("--pick_device cuda and --no_cuda exclude each other; drop one "
                           "(--pick_device auto follows --no_cuda).")
    return _freeze(PrecomputeOptions, values)


def parse_test_simple(argv: Sequence[str] | None = None):
    """Parse ``test_simple.py`` flags -> TestSimpleOptions (``--pretrained NAME`` becomes the
    cached folder in ``model_path``)."""
    values = vars(test_simple_parser().parse_args(argv))
    if values["model_path"] is None and values["pretrained"] is None:
        raise OptionsError("Give the model: --model_path <weights folder or exported file> or "
                           "--pretrained NAME (`--pretrained list` prints the released ones).")
    return _freeze(TestSimpleOptions, _resolve_pretrained(values, "--model_path"))


def parse_export(argv: Sequence[str] | None = None):
    """Parse ``depth-hints-export`` flags -> ExportOptions; sizes must be multiples of 32."""
    values = vars(export_parser().parse_args(argv))
    _check_size(*(32 if values[k] is None else values[k] for k in ("height", "width")))
    if values["load_weights_folder"] is None and values["pretrained"] is None:
        raise OptionsError("Give the model: --load_weights_folder <weights folder> or "
                           "--pretrained NAME (`--pretrained list` prints the released ones).")
    return _freeze(ExportOptions, _resolve_pretrained(values, "--load_weights_folder"))


def parse_evaluate_pose(argv: Sequence[str] | None = None):
    """Parse ``evaluate_pose.py`` flags -> EvaluatePoseOptions."""
    values = vars(evaluate_pose_parser().parse_args(argv))
    _check_size(values["height"], values["width"])
    return _freeze(EvaluatePoseOptions, values)


def parse_size(text: str, flag: str) -> tuple:
    """'1024x320' (width x height) -> (width, height); OptionsError naming ``flag`` otherwise."""
    parts = str(text).lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise OptionsError(f"{flag} {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 1024x320.")
    return int(parts[0]), int(parts[1])


def precompute_command(data_path: str, save_path: str, dataset: str = "kitti",
                       filenames: str | None = None, png: bool = False,
                       size: tuple | None = None, sceneflow_pass: str = "clean") -> str:
    """The ``python precompute_depth_hints.py ...`` line that computes the hints of these
    inputs with the user's own flags (--dataset, --png, --filenames, size (height, width),
    --sceneflow_pass), shell-quoted, for error messages to suggest."""
    import shlex
    args = ["python", "precompute_depth_hints.py"]
    if dataset not in ("", "kitti"):
        args += ["--dataset", dataset]
    if dataset == "sceneflow" and sceneflow_pass != "clean":
        args += ["--sceneflow_pass", sceneflow_pass]
    args += ["--data_path", str(data_path)]
    if filenames:
        args += ["--filenames", str(filenames)]
    if png:
        args.append("--png")
    if size:
        args += ["--height", str(size[0]), "--width", str(size[1])]
    args += ["--save_path", str(save_path)]
    return " ".join(shlex.quote(a) for a in args)


def to_json_dict(options) -> dict:
    """Options -> a JSON-ready dict (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(options).items()}


def save_options(options, path: str, extra: dict | None = None) -> None:
    """Write options (plus ``extra`` keys, e.g. the recorded metric factor) as JSON atomically."""
    with atomic_write(path, "w") as f:
        json.dump({**to_json_dict(options), **(extra or {})}, f, indent=2, sort_keys=True)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one): the one
    source of default worker counts (training's loader, the precompute's pool)."""
    import os
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def device_from(no_cuda: bool):
    """The one place the device is chosen: CUDA if present and not --no_cuda, else CPU."""
    import torch
    if no_cuda:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.version.cuda is not None:
        print(f"note: this torch build supports CUDA {torch.version.cuda} but sees no GPU "
              f"(driver, CUDA_VISIBLE_DEVICES?); running on the CPU (--no_cuda hides this note)",
              flush=True)  # stdout, with the device line: stderr is kept for errors
    return torch.device("cpu")
