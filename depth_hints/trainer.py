"""The training loop: batches in, losses out, optimiser, logging, checkpoints. No math here:
the objective lives in objective.py, the networks in model.py.

Under torchrun every process runs a Trainer on its share of the data (DistributedDataParallel);
process-group, sampler and signal plumbing live in distributed.py. Logging, progress and
checkpoints happen on rank 0 only, nothing lives at module level.
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
from . import (allocator, augment, checkpoints, compiling, distributed, lr_schedule, objective,
               options as options_module)
from .hint_files import existing_hint_size, verify_hint_files
from .model import DepthHintsModel
from .splits import read_split_file, split_file


class TrainingError(DepthHintsError, RuntimeError):
    """Something found before or during training that stops it; the message says the fix."""


@dataclass
class TrainState:
    """Where a run stands; saved with every checkpoint for a true resume."""
    epoch: int = 0  # next epoch to run (the one in progress after a mid-epoch save)
    step: int = 0   # optimiser steps taken
    # samples of `epoch` already trained on, all processes together: a mid-epoch resume skips
    # them, whatever its number of processes and batch size
    samples_in_epoch: int = 0


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
    from .cache import for_training
    cache = for_training(opt)
    made = []
    for name, is_train in (("train_files.txt", True), ("val_files.txt", False)):
        samples = read_split_file(split_file(opt.split, name),
                                  named_frames=datasets.layout_class(opt.dataset).named_frames)
        made.append(cls(opt.data_path, samples, opt.height, opt.width, opt.frame_ids,
                        num_scales=4, is_train=is_train, img_ext=img_ext,
                        use_depth_hints=opt.use_depth_hints, depth_hint_path=opt.depth_hint_path,
                        augment_on=augment.resolve_augment_on(getattr(opt, "augment_on", "auto")),
                        cache=cache,
                        **extra))
    return made[0], made[1]


def check_dataset(dataset, name: str, use_depth_hints: bool, depth_hint_path: str,
                  split_path=None, siblings=()) -> None:
    """Fail before training when files are missing or the first sample does not load.

    With hints, every hint file's .npy header is read (``hint_files.verify_hint_files``,
    header-only: the precompute's --verify without reading the depths): a truncated, non-float
    or wrongly shaped file stops training here; depths are checked (finite, non-negative)
    when each file is loaded. The precompute command suggested carries the user's flags: the
    dataset, --png, ``split_path`` as --filenames and the size of the hints that exist already
    (in this set or ``siblings``, e.g. the training set when checking validation), else the
    training size."""
    if not os.path.isdir(dataset.data_path):
        raise TrainingError(f"--data_path {dataset.data_path!r} does not exist.")
    missing = dataset.missing_files()

    def precompute_command() -> str:
        paths = (d.hint_path(s) for d in (dataset, *siblings) for s in d.samples)
        return options_module.precompute_command(
            dataset.data_path, depth_hint_path, dataset.layout.name, split_path,
            dataset.img_ext == ".png", existing_hint_size(paths) or (dataset.height, dataset.width),
            getattr(dataset, "sceneflow_pass", "clean"))

    if missing:
        hints = [m for m in missing if m.endswith(".npy")]
        fix = (f" Precompute hints with `{precompute_command()}` (or fix --depth_hint_path)."
               if hints else " Check --data_path, --png and the split.")
        raise TrainingError(f"{name}: {len(missing)}+ missing files, e.g. {missing[0]}.{fix}")
    if use_depth_hints:
        checked = verify_hint_files([dataset.hint_path(s) for s in dataset.samples],
                                    header_only=True, threads=8)
        if not checked.ok:
            first = checked.problems[0]
            raise TrainingError(f"{name}: {len(checked.problems)} of {checked.total} hint files "
                                f"are unreadable, e.g. {first.status}: {first.message} "
                                f"`{precompute_command()}` replaces them (add --verify to list "
                                f"them all).")
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
                           opt.scales, opt.pose_model_type, opt.pose_model_input, opt.predictive_mask,
                           opt.init_depth, opt.min_depth, opt.max_depth)


def latest_checkpoint(models_dir: str) -> str | None:
    """The complete checkpoint with the largest N: weights_N, or weights_N.old where a save
    replacing weights_N was stopped between its two renames (checkpoints.save_weights_folder);
    weights_N.tmp (possibly half-written) never. None when there is none."""
    if not os.path.isdir(models_dir):
        return None
    found = [(int(m.group(1)), not m.group(2), d) for d in os.listdir(models_dir)
             if (m := re.fullmatch(checkpoints.COMPLETE_CHECKPOINT_PATTERN, d))]
    return os.path.join(models_dir, max(found)[2]) if found else None


def loader_workers(requested: int, cores: int, processes_per_machine: int = 1) -> int:
    """DataLoader worker processes: --num_workers (monodepth2's default 12), but no more than
    this process's share of the cores less one for the step itself, and at least one when
    any were asked for. On a 2-core machine: 1; 16 cores: 12; 16 cores, 4 processes: 3.
    More workers than that only compete with the step for the same cores."""
    if requested <= 0:
        return 0
    share = max(1, cores // max(1, processes_per_machine))
    return max(1, min(requested, share - 1))


def worker_init(worker_id: int) -> None:
    """DataLoader worker start: one OpenCV thread per worker (the workers are the parallelism),
    and the scheduling priority DH_LOADER_NICE adds (default 0: none). At the same priority the
    worker runs while the step's OpenMP threads wait at their barriers; lowered (nice 10) it was
    starved by their spinning and the step waited for its batch: on a quiet 2-core machine the
    step with loading over the step without was 1.40-1.50 at nice 10, 1.05-1.06 at nice 0
    (320x96, scripts/benchmark_train.py). On a machine shared with other jobs a positive value
    may keep the loader from preempting the step.

    The preemption signals are ignored here: torchrun (os.killpg) and SLURM send them to the
    workers too, and a worker that dies of one fails the step in progress; the main process
    alone handles them (distributed.PreemptionFlag: finish the step, save, exit 0)."""
    import signal
    for signum in distributed.PREEMPTION_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    import cv2
    cv2.setNumThreads(0)
    nice = int(os.environ.get("DH_LOADER_NICE", "0"))
    if nice and hasattr(os, "nice"):
        os.nice(nice)


def choose_channels_last(opt, device) -> bool:
    """channels-last where it is faster: on for CUDA, off on the CPU (25 % slower there on a
    2-core AVX2 machine, scripts/benchmark_train.py); --channels_last / --no_channels_last win."""
    if opt.channels_last or opt.no_channels_last:
        return bool(opt.channels_last)
    return device.type == "cuda"


def autocast_dtype(opt, device):
    """torch dtype of the networks' autocast (None: float32 throughout); --bf16 on a GPU
    without bfloat16 is an error naming --fp16, --fp16 off a GPU one naming --bf16 (refused
    rather than warned: a warning scrolls by in a batch log while the job runs several times
    slower than in float32: 17x a step at 320x96 on a 2-core AVX-512 EPYC, 4x in the issue)."""
    if opt.bf16:
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise TrainingError(f"--bf16: {torch.cuda.get_device_name(device)} has no bfloat16 "
                                f"support; use --fp16 (float16 with gradient scaling) instead.")
        return torch.bfloat16
    if opt.fp16:
        if device.type != "cuda":
            raise TrainingError(f"--fp16 on the {device.type}: float16 autocast is made for GPUs "
                                f"and runs several times slower than float32 here (4x and 17x "
                                f"a step on two test CPUs); drop --fp16, or use --bf16 on a CPU "
                                f"with bfloat16 support (AVX512-BF16, AMX).")
        return torch.float16
    return None


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

    def __init__(self, opt, dist: distributed.DistContext | None = None):
        self.opt = opt
        self.dist = dist or distributed.DistContext(device=options_module.device_from(opt.no_cuda))
        self.is_main = self.dist.is_main
        self.device = self.dist.device
        if opt.compile:
            compiling.check_compiler(self.device)  # before any work: never a silent fallback
        if self.device.type == "cpu":
            allocator.keep_freed_memory()  # no page faults for every new full-resolution map
        self.channels_last = choose_channels_last(opt, self.device)
        self.amp_dtype = autocast_dtype(opt, self.device)
        self.log_path = os.path.join(opt.log_dir, opt.model_name)
        self.models_dir = os.path.join(self.log_path, "models")
        seed_everything(opt.seed)  # the same on every rank: identical initial weights

        self.train_set, self.val_set = build_datasets(opt)
        check_dataset(self.train_set, "training split", opt.use_depth_hints, opt.depth_hint_path,
                      split_file(opt.split, "train_files.txt"), siblings=(self.val_set,))
        if not opt.no_val:
            check_dataset(self.val_set, "validation split (or pass --no_val)", opt.use_depth_hints,
                          opt.depth_hint_path, split_file(opt.split, "val_files.txt"),
                          siblings=(self.train_set,))
        self.metric_scale = training_metric_scale(self.train_set, opt.use_stereo, self.is_main)
        self.loss_cfg = objective.LossConfig.from_options(opt)
        with distributed.node_leader_first(self.dist):  # ImageNet weights: one download per machine
            self.model = build_model(opt)
        if opt.sync_bn and self.dist.is_distributed:
            self.model = distributed.convert_sync_batchnorm(self.model, self.device)
        self.model = self.model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # Every parameter, also the encoders' frozen (unused) fc heads: adam.pth keeps
        # monodepth2's parameter order; frozen ones get no gradient and no update.
        self.optimizer = torch.optim.Adam(self.model.parameters(), opt.learning_rate)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, opt.scheduler_step_size, 0.1)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=bool(opt.fp16))
        self.state = TrainState()
        self.data_seed = distributed.broadcast_seed(self.dist, opt.seed)
        self.resumed_rng = None

        if opt.resume:
            self.resume()
        elif opt.load_weights_folder:
            self.load_weights(opt.load_weights_folder, opt.models_to_load)
        # Each rank its own augmentation stream (restored exactly on a resume).
        distributed.seed_process(self.data_seed, self.dist.rank)
        if self.resumed_rng is not None:
            distributed.set_rng_state(self.resumed_rng)

        # The module that trains: DDP under torchrun; self.model stays the bare networks
        # (saving, validation on rank 0 without collectives, tests).
        self.train_model = self.model
        self.training_losses = objective.training_losses
        if opt.compile:  # the training step only (compiling.py): validation stays eager
            self.train_model = compiling.compile_networks(self.model)
            self.training_losses = compiling.compile_objective()
        self.compile_clock = compiling.FirstStepClock(opt.compile, self.is_main)
        if self.dist.is_distributed:
            from torch.nn.parallel import DistributedDataParallel
            self.train_model = DistributedDataParallel(
                self.train_model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

        self.train_sampler = distributed.ResumableSampler(self.train_set, self.dist, self.data_seed)
        self.steps_per_epoch = self.train_sampler.num_samples // opt.batch_size
        self.global_batch = opt.batch_size * self.dist.world_size
        if self.steps_per_epoch == 0:
            raise TrainingError(f"The training split has {len(self.train_set)} samples, fewer than "
                                f"--batch_size {opt.batch_size} per process "
                                f"(x {self.dist.world_size} processes).")
        generator = torch.Generator().manual_seed(self.data_seed + self.dist.rank)
        self.num_workers = loader_workers(opt.num_workers, options_module.usable_cores(),
                                          int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        self.train_loader = DataLoader(
            self.train_set, opt.batch_size, sampler=self.train_sampler,
            num_workers=self.num_workers, pin_memory=self.device.type == "cuda", drop_last=True,
            persistent_workers=self.num_workers > 0, generator=generator,
            worker_init_fn=worker_init if self.num_workers > 0 else None)
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
            self.print_setup()

    def print_setup(self) -> None:
        """One line: device, processes, per-process and global batch, precision."""
        d, opt = self.dist, self.opt
        precision = "bf16 autocast" if opt.bf16 else "fp16 autocast + GradScaler" if opt.fp16 else "float32"
        print(f"training on {self.device.type}"
              f"{f' ({torch.cuda.get_device_name(self.device)})' if self.device.type == 'cuda' else ''}"
              f": {d.world_size} process{'es' if d.world_size > 1 else ''} x batch {opt.batch_size}"
              f" = global batch {d.world_size * opt.batch_size}, learning rate {opt.learning_rate:g}"
              f" (not scaled), {precision}, channels_last={self.channels_last}, "
              f"{self.num_workers} loader worker{'s' * (self.num_workers != 1)}"
              f"{', SyncBatchNorm' if opt.sync_bn and d.is_distributed else ''}"
              f"{', torch.compile (training step)' if opt.compile else ''}")

    # -- checkpoints --------------------------------------------------------------------------
    def recorded(self) -> dict:
        """What the run records beside its options: the metric factor of its rig (None when
        the training set mixes rigs)."""
        return {checkpoints.METRIC_SCALE_KEY: self.metric_scale}

    def load_weights(self, folder: str, names) -> None:
        """Load the named networks from a weights folder (fine-tuning); missing files and tensors
        that do not fit are skipped with a note, as monodepth2 does for e.g. a depth-only folder."""
        folder = os.path.expanduser(folder)
        if not os.path.isdir(folder):
            raise TrainingError(f"--load_weights_folder {folder!r} does not exist.")
        if self.is_main:
            print(f"loading weights from {folder}: "
                  f"{', '.join(n for n in names if n in self.model.nets) or 'none of --models_to_load'}")
        for name in names:
            if name not in self.model.nets:
                continue
            if not os.path.isfile(os.path.join(folder, f"{name}.pth")):
                print(f"note: {folder} has no {name}.pth; {name} keeps its initialisation")
                continue
            checkpoints.load_into(self.model.nets[name], folder, name)

    def save(self, epoch: int) -> str | None:
        """Write weights_<epoch> (rank 0; every rank must call: their RNG states are gathered)."""
        rng = distributed.gather(self.dist, distributed.rng_state())
        if not self.is_main:
            return None
        folder = os.path.join(self.models_dir, f"weights_{epoch}")
        checkpoints.save_weights_folder(
            folder, self.model.named_networks(), self.opt.height, self.opt.width, self.opt.use_stereo,
            optimizer=self.optimizer,
            train_state={"epoch": self.state.epoch, "step": self.state.step,
                         "samples_in_epoch": self.state.samples_in_epoch,
                         # informational (this layout's batches); samples_in_epoch decides
                         "batch_in_epoch": self.state.samples_in_epoch // self.global_batch,
                         "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                         "data_seed": self.data_seed, "world_size": self.dist.world_size,
                         "batch_size": self.opt.batch_size, "rng": rng,
                         "torch_rng": torch.get_rng_state()},
            options={**options_module.to_json_dict(self.opt), **self.recorded()})
        return folder

    def resume(self) -> None:
        folder = latest_checkpoint(self.models_dir)
        if folder is None:
            raise TrainingError(f"--resume: no weights_N folder in {self.models_dir}; start without "
                                f"--resume (or fix --log_dir/--model_name).")
        for name in self.model.nets:
            checkpoints.load_into(self.model.nets[name], folder, name, strict=True)
        self.optimizer.load_state_dict(checkpoints.load_state(folder, "adam"))
        state = checkpoints.load_state(folder, "train_state")
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):  # a run saved without --fp16 holds an empty (disabled) state
            self.scaler.load_state_dict(state["scaler"])
        saved_world, saved_batch = state.get("world_size", 1), state.get("batch_size", self.opt.batch_size)
        # checkpoints from before samples were counted hold the position in their batches
        samples = state.get("samples_in_epoch",
                            state.get("batch_in_epoch", 0) * saved_batch * saved_world)
        same_layout = saved_world == self.dist.world_size and saved_batch == self.opt.batch_size
        if "data_seed" in state:
            self.data_seed = state["data_seed"]
        if same_layout and "rng" in state:
            self.resumed_rng = state["rng"][self.dist.rank]
        elif "torch_rng" in state and self.dist.world_size == 1:
            self.resumed_rng = {"torch": state["torch_rng"]}
        if samples and not same_layout and self.is_main:
            print(f"note: {folder} was saved mid-epoch by {saved_world} x batch {saved_batch}; "
                  f"{self.dist.world_size} x batch {self.opt.batch_size} continue epoch "
                  f"{state['epoch']} after the same {samples} samples (new augmentation draws)")
        self.state = TrainState(epoch=state["epoch"], step=state["step"], samples_in_epoch=samples)
        if self.is_main:
            print(f"resumed from {folder}: epoch {self.state.epoch}, step {self.state.step}"
                  f"{f', {samples} samples of the epoch done' if samples else ''}")

    # -- the loop -----------------------------------------------------------------------------
    def inputs_on_device(self, batch: dict) -> dict:
        """A loader batch as the objective reads it, on the training device: compact batches
        (uint8 + augmentation parameters) are built there (augment.py), others copied."""
        if augment.is_compact(batch):
            return augment.build_inputs(batch, self.device, self.loss_cfg.scales,
                                        self.loss_cfg.v1_multiscale, self.channels_last)
        return to_device(batch, self.device, self.channels_last)

    def process_batch(self, batch: dict, model=None):
        """Forward and loss of one batch through ``model`` (default: the training module and
        the training objective, compiled with --compile; otherwise the eager objective)."""
        inputs = self.inputs_on_device(batch)
        training_losses = self.training_losses if model is None else objective.training_losses
        model = model or self.train_model
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            outputs = model(inputs)
        if self.amp_dtype is not None:  # the objective runs in float32
            outputs = {key: value.float() for key, value in outputs.items()}
        losses = training_losses(inputs, outputs, self.loss_cfg)
        return inputs, outputs, losses

    def train(self) -> dict:
        """Run the remaining epochs (or until --num_steps, or a preemption signal); returns a
        summary. Every rank runs this; they agree on stopping after each step."""
        with distributed.PreemptionFlag() as preemption:
            return self._train(preemption)

    def batches_left_in_epoch(self) -> int:
        """Batches this process has left in the current epoch (sets the sampler to it)."""
        self.train_sampler.set_epoch(self.state.epoch)
        self.train_sampler.set_start(self.state.samples_in_epoch)
        return len(self.train_sampler) // self.opt.batch_size

    def _train(self, preemption) -> dict:
        from tqdm import tqdm
        opt = self.opt
        history = []
        start = time.time()
        # The epochs decide the end (a resume on another layout included); --num_steps, when
        # set, can end the run earlier.
        total_steps = self.state.step
        if self.state.epoch < opt.num_epochs:
            total_steps += (self.batches_left_in_epoch()
                            + (opt.num_epochs - self.state.epoch - 1) * self.steps_per_epoch)
        if opt.num_steps:
            total_steps = min(total_steps, opt.num_steps)
        bar = tqdm(total=total_steps, initial=min(self.state.step, total_steps), disable=not self.is_main,
                   desc=opt.model_name, unit="step", dynamic_ncols=True)
        stop = bool(opt.num_steps) and self.state.step >= opt.num_steps
        preempted = False
        while self.state.epoch < opt.num_epochs and not stop:
            self.model.train()
            batches = self.batches_left_in_epoch()
            taken = 0
            for batch in self.train_loader:
                inputs, outputs, losses = self.step(batch)
                loss, preempted = distributed.agree(self.dist, float(losses["loss"].detach()),
                                                    preemption.requested)
                if not np.isfinite(loss):
                    raise TrainingError(f"Loss became {loss} at step {self.state.step}; lower "
                                        f"--learning_rate or check the inputs.")
                history.append(loss)
                taken += 1
                bar.update(1)
                bar.set_postfix(epoch=self.state.epoch, loss=f"{loss:.4f}")
                if self.is_main and (self.state.step % opt.log_frequency == 0 or self.state.step == 1):
                    self.log("train", inputs, outputs, losses)
                    self.validate()
                stop = preempted or (bool(opt.num_steps) and self.state.step >= opt.num_steps)
                if stop:
                    break
                if opt.save_every_steps and self.state.step % opt.save_every_steps == 0 \
                        and taken < batches:
                    self.save(self.state.epoch)  # mid-epoch: resumable from this batch
            epoch = self.state.epoch
            periodic = bool(opt.save_every_steps) and self.state.step % opt.save_every_steps == 0
            if taken >= batches:  # the epoch is complete
                self.scheduler.step()  # decays after epoch `scheduler_step_size` has finished
                self.state.epoch += 1
                self.state.samples_in_epoch = 0
            if (stop or periodic or self.state.epoch % opt.save_frequency == 0
                    or self.state.epoch == opt.num_epochs):
                # weights_<epoch>; a run stopped mid-epoch saves into the epoch in progress,
                # with the sampler position, and a resume continues from the next batch.
                self.save(epoch)
        # No rank returns before rank 0's last checkpoint is on disk: on a preemption the
        # others' agents would exit first and srun --kill-on-bad-exit kill rank 0 mid-write.
        distributed.barrier(self.dist)
        bar.close()
        if preempted and self.is_main:
            print(f"{preemption.received or 'a signal on another rank'}: saved step "
                  f"{self.state.step} in {self.models_dir}; continue with --resume")
        if self.writers:
            for w in self.writers.values():
                w.close()
        return {"steps": self.state.step, "epochs": self.state.epoch, "losses": history,
                "seconds": time.time() - start, "models_dir": self.models_dir,
                "preempted": preempted, "is_main": self.is_main}

    def step(self, batch: dict):
        """One optimiser step on a batch (gradients averaged over ranks by DDP)."""
        with self.compile_clock:  # with --compile, prints the first step's compile time
            inputs, outputs, losses = self.process_batch(batch)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(losses["loss"]).backward()
        with lr_schedule.warmed_up(self.optimizer, self.state.step, self.opt.lr_warmup_steps):
            self.scaler.step(self.optimizer)
        self.scaler.update()
        self.state.step += 1
        self.state.samples_in_epoch += self.global_batch
        return inputs, outputs, losses

    @torch.no_grad()
    def validate(self) -> None:
        """One validation batch on rank 0 through the bare networks: no collective calls."""
        if self.val_loader is None:
            return
        self.model.eval()
        batch = next(iter(self.val_loader))
        inputs, outputs, losses = self.process_batch(batch, model=self.model)
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
    """Build a Trainer from options and run it; under torchrun, in the process group it
    describes (a plain run has none)."""
    ctx = distributed.setup(options_module.device_from(opt.no_cuda))
    try:
        return Trainer(opt, ctx).train()
    finally:
        distributed.teardown(ctx)
