"""Export KITTI ground-truth depths of a split's test list to <split>/gt_depths.npz.

    python scripts/export_gt_depth.py --data_path kitti_data --split eigen
    python scripts/export_gt_depth.py --data_path kitti_data --split eigen_benchmark
    python scripts/export_gt_depth.py --data_path kitti_data --split path/to/split --mode dense

Logic: datasets/kitti_raw.py (export_gt_depths).
"""
from __future__ import annotations

import argparse
import sys


def export_parser() -> argparse.ArgumentParser:
    """Flags of scripts/export_gt_depth.py."""
    p = argparse.ArgumentParser(description="Export ground-truth depths for evaluation.")
    p.add_argument("--data_path", type=str, required=True, help="root of the KITTI raw data")
    p.add_argument("--split", type=str, required=True,
                   help="eigen (velodyne), eigen_benchmark (annotated PNGs), or a split folder "
                        "holding test_files.txt")
    p.add_argument("--mode", type=str, default=None, choices=("velodyne", "dense"),
                   help="ground truth for a split folder: projected velodyne or the annotated "
                        "proj_depth/groundtruth PNGs (implied for eigen / eigen_benchmark)")
    p.add_argument("--output", type=str, default=None,
                   help="where to write (default <split>/gt_depths.npz)")
    return p


def main(argv=None) -> int:
    """Export and print the written path; 0 on success, 2 on a project error (one line)."""
    from depth_hints.errors import run_entry_point

    args = export_parser().parse_args(argv)

    def run() -> int:
        from datasets.kitti_raw import export_gt_depths
        path = export_gt_depths(args.data_path, args.split, args.mode, args.output)
        print(f"-> Saved ground truth to {path}")
        return 0
    return run_entry_point(run, "export_gt_depth.py")

if __name__ == "__main__":
    sys.exit(main())
