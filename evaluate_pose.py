"""Evaluate pose on KITTI odometry 09/10:
`python evaluate_pose.py --eval_split odom_9 --load_weights_folder W --data_path kitti_odom`.

Flags: depth_hints/options.py (evaluate_pose_parser). Logic: depth_hints/pose_evaluation.py.
"""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    """Parse the flags, predict frame-to-frame motion and print the 5-frame ATE; 0 on success,
    2 on a project error (one line)."""
    from depth_hints.errors import run_entry_point

    def run() -> int:
        from depth_hints.options import parse_evaluate_pose
        from depth_hints.pose_evaluation import evaluate_pose
        evaluate_pose(parse_evaluate_pose(argv))
        return 0
    return run_entry_point(run, "evaluate_pose.py")

if __name__ == "__main__":
    sys.exit(main())
