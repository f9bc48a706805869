"""Evaluate depth predictions on KITTI: `python evaluate_depth.py --load_weights_folder W --eval_stereo`
(a released model: `--pretrained NAME`; its released predictions: `--ext_disp_to_eval NAME`).

Flags: depth_hints/options.py (evaluate_parser). Logic: depth_hints/evaluation.py.
"""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    """Parse the flags, evaluate, print the table (and --output_json); 0 on success, 2 on a
    project error (one line)."""
    from depth_hints.errors import run_entry_point

    def run() -> int:
        from depth_hints.evaluation import evaluate
        from depth_hints.options import parse_evaluate
        evaluate(parse_evaluate(argv))
        return 0
    return run_entry_point(run, "evaluate_depth.py")

if __name__ == "__main__":
    sys.exit(main())
