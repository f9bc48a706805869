"""Predict depth for an image, a folder of images or a video:
`python test_simple.py --image_path assets/test_image.jpg --model_path <weights folder>`
(or `--pretrained DH-HR-Resnet50`, a released model by name; `--pretrained list`).

Flags: depth_hints/options.py (test_simple_parser). Logic: depth_hints/inference.py.
"""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    """Parse the flags and write <name>_disp.jpeg and <name>_disp.npy (or _depth.npy); 0 on
    success, 2 on a project error (one line)."""
    from depth_hints.errors import run_entry_point

    def run() -> int:
        from depth_hints.inference import run_test_simple
        from depth_hints.options import parse_test_simple
        run_test_simple(parse_test_simple(argv))
        return 0
    return run_entry_point(run, "test_simple.py")

if __name__ == "__main__":
    sys.exit(main())
