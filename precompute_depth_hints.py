"""Precompute fused-SGM depth hints for a split (Depth Hints, Watson et al., ICCV 2019).

    python precompute_depth_hints.py --data_path kitti_data [--filenames FILE] [--save_path DIR]
    python precompute_depth_hints.py --dataset sceneflow --data_path sceneflow --width 576 --height 320

Writes <save_path>/<folder>/image_0{2,3}/<frame:010d>.npy; resumable (existing valid hints are
skipped). Exit code 0 when every frame has a hint, 1 when some failed (e.g. missing images,
listed in the summary), 2 on a bad flag or split file.
"""
import sys

from depth_hints.hints import PrecomputeError, precompute
from depth_hints.options import OptionsError, parse_precompute
from depth_hints.splits import SplitError


def main(argv=None) -> int:
    try:
        summary = precompute(parse_precompute(argv))
    except (OptionsError, SplitError, PrecomputeError) as e:
        print(f"precompute_depth_hints.py: error: {e}", file=sys.stderr)
        return 2
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
