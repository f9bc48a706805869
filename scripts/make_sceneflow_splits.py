#!/usr/bin/env python
"""Scan a SceneFlow root and write train/val/test split lists for --dataset sceneflow.

Example (FlyingThings3D only; TRAIN -> train and val, TEST -> test)::

    python scripts/make_sceneflow_splits.py --data_path data/sceneflow --out_dir splits/sceneflow

Add Driving and Monkaa to the training lists with --subsets flyingthings3d driving monkaa.
The root layout and the line format are described in datasets/sceneflow.py.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.sceneflow import PASSES, SUBSETS, make_sceneflow_splits  # noqa: E402
from depth_hints.errors import run_entry_point  # noqa: E402
from depth_hints.splits import PROJECT_SPLITS_DIR  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_path", required=True, help="SceneFlow root (holds flyingthings3d/, ...)")
    p.add_argument("--out_dir", default=str(PROJECT_SPLITS_DIR / "sceneflow"),
                   help="folder that receives train_files.txt, val_files.txt, test_files.txt")
    p.add_argument("--pass", dest="sceneflow_pass", default="clean", choices=PASSES,
                   help="render pass whose frames are scanned")
    p.add_argument("--val_fraction", type=float, default=0.05,
                   help="fraction of training sequences held out whole for validation")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation draw")
    p.add_argument("--subsets", nargs="+", default=["flyingthings3d"], choices=SUBSETS,
                   help="subsets to scan (Driving and Monkaa only feed train/val)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Write the lists; a bad input is one line on stderr and exit code 2."""
    return run_entry_point(lambda: _main(argv), "make_sceneflow_splits.py")


def _main(argv=None):
    args = parse_args(argv)
    counts = make_sceneflow_splits(args.data_path, args.out_dir, args.sceneflow_pass,
                                   args.val_fraction, args.seed, tuple(args.subsets),
                                   show_progress=True)
    print(json.dumps({"out_dir": args.out_dir, "lines": counts}, indent=1))
    for name, count in counts.items():
        if not count:
            print(f"note: no lines for {name}; it was not written")


if __name__ == "__main__":
    sys.exit(main())
