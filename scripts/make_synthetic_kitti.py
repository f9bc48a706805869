#!/usr/bin/env python
"""Write the procedural stereo driving dataset in the KITTI raw layout.

Example (the defaults give 4 drives x 50 frames at KITTI size)::

    python scripts/make_synthetic_kitti.py --out_dir data/synthetic_kitti

Existing complete files are reused; pass --overwrite to regenerate them.
See depth_hints/synthetic.py for the world, the rig and the file layout.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from depth_hints.synthetic import write_synthetic_kitti  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out_dir", default="data/synthetic_kitti",
                   help="root folder of the KITTI-raw style output")
    p.add_argument("--num_drives", type=int, default=4,
                   help="number of drives; the last one is the test drive")
    p.add_argument("--frames_per_drive", type=int, default=50, help="frames in each drive (>= 3)")
    p.add_argument("--width", type=int, default=1242, help="image width (intrinsics scale with it)")
    p.add_argument("--height", type=int, default=375,
                   help="image height (intrinsics scale with it)")
    p.add_argument("--seed", type=int, default=0, help="world seed")
    p.add_argument("--split_name", default="synthetic",
                   help="split lists go to <out_dir>/splits/<split_name>/")
    p.add_argument("--overwrite", action="store_true", help="rewrite files that already exist")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    summary = write_synthetic_kitti(
        out_dir=args.out_dir, num_drives=args.num_drives,
        frames_per_drive=args.frames_per_drive, width=args.width, height=args.height,
        seed=args.seed, split_name=args.split_name, overwrite=args.overwrite, show_progress=True)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
