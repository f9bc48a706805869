"""Running under ``torchrun``: the process group, ranks, the sampler, cross-rank agreement and
preemption signals. Nothing here is training math; a plain ``python train.py`` gets a
one-process context and no process group at all.

PyTorch's own pieces throughout (``init_process_group`` from torchrun's environment,
``DistributedSampler``, ``all_reduce``); the only addition is a CPU stand-in for
``SyncBatchNorm``, which PyTorch supports on GPUs only.
"""
from __future__ import annotations

import contextlib
import os
import random
import signal
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from .errors import DepthHintsError

PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class DistributedError(DepthHintsError, RuntimeError):
    """A torchrun environment that cannot be used; the message says the fix."""


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among ``world_size`` processes and its device."""
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, shows progress and writes files."""
        return self.rank == 0

    @property
    def is_node_leader(self) -> bool:
        """Local rank 0: the one process per machine that fills shared caches."""
        return self.local_rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"environment variable {name}={value!r} is not an integer; "
                               f"launch with torchrun, which sets it.") from None


def setup(device: torch.device) -> DistContext:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*),
    gloo on the CPU and nccl on CUDA, one GPU per local rank; without torchrun a one-process
    context and no group. ``device`` is the device chosen from the flags."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world_size <= 1:
        return DistContext(device=device)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible; "
                f"use --nproc_per_node {torch.cuda.device_count()} (or --no_cuda for CPU processes).")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank, local_rank, world_size, device)


def teardown(ctx: DistContext) -> None:
    """Leave the process group (no-op in a single process)."""
    if ctx.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def node_leader_first(ctx: DistContext):
    """Run the body on each machine's local rank 0 first, then on the others (e.g. a download
    into the torch hub cache: one fetch per machine, the rest read the cache)."""
    if ctx.is_distributed and not ctx.is_node_leader:
        dist.barrier()
    try:
        yield
    finally:
        if ctx.is_distributed and ctx.is_node_leader:
            dist.barrier()


def barrier(ctx: DistContext) -> None:
    """Wait until every rank is here (no-op in a single process)."""
    if ctx.is_distributed:
        dist.barrier(device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)


def broadcast_seed(ctx: DistContext, seed: int | None) -> int:
    """``seed``, or a fresh random one chosen by rank 0 and shared, so that every rank draws
    the same sample order."""
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    if ctx.is_distributed:
        box = [seed]
        dist.broadcast_object_list(box, src=0)
        seed = int(box[0])
    return seed


def agree(ctx: DistContext, loss: float, stop: bool) -> tuple[float, bool]:
    """(mean loss over ranks, any rank asked to stop) from one all_reduce; a non-finite loss on
    any rank makes the mean non-finite, so every rank sees it and stops together."""
    if not ctx.is_distributed:
        return loss, stop
    values = torch.tensor([loss, float(stop)], dtype=torch.float64,
                          device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(values)
    return float(values[0]) / ctx.world_size, bool(values[1] > 0)


def gather(ctx: DistContext, obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank (a list of one without a group)."""
    if not ctx.is_distributed:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


# ----------------------------------------------------------------------------- data order

class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can start part-way into an epoch: after ``set_epoch(e)`` and
    ``set_start(k)`` it skips the first ``k`` samples of epoch ``e``'s global order (the
    samples every rank together has trained on, whatever the number of processes and batch
    size that did it) and shares out the rest, rank r taking every world_size-th from r.
    The order depends on (seed, epoch) only; with ``k = 0`` this is DistributedSampler's own
    split. With one process it is a seeded shuffle."""

    def __init__(self, dataset, ctx: DistContext, seed: int, shuffle: bool = True):
        super().__init__(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=shuffle,
                         seed=seed, drop_last=False)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` samples of the current epoch's global order."""
        self.start = start

    def _remaining(self) -> list:
        """The global order after ``start``, padded (from the order's beginning, as
        DistributedSampler pads) to a multiple of the number of processes."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(self.dataset), generator=g).tolist()
        else:
            order = list(range(len(self.dataset)))
        rest = order[self.start:]
        padding = -len(rest) % self.num_replicas
        if rest and padding:
            rest += (order * (padding // len(order) + 1))[:padding]
        return rest

    def __iter__(self):
        return iter(self._remaining()[self.rank::self.num_replicas])

    def __len__(self) -> int:
        return len(self._remaining()) // self.num_replicas


# ----------------------------------------------------------------------------- RNG state

def seed_process(seed: int, rank: int) -> None:
    """Seed python, numpy and torch for this rank's data stream (augmentation draws): each rank
    gets its own, so flips and jitter differ between processes."""
    value = seed + 1_000_003 * rank
    random.seed(value)
    np.random.seed(value % 2 ** 32)
    torch.manual_seed(value)


def rng_state() -> dict:
    """This process's random generator states (python, numpy, torch CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` returned (keys it lacks are left alone)."""
    if "python" in state:
        random.setstate(state["python"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


# ----------------------------------------------------------------------------- preemption

class PreemptionFlag:
    """Context manager: while active, SIGTERM and SIGUSR1 (what SLURM sends before it stops a
    job) only set ``requested``; the training loop checks it after each step, agrees across
    ranks, saves and exits cleanly. Previous handlers come back on exit."""

    def __init__(self, signals=PREEMPTION_SIGNALS):
        self.signals = signals
        self.requested = False
        self.received = None
        self._previous = {}

    def _handle(self, signum, frame):
        self.requested = True
        self.received = signal.Signals(signum).name

    def __enter__(self):
        import threading
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
        return False


# ----------------------------------------------------------------------------- SyncBatchNorm

class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks, differentiable: the gradient of a sum over ranks is the sum over ranks
    of the gradients (torch.distributed.nn's version of this is deprecated)."""

    @staticmethod
    def forward(ctx, tensor):
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics come from every rank's batch, for the gloo (CPU)
    backend, where ``nn.SyncBatchNorm`` refuses CPU tensors. Per-channel sums, sums of squares
    and counts go through one autograd-aware ``all_reduce``, so the gradient is that of a
    BatchNorm over the global batch. Same parameters, buffers and state-dict keys as
    BatchNorm2d; eval mode and single processes use the plain running statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        xf = x.float()
        dims = (0, 2, 3)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float32, device=x.device)
        stats = _AllReduceSum.apply(torch.cat([xf.sum(dims), (xf * xf).sum(dims), count]))
        c = x.shape[1]
        n = stats[2 * c]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach() * m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1).clamp_min(1)) * m)
        shape = (1, c, 1, 1)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm in ``model`` made synchronous across ranks: ``nn.SyncBatchNorm`` on CUDA,
    ``CPUSyncBatchNorm`` on the CPU. Parameters and buffers are kept (same tensors, same keys)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(module: nn.Module) -> nn.Module:
        if isinstance(module, nn.BatchNorm2d) and not isinstance(module, CPUSyncBatchNorm):
            new = CPUSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                   module.track_running_stats)
            if module.affine:
                new.weight, new.bias = module.weight, module.bias
            if module.track_running_stats:
                new.running_mean, new.running_var = module.running_mean, module.running_var
                new.num_batches_tracked = module.num_batches_tracked
            new.train(module.training)
            return new
        for name, child in module.named_children():
            module.add_module(name, convert(child))
        return module
    return convert(model)
