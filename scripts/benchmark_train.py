"""Training throughput (images/s) for one configuration, with and without data loading.

    python scripts/benchmark_train.py                 # ResNet18, 640x192, batch 4, stereo + hints
    python scripts/benchmark_train.py --height 96 --width 320 --steps 10 --no_hints
    torchrun --nproc_per_node 2 scripts/benchmark_train.py --no_cuda   # DDP: per process and total
    python scripts/benchmark_train.py --compile       # torch.compile against eager, one run

Data comes from a small synthetic world in KITTI's layout and image size (1242x375, hints at
1024x320) generated into --data_path if absent (or point --data_path/--split at real KITTI). Prints median
seconds per step and images/s; the floor (the networks' forward + backward alone, timed
interleaved with the step on the same batch) and the step's ratio to it; the step with data
loading over the step without; and the loader's per-sample decode / resize costs;
under torchrun, images/s per process and in total (all processes), from rank 0. --json writes
the figures to a file. With --compile the step is trainer.step with the compiled networks and
objective; also printed: the compile time (the first step), the eager step (the same weights,
optimiser and batch through the bare networks and the eager objective) interleaved with it,
both over the eager and the compiled networks floor, the objective alone (forward + backward
from fixed network outputs) compiled and eager over the eager floor, and the steps after which
compiling pays back.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch


def _prepare_world(root: str) -> str:
    """Generate a small synthetic world (once) as real KITTI is stored: 1242x375 images, which
    the loader resizes, and hints at the paper's 1024x320; returns its split folder."""
    from depth_hints import synthetic
    from depth_hints.precompute import precompute
    from depth_hints.options import parse_precompute
    summary = synthetic.write_synthetic_kitti(root, num_drives=2, frames_per_drive=10, width=1242,
                                              height=375, seed=0)
    split = str(summary["split_dir"])
    precompute(parse_precompute(["--data_path", root, "--filenames", os.path.join(split, "train_files.txt"),
                                 "--png", "--height", "320", "--width", "1024", "--num_workers", "0"]),
               progress=False, verbose=False)
    return split


def loading_costs(dataset, samples: int = 4) -> dict:
    """Median seconds per training sample of the loader's parts, one thread: PNG/JPEG decode of
    one image, its LANCZOS resize pyramid, and the whole ``__getitem__`` (all frames, colour
    augmentation, hint)."""
    from PIL import Image
    from depth_hints.images import load_rgb
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    decode, resize, whole = [], [], []
    try:
        for i in range(min(samples, len(dataset))):
            s = dataset.samples[i]
            path = dataset.image_path(s.folder, s.frame_index, s.side)
            start = time.perf_counter()
            img = load_rgb(path)
            decode.append(time.perf_counter() - start)
            start = time.perf_counter()
            for scale in range(dataset.num_scales):
                img = img.resize((dataset.width // 2 ** scale, dataset.height // 2 ** scale), Image.LANCZOS)
            resize.append(time.perf_counter() - start)
            start = time.perf_counter()
            dataset[i]
            whole.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return {"decode 1 image": statistics.median(decode), "resize pyramid 1 image": statistics.median(resize),
            "whole sample": statistics.median(whole)}


def compiled_comparison(trainer, batch, networks_only, sync) -> dict:
    """Timers of the eager step, the eager floor and the objective alone (compiled and eager),
    for --compile: {name: callable}. The eager step is trainer.step through the bare networks
    and the eager objective, with the same optimiser and weights."""
    from depth_hints import objective
    from depth_hints.trainer import to_device

    def eager_step():
        _, _, losses = trainer.process_batch(batch, model=trainer.model)
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.scaler.scale(losses["loss"]).backward()
        trainer.scaler.step(trainer.optimizer)
        trainer.scaler.update()
        sync()

    inputs = to_device(batch, trainer.device, trainer.channels_last)
    with torch.no_grad(), torch.autocast(trainer.device.type, dtype=trainer.amp_dtype or torch.float32,
                                         enabled=trainer.amp_dtype is not None):
        fixed_outputs = trainer.model(inputs)
    fixed_outputs = {k: v.float().requires_grad_(v.is_floating_point()) for k, v in fixed_outputs.items()}

    def objective_only(losses_fn):
        def run():
            outputs = dict(fixed_outputs)
            losses_fn(inputs, outputs, trainer.loss_cfg)["loss"].backward()
            for value in fixed_outputs.values():
                value.grad = None
            sync()
        return run

    return {"eager step": eager_step, "eager floor": lambda: networks_only(batch, trainer.model),
            "objective compiled": objective_only(trainer.training_losses),
            "objective eager": objective_only(objective.training_losses)}


def report_compiled(compile_s: float, medians: dict | None) -> dict:
    """Print and return the --compile figures (medians: seconds per timer, None under torchrun)."""
    print(f"  --compile: compile time (first step, forward + backward): {compile_s:.1f} s")
    figures = {"compile_seconds": compile_s}
    if medians is None:
        print("  --compile: no eager comparison under torchrun (the bare networks skip the all-reduce)")
        return figures
    step, eager, floor, compiled_floor = (medians["step"], medians["eager step"], medians["eager floor"],
                                          medians["floor"])
    saved = eager - step
    payback = compile_s / saved if saved > 0 else None
    figures.update({
        "compiled_step_s": step, "eager_step_s": eager, "eager_floor_s": floor,
        "compiled_floor_s": compiled_floor, "compiled_step_over_eager_floor": step / floor,
        "eager_step_over_eager_floor": eager / floor, "compiled_step_over_compiled_floor": step / compiled_floor,
        "objective_compiled_over_eager_floor": medians["objective compiled"] / floor,
        "objective_eager_over_eager_floor": medians["objective eager"] / floor,
        "payback_steps": payback})
    print(f"  step / eager networks floor ({floor:.3f} s): compiled {step / floor:.2f} "
          f"({step:.3f} s), eager {eager / floor:.2f} ({eager:.3f} s) (target compiled <= 1.10)")
    print(f"  compiled step / compiled networks floor ({compiled_floor:.3f} s): {step / compiled_floor:.2f}")
    print(f"  objective fwd + bwd / eager floor: compiled {medians['objective compiled'] / floor:.2f}, "
          f"eager {medians['objective eager'] / floor:.2f} (target <= 0.10)")
    print(f"  compiling pays back after "
          f"{f'{payback:.0f} steps' if payback else 'never (the compiled step is not faster)'}")
    return figures


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_path", default=os.path.join(tempfile.gettempdir(), "depth_hints_bench_kitti_size"))
    p.add_argument("--split", default=None, help="split folder (default: the synthetic world's)")
    p.add_argument("--height", type=int, default=192)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--num_layers", type=int, default=18)
    p.add_argument("--steps", type=int, default=12, help="timed steps (after 3 warm-up steps)")
    p.add_argument("--num_workers", type=int, default=None,
                   help="data loader workers (default: the trainer's default for this machine)")
    p.add_argument("--no_hints", action="store_true")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's). On a loaded shared machine 1 thread "
                        "gives steadier ratios: busy OpenMP threads stall each other")
    p.add_argument("--frame_ids", nargs="+", default=["0"])
    p.add_argument("--no_cuda", action="store_true")
    p.add_argument("--no_channels_last", action="store_true")
    p.add_argument("--channels_last", action="store_true")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the networks")
    p.add_argument("--fp16", action="store_true", help="float16 autocast + GradScaler")
    p.add_argument("--compile", action="store_true",
                   help="train with --compile and time eager against compiled in one run")
    p.add_argument("--json", default=None, help="also write the figures here (rank 0)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from depth_hints import distributed
    from depth_hints.options import device_from, parse_train
    from depth_hints.trainer import Trainer, to_device

    ctx = distributed.setup(device_from(args.no_cuda))
    with distributed.node_leader_first(ctx):  # one process per machine writes the world
        split = args.split or _prepare_world(args.data_path)
    argv_train = ["--data_path", args.data_path, "--split", split, "--png", "--height", str(args.height),
                  "--width", str(args.width), "--batch_size", str(args.batch_size), "--num_layers",
                  str(args.num_layers), "--weights_init", "scratch", "--use_stereo", "--frame_ids",
                  *args.frame_ids, "--no_val",
                  "--log_dir", os.path.join(tempfile.gettempdir(), "depth_hints_bench_logs"),
                  "--model_name", "bench", "--log_frequency", "1000000"]
    if args.num_workers is not None:
        argv_train += ["--num_workers", str(args.num_workers)]
    if not args.no_hints:
        argv_train.append("--use_depth_hints")
    if args.no_cuda:
        argv_train.append("--no_cuda")
    for flag in ("no_channels_last", "channels_last", "bf16", "fp16", "compile"):
        if getattr(args, flag):
            argv_train.append(f"--{flag}")
    trainer = Trainer(parse_train(argv_train), ctx)
    trainer.model.train()
    device = trainer.device

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step(batch):
        trainer.step(batch)  # forward, backward (DDP all-reduce under torchrun), optimiser
        sync()

    def timed(batches):
        times = []
        for i, batch in enumerate(batches):
            start = time.perf_counter()
            step(batch() if callable(batch) else batch)
            if i >= 3:
                times.append(time.perf_counter() - start)
        return statistics.median(times)

    # data loading included: the loader's iterator feeds each step
    loader_iter = iter(trainer.train_loader)

    def next_batch():
        nonlocal loader_iter
        try:
            return next(loader_iter)
        except StopIteration:
            loader_iter = iter(trainer.train_loader)
            return next(loader_iter)
    with_loading = timed([next_batch] * (args.steps + 3))
    fixed = next_batch()

    def networks_only(batch, model=None):
        """The floor: the depth (and pose) networks forward and backward, nothing else
        (default: the training module, compiled with --compile)."""
        inputs = to_device(batch, device, trainer.channels_last)
        with torch.autocast(device.type, dtype=trainer.amp_dtype or torch.float32,
                            enabled=trainer.amp_dtype is not None):
            outputs = (model or trainer.train_model)(inputs)
        sum(v.float().sum() for v in outputs.values() if v.requires_grad).backward()
        trainer.optimizer.zero_grad(set_to_none=True)
        sync()

    # Step and floor interleaved (A/B/A/B) so that load from other jobs hits both alike;
    # with --compile also the eager step and floor (A/B/C/D/...).
    timers = {"step": lambda: step(fixed), "floor": lambda: networks_only(fixed)}
    compare_eager = args.compile and not ctx.is_distributed  # the bare networks skip DDP's all-reduce
    if compare_eager:
        timers.update(compiled_comparison(trainer, fixed, networks_only, sync))
    times = {name: [] for name in timers}
    for i in range(args.steps + 3):
        for name, run in timers.items():
            start = time.perf_counter()
            run()
            if i >= 3:
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    without_loading = medians["step"]
    floor = medians["floor"]
    loading = loading_costs(trainer.train_set) if ctx.is_main else {}

    figures = distributed.gather(ctx, {"with_loading_s": with_loading, "without_loading_s": without_loading,
                                       "floor_s": floor})
    distributed.teardown(ctx)
    if not ctx.is_main:
        return 0
    precision = ", bf16 autocast" if args.bf16 else ", fp16 autocast" if args.fp16 else ""
    config = (f"ResNet{args.num_layers} {args.width}x{args.height} batch {args.batch_size} per process "
              f"frames {' '.join(args.frame_ids)} stereo{' + hints' if not args.no_hints else ''} "
              f"on {device} x {ctx.world_size} process{'es' if ctx.is_distributed else ''} "
              f"({torch.get_num_threads()} threads each, channels_last={trainer.channels_last}{precision}, "
              f"{trainer.num_workers} loader workers), load average {os.getloadavg()[0]:.1f}")
    print(config)
    result = {"config": config, "world_size": ctx.world_size, "batch_size": args.batch_size,
              "device": str(device)}
    for label, key in (("with data loading", "with_loading_s"), ("data loading excluded", "without_loading_s")):
        per_process = [args.batch_size / f[key] for f in figures]
        total = sum(per_process)
        seconds = max(f[key] for f in figures)
        print(f"  {label:22s}: {seconds:.3f} s/step  {total / len(per_process):.2f} images/s per "
              f"process, {total:.2f} images/s in total")
        result[key.replace("_s", "")] = {"seconds_per_step": seconds, "images_per_s_total": total,
                                         "images_per_s_per_process": per_process}
    step_s = max(f["without_loading_s"] for f in figures)
    floor_s = max(f["floor_s"] for f in figures)
    with_s = max(f["with_loading_s"] for f in figures)
    print(f"  networks only (floor) : {floor_s:.3f} s/step  -> step / floor = {step_s / floor_s:.2f} "
          f"(target <= 1.10)")
    print(f"  with loading / without: {with_s / step_s:.2f} (target <= 1.05)")
    print(f"  loading per sample (main process, 1 thread): " + ", ".join(
        f"{k} {v * 1000:.0f} ms" for k, v in loading.items()))
    result.update({"floor_seconds_per_step": floor_s, "step_over_floor": step_s / floor_s,
                   "with_over_without_loading": with_s / step_s, "loading_per_sample_s": loading})
    if args.compile:
        result["compile"] = report_compiled(trainer.compile_clock.seconds, medians if compare_eager else None)
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=2)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
