"""The main job (`make demo`): Depth Hints vs no hints on the embedded synthetic KITTI world.

    python scripts/run_demo.py [--quick] [--seeds N] [--out_dir demo_output] [--data_dir data/synthetic_kitti]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from depth_hints.demo import DemoConfig, run_demo  # noqa: E402
from depth_hints.errors import run_entry_point  # noqa: E402


def main(argv=None) -> int:
    """Run the demo; a project error is one line on stderr and exit code 2."""
    return run_entry_point(lambda: _main(argv), "run_demo.py")


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short run (under 3 minutes on 2 CPU cores)")
    p.add_argument("--seeds", type=int, default=1,
                   help="training seeds 0..N-1 (same world); N > 1 reports mean ± spread")
    p.add_argument("--out_dir", default="demo_output", help="metrics.json, report.md, figures, logs")
    p.add_argument("--data_dir", default=None,
                   help="where the world is generated (default data/synthetic_kitti, or _quick with --quick)")
    args = p.parse_args(argv)
    data_dir = args.data_dir or ("data/synthetic_kitti_quick" if args.quick else "data/synthetic_kitti")
    if args.seeds < 1:
        p.error(f"--seeds {args.seeds}: give 1 or more")
    cfg = DemoConfig.quick(seeds=args.seeds) if args.quick else DemoConfig(seeds=args.seeds)
    run_demo(quick=args.quick, out_dir=args.out_dir, data_dir=data_dir, cfg=cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
