"""Predict depth for an image, a folder of images or a video:
`python test_simple.py --image_path assets/test_image.jpg --model_path <weights folder>`.

Flags: depth_hints/options.py (test_simple_parser). Logic: depth_hints/inference.py.
"""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    """Parse the flags and write <name>_disp.jpeg and <name>_disp.npy (or _depth.npy); 0 on success."""
    from depth_hints.checkpoints import CheckpointError
    from depth_hints.inference import InferenceError, run_test_simple
    from depth_hints.options import OptionsError, parse_test_simple

    try:
        run_test_simple(parse_test_simple(argv))
    except (OptionsError, InferenceError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
