"""Export a weights folder as one ONNX or TorchScript graph (also installed as
``depth-hints-export``):

    python scripts/export_model.py --load_weights_folder W --format onnx --out model.onnx \\
        [--height 192 --width 640] [--metric] [--dynamic_size]

``--pretrained NAME`` exports a released model instead of ``--load_weights_folder``.
Flags: depth_hints/options.py (export_parser). Logic: depth_hints/export.py.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from depth_hints.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
