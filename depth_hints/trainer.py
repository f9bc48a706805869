"""The training loop: batches in, losses out, optimiser, logging, checkpoints. No math here:
the objective lives in objective.py, the networks in model.py.

Laid out for DistributedDataParallel to slot in later: samplers are passed in, logging and
checkpoints happen on the main process only, nothing lives at module level.
"""
from __future__ import annotations

from depth_hints.errors import DepthHintsError
import os
import random
import re
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

import datasets
from datasets.layout import rig_metric_scale
from . import checkpoints, objective, options as options_module
from .model import DepthHintsModel
from .splits import read_split_file, split_file


class TrainingError(DepthHintsError, RuntimeError):
    """Something found before or during training that stops it; the message says the fix."""


@dataclass
class TrainState:
    """Where a run stands; saved with every checkpoint for a true resume."""
    epoch: int = 0  # next epoch to run
    step: int = 0   # optimiser steps taken


def seed_everything(seed: int | None) -> None:
    """Seed python, numpy and torch (no-op for None)."""
    if seed is None:
        return
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def build_datasets(opt):
    """Train and validation datasets from the options (split files read and checked)."""
    cls = datasets.dataset_class(opt.dataset)
    img_ext = ".png" if opt.png else ".jpg"
    extra = {"sceneflow_pass": opt.sceneflow_pass} if opt.dataset == "sceneflow" else {}
    made = []
    for name, is_train in (("train_files.txt", True), ("val_files.txt", False)):
        samples = read_split_file(split_file(opt.split, name),
                                  named_frames=datasets.layout_class(opt.dataset).named_frames)
        made.append(cls(opt.data_path, samples, opt.height, opt.width, opt.frame_ids,
                        num_scales=4, is_train=is_train, img_ext=img_ext,
                        use_depth_hints=opt.use_depth_hints, depth_hint_path=opt.depth_hint_path,
                        **extra))
    return made[0], made[1]


def check_dataset(dataset, name: str, use_depth_hints: bool, depth_hint_path: str) -> None:
    """Fail before training when files are missing or the first sample does not load."""
    if not os.path.isdir(dataset.data_path):
        raise TrainingError(f"--data_path {dataset.data_path!r} does not exist.")
    missing = dataset.missing_files()
    if missing:
        hints = [m for m in missing if m.endswith(".npy")]
        name_of_layout = dataset.layout.name
        dataset_flag = "" if name_of_layout in ("", "kitti") else f" --dataset {name_of_layout}"
        fix = (f" Precompute hints with `python precompute_depth_hints.py{dataset_flag} --data_path "
               f"{dataset.data_path} --save_path {depth_hint_path}` (or fix --depth_hint_path)."
               if hints else " Check --data_path, --png and the split.")
        raise TrainingError(f"{name}: {len(missing)}+ missing files, e.g. {missing[0]}.{fix}")
    dataset[0]  # surfaces unreadable images and corrupt hints with their own messages


def training_metric_scale(train_set, use_stereo: bool, verbose: bool = True):
    """The metric factor (rig baseline / 0.1) of a training set with one rig, else None.

    The cameras are those of each folder's first sample. A set mixing baselines trains in
    baseline units (stereo_T is 0.1 for every rig): said at start, no factor recorded."""
    cameras, seen = [], set()
    for sample in train_set.samples:
        if sample.folder not in seen:
            seen.add(sample.folder)
            cameras.append(train_set.layout.camera(sample.folder, sample.frame_index))
    factor = rig_metric_scale(cameras)
    if verbose and factor is None and cameras:
        baselines = sorted({round(c.baseline, 6) for c in cameras})
        print(f"note: the training set mixes rigs (baselines {baselines[0]:g} .. {baselines[-1]:g} m "
              f"over {len(cameras)} folders): it trains in baseline units, so no single metric "
              f"factor is recorded; metric output will need --pred_depth_scale_factor.")
    elif verbose and use_stereo:
        print(f"metric factor of this rig (baseline / 0.1): {factor:g}, recorded in opt.json")
    return factor


def build_model(opt) -> DepthHintsModel:
    return DepthHintsModel(opt.num_layers, opt.weights_init == "pretrained", opt.frame_ids,
                           opt.scales, opt.pose_model_type, opt.pose_model_input, opt.predictive_mask)


def latest_checkpoint(models_dir: str) -> str | None:
    """The weights_N folder with the largest N, or None."""
    if not os.path.isdir(models_dir):
        return None
    found = [(int(m.group(1)), d) for d in os.listdir(models_dir)
             if (m := re.fullmatch(r"weights_(\d+)", d))]
    return os.path.join(models_dir, max(found)[1]) if found else None


def to_device(batch: dict, device, channels_last: bool) -> dict:
    out = {}
    for key, value in batch.items():
        value = value.to(device, non_blocking=True)
        if channels_last and value.dim() == 4 and isinstance(key, tuple) and key[0] == "color_aug":
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


class Trainer:
    """One run: model, optimiser, scheduler, data, logging. ``train()`` runs it to the end."""

    def __init__(self, opt, train_sampler=None, is_main_process: bool = True):
        self.opt = opt
        self.is_main = is_main_process
        self.device = options_module.device_from(opt.no_cuda)
        self.channels_last = not opt.no_channels_last
        self.log_path = os.path.join(opt.log_dir, opt.model_name)
        self.models_dir = os.path.join(self.log_path, "models")
        seed_everything(opt.seed)

        self.train_set, self.val_set = build_datasets(opt)
        check_dataset(self.train_set, "training split", opt.use_depth_hints, opt.depth_hint_path)
        if not opt.no_val:
            check_dataset(self.val_set, "validation split (or pass --no_val)", opt.use_depth_hints,
                          opt.depth_hint_path)
        self.metric_scale = training_metric_scale(self.train_set, opt.use_stereo, self.is_main)
        self.loss_cfg = objective.LossConfig.from_options(opt)
        self.model = build_model(opt).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), opt.learning_rate)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, opt.scheduler_step_size, 0.1)
        self.state = TrainState()

        if opt.resume:
            self.resume()
        elif opt.load_weights_folder:
            self.load_weights(opt.load_weights_folder, opt.models_to_load)

        generator = torch.Generator()
        if opt.seed is not None:
            generator.manual_seed(opt.seed)
        self.train_loader = DataLoader(
            self.train_set, opt.batch_size, shuffle=train_sampler is None, sampler=train_sampler,
            num_workers=opt.num_workers, pin_memory=self.device.type == "cuda", drop_last=True,
            persistent_workers=opt.num_workers > 0, generator=generator)
        if len(self.train_loader) == 0:
            raise TrainingError(f"The training split has {len(self.train_set)} samples, fewer than "
                                f"--batch_size {opt.batch_size}.")
        self.val_loader = None
        if not opt.no_val:
            self.val_loader = DataLoader(self.val_set, opt.batch_size, shuffle=True, drop_last=False,
                                         num_workers=0, generator=torch.Generator().manual_seed(0))
        self.writers = None
        if self.is_main:
            from tensorboardX import SummaryWriter
            self.writers = {m: SummaryWriter(os.path.join(self.log_path, m)) for m in ("train", "val")}
            os.makedirs(self.models_dir, exist_ok=True)
            options_module.save_options(opt, os.path.join(self.models_dir, "opt.json"),
                                        extra=self.recorded())

    # -- checkpoints --------------------------------------------------------------------------
    def recorded(self) -> dict:
        """What the run records beside its options: the metric factor of its rig (None when
        the training set mixes rigs)."""
        return {checkpoints.METRIC_SCALE_KEY: self.metric_scale}

    def load_weights(self, folder: str, names) -> None:
        """Load the named networks from a weights folder (fine-tuning); missing names are skipped
        with a note, as monodepth2 does for e.g. a depth-only folder."""
        folder = os.path.expanduser(folder)
        if not os.path.isdir(folder):
            raise TrainingError(f"--load_weights_folder {folder!r} does not exist.")
        for name in names:
            if name not in self.model.nets:
                continue
            if not os.path.isfile(os.path.join(folder, f"{name}.pth")):
                print(f"note: {folder} has no {name}.pth; {name} keeps its initialisation")
                continue
            checkpoints.load_into(self.model.nets[name], folder, name)

    def save(self, epoch: int) -> str:
        folder = os.path.join(self.models_dir, f"weights_{epoch}")
        checkpoints.save_weights_folder(
            folder, self.model.named_networks(), self.opt.height, self.opt.width, self.opt.use_stereo,
            optimizer=self.optimizer,
            train_state={"epoch": self.state.epoch, "step": self.state.step,
                         "scheduler": self.scheduler.state_dict(),
                         "torch_rng": torch.get_rng_state()},
            options={**options_module.to_json_dict(self.opt), **self.recorded()})
        return folder

    def resume(self) -> None:
        folder = latest_checkpoint(self.models_dir)
        if folder is None:
            raise TrainingError(f"--resume: no weights_N folder in {self.models_dir}; start without "
                                f"--resume (or fix --log_dir/--model_name).")
        for name in self.model.nets:
            checkpoints.load_into(self.model.nets[name], folder, name)
        self.optimizer.load_state_dict(checkpoints.load_state(folder, "adam"))
        state = checkpoints.load_state(folder, "train_state")
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.state = TrainState(epoch=state["epoch"], step=state["step"])
        print(f"resumed from {folder}: epoch {self.state.epoch}, step {self.state.step}")

    # -- the loop -----------------------------------------------------------------------------
    def process_batch(self, batch: dict):
        inputs = to_device(batch, self.device, self.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.opt.bf16):
            outputs = self.model(inputs)
        if self.opt.bf16:  # the objective runs in float32
            outputs = {key: value.float() for key, value in outputs.items()}
        objective.synthesise_views(inputs, outputs, self.loss_cfg)
        losses = objective.compute_losses(inputs, outputs, self.loss_cfg)
        return inputs, outputs, losses

    def train(self) -> dict:
        """Run the remaining epochs (or until --num_steps); returns a summary."""
        from tqdm import tqdm
        opt = self.opt
        history = []
        start = time.time()
        total_steps = opt.num_epochs * len(self.train_loader)
        if opt.num_steps:
            total_steps = min(total_steps, opt.num_steps)
        bar = tqdm(total=total_steps, initial=min(self.state.step, total_steps), disable=not self.is_main,
                   desc=opt.model_name, unit="step", dynamic_ncols=True)
        stop = self.state.step >= total_steps
        while self.state.epoch < opt.num_epochs and not stop:
            self.model.train()
            for batch in self.train_loader:
                inputs, outputs, losses = self.process_batch(batch)
                self.optimizer.zero_grad(set_to_none=True)
                losses["loss"].backward()
                self.optimizer.step()
                self.state.step += 1
                loss = float(losses["loss"].detach())
                if not np.isfinite(loss):
                    raise TrainingError(f"Loss became {loss} at step {self.state.step}; lower "
                                        f"--learning_rate or check the inputs.")
                history.append(loss)
                bar.update(1)
                bar.set_postfix(epoch=self.state.epoch, loss=f"{loss:.4f}")
                if self.is_main and (self.state.step % opt.log_frequency == 0 or self.state.step == 1):
                    self.log("train", inputs, outputs, losses)
                    self.validate()
                if self.state.step >= total_steps:
                    stop = True
                    break
            epoch = self.state.epoch
            finished = not stop or self.state.step % len(self.train_loader) == 0
            if finished:
                self.scheduler.step()  # decays after epoch `scheduler_step_size` has finished
                self.state.epoch += 1
            if self.is_main and (stop or self.state.epoch % opt.save_frequency == 0
                                 or self.state.epoch == opt.num_epochs):
                # weights_<epoch>; a run stopped mid-epoch saves into the epoch in progress and
                # a resume re-runs that epoch.
                self.save(epoch)
        bar.close()
        if self.writers:
            for w in self.writers.values():
                w.close()
        return {"steps": self.state.step, "epochs": self.state.epoch, "losses": history,
                "seconds": time.time() - start, "models_dir": self.models_dir}

    @torch.no_grad()
    def validate(self) -> None:
        if self.val_loader is None:
            return
        self.model.eval()
        batch = next(iter(self.val_loader))
        inputs, outputs, losses = self.process_batch(batch)
        self.log("val", inputs, outputs, losses)
        self.model.train()

    def log(self, mode: str, inputs: dict, outputs: dict, losses: dict) -> None:
        """Scalars and images (colour, disparity, hint, where hints won) to tensorboard."""
        writer = self.writers[mode]
        step = self.state.step
        writer.add_scalar("loss", float(losses["loss"].detach()), step)
        writer.add_scalar("learning_rate", self.optimizer.param_groups[0]["lr"], step)
        for s in self.opt.scales:
            writer.add_scalar(f"loss/{s}", float(losses[("loss", s)]), step)
            if ("hint_loss", s) in losses:
                writer.add_scalar(f"hint_loss/{s}", float(losses[("hint_loss", s)]), step)
        j = 0
        writer.add_image("color_0", inputs[("color", 0, 0)][j].cpu(), step)
        disp = outputs[("disp", 0)][j]
        writer.add_image("disp_0", (disp / (disp.max() + 1e-7)).cpu(), step)
        if "depth_hint" in inputs:
            hint = inputs["depth_hint"][j]
            writer.add_image("depth_hint", (hint / (hint.max() + 1e-7)).cpu(), step)
            writer.add_image("hint_mask_0", losses[("hint_mask", self.opt.scales[0])][j].cpu(), step)
        writer.add_image("reprojection_mask_0", losses[("reprojection_mask", self.opt.scales[0])][j].cpu(), step)


def train(opt) -> dict:
    """Build a Trainer from options and run it."""
    return Trainer(opt).train()
