"""Evaluate depth predictions on KITTI: `python evaluate_depth.py --load_weights_folder W --eval_stereo`.

Flags: depth_hints/options.py (evaluate_parser). Logic: depth_hints/evaluation.py.
"""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    """Parse the flags, evaluate, print the table (and --output_json); 0 on success."""
    from depth_hints.checkpoints import CheckpointError
    from depth_hints.evaluation import EvaluationError, evaluate
    from depth_hints.options import OptionsError, parse_evaluate
    from depth_hints.splits import SplitError

    try:
        evaluate(parse_evaluate(argv))
    except (OptionsError, EvaluationError, CheckpointError, SplitError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
