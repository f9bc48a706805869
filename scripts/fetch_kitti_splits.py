"""Download the standard KITTI split lists (eigen, eigen_full, eigen_zhou, eigen_benchmark,
benchmark, odom) from a pinned public commit, checking sha256, into splits/.

    python scripts/fetch_kitti_splits.py [--out_dir splits] [--splits eigen_zhou eigen]
"""
import argparse
import sys

from depth_hints.errors import run_entry_point
from depth_hints.splits import KITTI_SPLIT_NAMES, PROJECT_SPLITS_DIR, fetch_kitti_splits


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out_dir", default=str(PROJECT_SPLITS_DIR), help="where the split folders go")
    p.add_argument("--splits", nargs="+", choices=KITTI_SPLIT_NAMES, default=None,
                   help="only these splits (default: all)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per download")
    args = p.parse_args(argv)

    def run() -> int:
        written = fetch_kitti_splits(args.out_dir, args.splits, args.timeout)
        print(f"{len(written)} split files ready in {args.out_dir}")
        return 0
    return run_entry_point(run, "fetch_kitti_splits.py")


if __name__ == "__main__":
    sys.exit(main())
