"""Evaluate pose on KITTI odometry 09/10:
`python evaluate_pose.py --eval_split odom_9 --load_weights_folder W --data_path kitti_odom`.

Flags: depth_hints/options.py (evaluate_pose_parser). Logic: depth_hints/pose_evaluation.py.
"""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    """Parse the flags, predict frame-to-frame motion and print the 5-frame ATE; 0 on success."""
    from depth_hints.checkpoints import CheckpointError
    from depth_hints.options import OptionsError, parse_evaluate_pose
    from depth_hints.pose_evaluation import PoseEvaluationError, evaluate_pose
    from depth_hints.splits import SplitError

    try:
        evaluate_pose(parse_evaluate_pose(argv))
    except (OptionsError, PoseEvaluationError, CheckpointError, SplitError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
