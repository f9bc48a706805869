"""Download ManyDepth's Cityscapes test list (1,525 images, ``--eval_split cityscapes``) from a
pinned public commit, checking sha256, into splits/cityscapes/.

    python scripts/fetch_cityscapes_splits.py [--out_dir splits]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.cityscapes import fetch_cityscapes_split  # noqa: E402
from depth_hints.errors import run_entry_point  # noqa: E402
from depth_hints.splits import PROJECT_SPLITS_DIR  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out_dir", default=str(PROJECT_SPLITS_DIR), help="where the split folder goes")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per download")
    args = p.parse_args(argv)

    def run() -> int:
        written = fetch_cityscapes_split(args.out_dir, timeout=args.timeout)
        print(f"{len(written)} split file ready: {', '.join(map(str, written))}")
        return 0
    return run_entry_point(run, "fetch_cityscapes_splits.py")


if __name__ == "__main__":
    sys.exit(main())
