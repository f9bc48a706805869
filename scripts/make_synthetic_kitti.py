#!/usr/bin/env python
"""Write the procedural stereo driving dataset in the KITTI raw layout (or SceneFlow's).

Examples (the defaults give 4 drives x 50 frames at KITTI size; with --layout sceneflow,
4 sequences x 10 frames at 960x540 in the FlyingThings3D layout, 1 of them TEST)::

    python scripts/make_synthetic_kitti.py --out_dir data/synthetic_kitti
    python scripts/make_synthetic_kitti.py --layout sceneflow --out_dir data/synthetic_sceneflow

Existing complete files are reused; pass --overwrite to regenerate them. Split lists go to
<out_dir>/splits/<split_name>/ (for sceneflow written by make_sceneflow_splits: train/val from
TRAIN, test from TEST). See depth_hints/synthetic/ for the world, the rigs and the layouts.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from depth_hints.errors import run_entry_point  # noqa: E402
from depth_hints.synthetic import write_synthetic_kitti, write_synthetic_sceneflow  # noqa: E402

# per layout: out_dir, drives (sequences), frames each, width, height, split name
LAYOUT_DEFAULTS = {
    "kitti": dict(out_dir="data/synthetic_kitti", num_drives=4, frames_per_drive=50,
                  width=1242, height=375, split_name="synthetic"),
    "sceneflow": dict(out_dir="data/synthetic_sceneflow", num_drives=4, frames_per_drive=10,
                      width=960, height=540, split_name="sceneflow"),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layout", default="kitti", choices=sorted(LAYOUT_DEFAULTS),
                   help="KITTI raw (default) or SceneFlow's FlyingThings3D layout")
    p.add_argument("--out_dir", default=None,
                   help="root folder of the output (default data/synthetic_<layout>)")
    p.add_argument("--num_drives", "--num_sequences", dest="num_drives", type=int, default=None,
                   help="number of drives (kitti: the last one is the test drive) or sequences "
                        "(sceneflow: a quarter of them, at least one, are TEST); default 4")
    p.add_argument("--frames_per_drive", "--frames_per_sequence", dest="frames_per_drive",
                   type=int, default=None,
                   help="frames in each drive or sequence (>= 3; default 50 kitti, 10 sceneflow)")
    p.add_argument("--width", type=int, default=None,
                   help="image width, intrinsics scale with it (default 1242 kitti, 960 sceneflow)")
    p.add_argument("--height", type=int, default=None,
                   help="image height, intrinsics scale with it (default 375 kitti, 540 sceneflow)")
    p.add_argument("--seed", type=int, default=0, help="world seed")
    p.add_argument("--split_name", default=None,
                   help="split lists go to <out_dir>/splits/<split_name>/ "
                        "(default synthetic for kitti, sceneflow for sceneflow)")
    p.add_argument("--num_test_sequences", type=int, default=None,
                   help="sceneflow: how many sequences are TEST (default a quarter, at least 1)")
    p.add_argument("--val_fraction", type=float, default=0.05,
                   help="sceneflow: fraction of TRAIN sequences held out whole as val")
    p.add_argument("--overwrite", action="store_true", help="rewrite files that already exist")
    args = p.parse_args(argv)
    for key, value in LAYOUT_DEFAULTS[args.layout].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv=None) -> int:
    """Write the world; a bad input is one line on stderr and exit code 2."""
    return run_entry_point(lambda: _main(argv), "make_synthetic_kitti.py")


def _main(argv=None):
    args = parse_args(argv)
    if args.layout == "kitti":
        summary = write_synthetic_kitti(
            out_dir=args.out_dir, num_drives=args.num_drives,
            frames_per_drive=args.frames_per_drive, width=args.width, height=args.height,
            seed=args.seed, split_name=args.split_name, overwrite=args.overwrite,
            show_progress=True)
    else:
        from datasets.sceneflow import make_sceneflow_splits

        summary = write_synthetic_sceneflow(
            out_dir=args.out_dir, num_sequences=args.num_drives,
            frames_per_sequence=args.frames_per_drive, width=args.width, height=args.height,
            seed=args.seed, num_test_sequences=args.num_test_sequences,
            overwrite=args.overwrite, show_progress=True)
        split_dir = os.path.join(summary["out_dir"], "splits", args.split_name)
        summary["split_dir"] = split_dir
        summary["split_counts"] = make_sceneflow_splits(summary["out_dir"], split_dir,
                                                        val_fraction=args.val_fraction,
                                                        seed=args.seed)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    sys.exit(main())
