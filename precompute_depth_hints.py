"""Precompute fused-SGM depth hints for a split (Depth Hints, Watson et al., ICCV 2019).

    python precompute_depth_hints.py --data_path kitti_data [--filenames FILE] [--save_path DIR]
    python precompute_depth_hints.py --dataset sceneflow --data_path sceneflow --width 576 --height 320

Writes <save_path>/<folder>/image_0{2,3}/<frame:010d>.npy; resumable (existing valid hints are
skipped). --shard I/N (or a SLURM array / torchrun environment) computes one shard of the split;
--verify computes nothing and checks every hint file of the split. Exit code 0 when every frame
has a (valid) hint, 1 when some failed or are missing / corrupt (listed in the summary), 2 on a
bad flag, split file or input, a valid hint of another size in --save_path, or a worker process
killed mid-run (one line each).
"""
import sys

from depth_hints.errors import run_entry_point


def main(argv=None) -> int:
    """Parse the flags and precompute; project errors become one line and exit code 2."""
    def run() -> int:
        from depth_hints.options import parse_precompute  # light: flags fail fast
        options = parse_precompute(argv)
        if options.num_workers > 0 and not options.verify:
            # The workers' fork server imports torch and OpenCV beside this process.
            from depth_hints import worker_pool
            worker_pool.start_early()
        from depth_hints.precompute import precompute, verify
        summary = verify(options) if options.verify else precompute(options)
        return 0 if summary.ok else 1
    return run_entry_point(run, "precompute_depth_hints.py")


if __name__ == "__main__":
    sys.exit(main())
