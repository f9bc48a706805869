#!/usr/bin/env python
"""Write train/val/test split lists for your own stereo rig (--dataset stereo).

    python scripts/make_stereo_splits.py --data_path my_rig --out_dir splits/my_rig [--by sequence]

--by sequence (default) holds whole sequences out for val and test (with fewer than three
sequences, frames inside them); --by fraction draws those fractions of frames inside every
sequence. all_files.txt (train + val) is what precompute_depth_hints.py --filenames takes.
--frame_ids: the training's (default 0, stereo only: every pair qualifies, single pairs
too); with temporal frames (0 -1 1) train/val keep the frames whose neighbours exist and are
not test frames. The layout: datasets/stereo_rig.py.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.stereo_rig import SPLIT_MODES, make_stereo_splits  # noqa: E402
from depth_hints.errors import run_entry_point  # noqa: E402
from depth_hints.options import parse_frame_ids  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_path", required=True, help="the rig's root (holds <sequence>/left, right, calib.json)")
    p.add_argument("--out_dir", required=True, help="folder that receives train/val/test/all_files.txt")
    p.add_argument("--by", default="sequence", choices=SPLIT_MODES, help="hold out sequences or frames")
    p.add_argument("--val_fraction", type=float, default=0.1, help="fraction for validation")
    p.add_argument("--test_fraction", type=float, default=0.1, help="fraction for test")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw")
    p.add_argument("--frame_ids", nargs="+", type=str, default=["0"],
                   help="the --frame_ids you will train with: 0 (default) or 0 s for stereo only; "
                        "0 -1 1 keeps only frames with both neighbours, none of them a test frame")
    p.add_argument("--no_temporal", action="store_true",
                   help="stereo only (the default now; kept for older commands)")
    args = p.parse_args(argv)

    def run() -> int:
        frame_ids = (0,) if args.no_temporal else parse_frame_ids(args.frame_ids)
        counts = make_stereo_splits(args.data_path, args.out_dir, args.by, args.val_fraction,
                                    args.test_fraction, args.seed, frame_ids)
        print(json.dumps({"out_dir": args.out_dir, "lines": counts}, indent=1))
        return 0
    return run_entry_point(run, "make_stereo_splits.py")


if __name__ == "__main__":
    sys.exit(main())
