"""Training throughput (images/s) for one configuration, with and without data loading.

    python scripts/benchmark_train.py                 # ResNet18, 640x192, batch 4, stereo + hints
    python scripts/benchmark_train.py --height 96 --width 320 --steps 10 --no_hints
    torchrun --nproc_per_node 2 scripts/benchmark_train.py --no_cuda   # DDP: per process and total
    python scripts/benchmark_train.py --compile       # torch.compile against eager, one run

Data comes from a small synthetic world in KITTI's layout and image size (1242x375, hints at
1024x320), generated once into a cache folder (default_world_folder(); --data_path without
--split names another, which must be absent, empty or hold that world), or real KITTI with
--data_path and --split. Prints median
seconds per step and images/s; the floor (the networks' forward + backward alone, timed
interleaved with the step on the same batch) and the step's ratio to it; the step with data
loading (the wait for the batch + its step, interleaved) over the step without, and the share
of that spent waiting; the device batch building (--augment_on device) as a fraction of the
floor; the loader's CPU ms per sample and per-sample decode / resize costs; --cache trains
from a training-resolution cache; --loader_table compares the loader decoded and cached;
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


#: the world's config file (write_synthetic_kitti's): a folder holding it holds a world
WORLD_MARKER = "synthetic_kitti.json"


def default_world_folder() -> str:
    """The cache folder of the benchmark's synthetic world, in the temporary directory."""
    from depth_hints.synthetic.scene import WORLD_VERSION  # a new generator, a new folder
    return os.path.join(tempfile.gettempdir(), f"depth_hints_benchmark_world_v{WORLD_VERSION}_1242x375")


def check_world_folder(root: str) -> None:
    """Refuse to write the world into a folder that is not empty and holds no world of an
    earlier run (a mistyped --data_path pointing at real data, say)."""
    from depth_hints.options import OptionsError
    if os.path.isdir(root) and os.listdir(root) and not os.path.isfile(
            os.path.join(root, WORLD_MARKER)):
        raise OptionsError(f"--data_path {root} is not empty and holds no benchmark world: to "
                           f"time your own data there pass --split <split folder> too; without "
                           f"--data_path the synthetic world goes to {default_world_folder()}.")


def _prepare_world(root: str) -> str:
    """Generate a small synthetic world (once) as real KITTI is stored: 1242x375 images, which
    the loader resizes, and hints at the paper's 1024x320; returns its split folder."""
    from depth_hints import synthetic
    from depth_hints.precompute import precompute
    from depth_hints.options import parse_precompute
    check_world_folder(root)
    if not os.path.isfile(os.path.join(root, WORLD_MARKER)):
        print(f"benchmark_train: writing the synthetic world (2 drives x 10 stereo frames at "
              f"1242x375, ground truth, hints at 1024x320) into {root}; later runs reuse it",
              flush=True)
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


def loader_cpu_ms(dataset, samples: int = 6) -> float:
    """Median CPU milliseconds of one ``dataset[i]`` in this process (1 torch / OpenCV thread,
    as in a loader worker): what a loader worker spends per sample."""
    import cv2
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    cv2.setNumThreads(0)
    times = []
    try:
        for i in range(samples + 1):
            start = time.process_time()
            dataset[i % len(dataset)]
            if i:
                times.append(time.process_time() - start)
    finally:
        torch.set_num_threads(previous)
    return statistics.median(times) * 1000


def loader_table(root: str, split: str, sizes, samples: int = 6) -> list:
    """Loader CPU ms per sample, decoded (PIL path: the original; device path) against cached,
    for stereo + hints (frames 0 s) and mono + stereo + hints (0 -1 1 s), at each (w, h)."""
    import datasets
    from depth_hints import cache
    from depth_hints.splits import read_split_file, split_file
    rows = []
    for width, height in sizes:
        spec = cache.CacheSpec(root, split, height, width, "kitti", ".png", True)
        cache_dir = os.path.join(tempfile.gettempdir(), "depth_hints_bench_cache", f"{width}x{height}")
        cache.build(spec, cache_dir, overwrite=True, progress=False)
        opened = cache.open_cache(spec, cache_dir)
        samples_list = read_split_file(split_file(split, "train_files.txt"))
        for label, frames in (("stereo", (0, "s")), ("mono+stereo", (0, -1, 1, "s"))):
            usable = [s for s in samples_list if 0 < s.frame_index < 9]
            row = {"size": f"{width}x{height}", "frames": label}
            for name, augment_on, use_cache in (("decoded, cpu augmentation", "cpu", None),
                                                ("decoded, device augmentation", "device", None),
                                                ("cached, device augmentation", "device", opened)):
                ds = datasets.KITTIRAWDataset(root, usable, height, width, frames, 4, is_train=True,
                                              img_ext=".png", use_depth_hints=True, augment_on=augment_on,
                                              cache=use_cache)
                ds.color_aug_probability = 1.0  # the worst case: every sample jittered
                row[name] = loader_cpu_ms(ds, samples)
            rows.append(row)
            print(f"  loader CPU ms/sample {row['size']} {label:11s}: " + ", ".join(
                f"{k} {v:.1f}" for k, v in row.items() if k not in ("size", "frames")))
    return rows
def compiled_comparison(trainer, batch, networks_only, sync, build) -> dict:
    """Timers of the eager step, the eager floor and the objective alone (compiled and eager),
    for --compile: {name: callable}. The eager step is trainer.step through the bare networks
    and the eager objective, with the same optimiser and weights."""
    from depth_hints import objective

    def eager_step():
        _, _, losses = trainer.process_batch(batch, model=trainer.model)
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.scaler.scale(losses["loss"]).backward()
        trainer.scaler.step(trainer.optimizer)
        trainer.scaler.update()
        sync()

    inputs = build(batch)
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
    """Time the training step; a bad input is one line on stderr and exit code 2."""
    from depth_hints.errors import run_entry_point
    return run_entry_point(lambda: _main(argv), "benchmark_train.py")


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_path", default=None,
                   help="with --split: real data to time; without: where the synthetic world "
                        "goes (absent, empty or an earlier world; default "
                        f"{default_world_folder()})")
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
    p.add_argument("--augment_on", default="auto", choices=("auto", "cpu", "device"))
    p.add_argument("--cache", action="store_true",
                   help="train from a training-resolution cache of the world (built in the temp folder)")
    p.add_argument("--loader_table", action="store_true",
                   help="only the loader's CPU ms per sample, decoded vs cached, at 640x192 and 1024x320")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from depth_hints import distributed
    from depth_hints.options import device_from, parse_train
    from depth_hints import augment
    from depth_hints.trainer import Trainer

    data_path = args.data_path or default_world_folder()
    if not args.split:
        check_world_folder(data_path)  # before any process starts writing
    ctx = distributed.setup(device_from(args.no_cuda))
    with distributed.node_leader_first(ctx):  # one process per machine writes the world
        split = args.split or _prepare_world(data_path)
    if args.loader_table:
        rows = loader_table(data_path, split, ((640, 192), (1024, 320)))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=2)
        return 0
    argv_train = ["--data_path", data_path, "--split", split, "--png", "--height", str(args.height),
                  "--width", str(args.width), "--batch_size", str(args.batch_size), "--num_layers",
                  str(args.num_layers), "--weights_init", "scratch", "--use_stereo", "--frame_ids",
                  *args.frame_ids, "--no_val",
                  "--log_dir", os.path.join(tempfile.gettempdir(), "depth_hints_bench_logs"),
                  "--model_name", "bench", "--log_frequency", "1000000"]
    if args.num_workers is not None:
        argv_train += ["--num_workers", str(args.num_workers)]
    argv_train += ["--augment_on", args.augment_on]
    if args.cache:
        from depth_hints import cache
        cache_dir = os.path.join(tempfile.gettempdir(), "depth_hints_bench_cache", f"{args.width}x{args.height}")
        with distributed.node_leader_first(ctx):
            if ctx.is_main:
                cache.build(cache.CacheSpec(data_path, split, args.height, args.width, "kitti", ".png",
                                            not args.no_hints), cache_dir, overwrite=True, progress=False)
        argv_train += ["--cache_dir", cache_dir]
    else:
        argv_train.append("--no_cache")
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
    for _ in range(3):  # warm-up: workers started, first batches through
        step(next_batch())
    fixed = next_batch()

    def build(batch):
        """The batch on the device as the objective reads it (device augmentation included)."""
        return trainer.inputs_on_device(batch)

    def networks_only(batch, model=None):
        """The floor: the depth (and pose) networks forward and backward, nothing else
        (default: the training module, compiled with --compile)."""
        inputs = build(batch)
        with torch.autocast(device.type, dtype=trainer.amp_dtype or torch.float32,
                            enabled=trainer.amp_dtype is not None):
            outputs = (model or trainer.train_model)(inputs)
        sum(v.float().sum() for v in outputs.values() if v.requires_grad).backward()
        trainer.optimizer.zero_grad(set_to_none=True)
        sync()

    # Step, floor, device augmentation and the step fed by the loader interleaved
    # (A/B/C/D/A/B/C/D) so that load from other jobs hits them alike; each cost is a ratio to
    # the floor of the same run. (Wait for the batch + its step) over the step on the fixed
    # batch is "with loading / without"; the wait alone is the data stall. With --compile also
    # the eager step, the eager floor and the objective alone, compiled and eager.
    jittered = dict(fixed)
    if augment.is_compact(fixed):
        jittered[augment.DO_JITTER] = torch.ones_like(fixed[augment.DO_JITTER])  # every sample
    wait_times = []

    def augment_only():
        build(jittered)
        sync()

    def loaded_step():
        start = time.perf_counter()
        batch = next_batch()
        wait_times.append(time.perf_counter() - start)
        step(batch)

    timers = {"step": lambda: step(fixed), "floor": lambda: networks_only(fixed),
              "augment": augment_only, "loaded": loaded_step}
    compare_eager = args.compile and not ctx.is_distributed  # the bare networks skip DDP's all-reduce
    if compare_eager:
        timers.update(compiled_comparison(trainer, fixed, networks_only, sync, build))
    times = {name: [] for name in timers}
    for i in range(args.steps + 3):
        for name, run in timers.items():
            start = time.perf_counter()
            run()
            if i >= 3:
                times[name].append(time.perf_counter() - start)
    wait_times = wait_times[3:]
    medians = {name: statistics.median(values) for name, values in times.items()}
    without_loading = medians["step"]
    floor = medians["floor"]
    loading = loading_costs(trainer.train_set) if ctx.is_main else {}

    augment_s = medians["augment"]
    with_loading = medians["loaded"]  # interleaved with the rest: same load
    wait_fraction = sum(wait_times) / sum(times["loaded"])
    figures = distributed.gather(ctx, {"with_loading_s": with_loading, "without_loading_s": without_loading,
                                       "floor_s": floor, "augment_s": augment_s,
                                       "wait_fraction": wait_fraction})
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
    print(f"  with loading / without: {with_s / step_s:.3f} (target <= 1.02), interleaved; waiting "
          f"for data: {max(f['wait_fraction'] for f in figures):.1%} of the loaded steps")
    augment_s = max(f["augment_s"] for f in figures)
    print(f"  batch building on {device} (augment_on {trainer.train_set.augment_on}, every sample "
          f"jittered): {augment_s * 1000:.1f} ms = {augment_s / floor_s:.1%} of the floor (target <= 5 %)")
    print(f"  loading per sample (main process, 1 thread): " + ", ".join(
        f"{k} {v * 1000:.0f} ms" for k, v in loading.items()))
    per_sample_ms = loader_cpu_ms(trainer.train_set)
    print(f"  loader CPU per sample ({'cached' if trainer.train_set.cache else 'decoded'}): "
          f"{per_sample_ms:.1f} ms; a batch of {args.batch_size} = {per_sample_ms * args.batch_size:.0f} "
          f"CPU ms: loader cores for a GPU step of 30 / 60 ms: "
          f"{per_sample_ms * args.batch_size / 30:.2f} / {per_sample_ms * args.batch_size / 60:.2f}")
    result.update({"augment_seconds": augment_s, "augment_over_floor": augment_s / floor_s,
                   "loader_cpu_ms_per_sample": per_sample_ms})
    result.update({"floor_seconds_per_step": floor_s, "step_over_floor": step_s / floor_s,
                   "with_over_without_loading": with_s / step_s, "loading_per_sample_s": loading,
                   "data_wait_fraction": max(f["wait_fraction"] for f in figures)})
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
