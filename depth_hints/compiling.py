"""``--compile``: the training step's networks and objective through ``torch.compile``.

Opt-in; eager stays the default. Only the training step is compiled: validation, logging and
checkpoints use the bare networks and the eager objective, so they never recompile, and the
training batch has one shape (the loader drops the last partial batch). Under torchrun the
compiled networks are the module DDP wraps. On CUDA inductor writes Triton kernels (Triton
ships with PyTorch's CUDA wheels); on the CPU it writes C++ and needs a working compiler,
checked up front (``check_compiler``): never a silent fallback to eager.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import torch

from . import objective
from .errors import DepthHintsError

_TRIVIAL_CPP = 'extern "C" int depth_hints_compile_check(int x) { return x + 1; }\n'


class CompileError(DepthHintsError, RuntimeError):
    """--compile cannot work on this machine; the message says what to install."""


def cpu_compiler_candidates() -> list[str]:
    """The C++ compilers inductor tries on the CPU, in its order ($CXX, else g++ / clang++)."""
    from torch._inductor import config
    names = config.cpp.cxx if isinstance(config.cpp.cxx, (list, tuple)) else (config.cpp.cxx,)
    return [name for name in names if name]


def check_compiler(device: torch.device) -> None:
    """Raise CompileError unless torch.compile can generate code for ``device``: on CUDA
    Triton importable, on the CPU a C++ compiler that builds a shared library."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton
        if not has_triton():
            raise CompileError("--compile on CUDA needs Triton, which is missing: install the "
                               "`triton` package matching your PyTorch (pip install triton) "
                               "or train without --compile.")
        return
    if device.type != "cpu":
        return
    fix = ("install one (e.g. `apt-get install g++`, or `conda install -c conda-forge gxx` "
           "and set CXX to it) or train without --compile.")
    tried = cpu_compiler_candidates()
    found = [path for path in map(shutil.which, tried) if path]
    if not found:
        raise CompileError(f"--compile on the CPU needs a C++ compiler and found none "
                           f"({', '.join(tried) or 'g++'} not on PATH, $CXX="
                           f"{os.environ.get('CXX', 'unset')!r}); {fix}")
    problem = _builds_shared_library(found[0])
    if problem:
        raise CompileError(f"--compile on the CPU needs a working C++ compiler; {found[0]} "
                           f"failed on a one-line file ({problem}); {fix}")


def _builds_shared_library(compiler: str) -> str | None:
    """None if ``compiler`` builds a trivial shared library, else its first error line."""
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "check.cpp")
        with open(source, "w") as f:
            f.write(_TRIVIAL_CPP)
        try:
            done = subprocess.run([compiler, "-shared", "-fPIC", source, "-o",
                                   os.path.join(tmp, "check.so")],
                                  capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as e:
            return str(e).splitlines()[0] if str(e) else type(e).__name__
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            return lines[0] if lines else f"exit status {done.returncode}"
    return None


def compile_networks(model: torch.nn.Module) -> torch.nn.Module:
    """The networks' forward compiled (a wrapper sharing ``model``'s parameters; ``model``
    itself stays eager). Under torchrun this is the module DDP wraps."""
    return torch.compile(model)


def compile_objective():
    """``objective.training_losses`` compiled: views, photometric errors and SSIM, the
    selection, the hint loss and the smoothness in one graph, forward and backward."""
    return torch.compile(objective.training_losses)


class FirstStepClock:
    """Times the first training step, where torch.compile compiles (forward and backward),
    and prints it once; a no-op when nothing is compiled."""

    def __init__(self, enabled: bool, verbose: bool = True):
        self.pending = enabled
        self.verbose = verbose
        self.seconds = None
        self._start = None

    def __enter__(self):
        if self.pending:
            self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.pending and exc_type is None:
            self.pending = False
            self.seconds = time.perf_counter() - self._start
            if self.verbose:
                print(f"--compile: the first step compiled the networks and the objective in "
                      f"{self.seconds:.1f} s (later steps reuse them)", flush=True)
        return False
