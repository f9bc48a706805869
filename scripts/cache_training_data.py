"""Write the training-resolution cache of a split (depth_hints/cache.py), once per size.

    python scripts/cache_training_data.py --data_path kitti_data --split eigen_zhou \
        --height 192 --width 640 [--png] [--use_depth_hints] [--dataset kitti]

Every frame the split's samples read (targets, the other view, temporal neighbours) as uint8
at the training size, the same bytes as the loader's resize, plus the hints at the training
size (nearest, float16) with --use_depth_hints. train.py then finds it by itself (same
--data_path, --split, --height, --width, --png), or takes --cache_dir. Resumable; --shard I/N
does every N-th row (run the N shards at once, in any order); --verify recomputes and compares
every row; --overwrite rebuilds a stale cache. Exit 0 when complete (or verified), 1 when rows
are missing or differ, 2 on a bad flag or input.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from depth_hints.errors import run_entry_point  # noqa: E402


def parser() -> argparse.ArgumentParser:
    from depth_hints.options import DATASETS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_path", type=str, default="kitti_data", help="dataset root")
    p.add_argument("--dataset", type=str, default="kitti", choices=DATASETS, help="dataset layout")
    p.add_argument("--split", type=str, default="eigen_zhou", help="split name or folder")
    p.add_argument("--height", type=int, default=192, help="training height")
    p.add_argument("--width", type=int, default=640, help="training width")
    p.add_argument("--png", action="store_true", help="images are .png (KITTI: .jpg by default)")
    p.add_argument("--use_depth_hints", action="store_true", help="also cache the hints")
    p.add_argument("--depth_hint_path", type=str, default=None,
                   help="hint folder (default <data_path>/depth_hints)")
    p.add_argument("--sceneflow_pass", type=str, default="clean", choices=("clean", "final"))
    p.add_argument("--cache_dir", type=str, default=None,
                   help="where (default <data_path>/training_cache/<split>_<H>x<W>[_png])")
    p.add_argument("--shard", type=str, default=None, help="I/N: this process does rows i %% N == I")
    p.add_argument("--verify", action="store_true", help="recompute every row and compare")
    p.add_argument("--overwrite", action="store_true", help="rebuild a cache of other options / stale sources")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    def run() -> int:
        opt = parser().parse_args(argv)
        if opt.height % 32 or opt.width % 32:
            from depth_hints.cache import CacheError
            raise CacheError(f"--height {opt.height} / --width {opt.width}: use multiples of 32, as train.py needs.")
        from depth_hints import cache
        from depth_hints.precompute import resolve_shard
        spec = cache.CacheSpec.from_options(opt)
        shard = resolve_shard(opt.shard)
        if opt.verify:
            result = cache.verify(spec, opt.cache_dir, shard, progress=not opt.quiet)
            print(f"verified {result['checked']} rows: {len(result['bad'])} differ, "
                  f"{result['missing']} not written"
                  + (f" (first: {', '.join(result['bad'][:5])})" if result["bad"] else ""))
            return 0 if not result["bad"] and not result["missing"] else 1
        result = cache.build(spec, opt.cache_dir, shard, overwrite=opt.overwrite, progress=not opt.quiet)
        state = "complete" if result["complete"] else "incomplete (other shards still to run)"
        print(f"{result['dir']}: {result['frames']} frames, {result['hints']} hints, "
              f"{result['written']} written now; {state}; disk use {result['bytes'] / 2 ** 30:.2f} GiB "
              f"({result['bytes'] / 2 ** 20:.1f} MiB)")
        return 0 if result["complete"] or shard.count > 1 else 1
    return run_entry_point(run, "cache_training_data.py")


if __name__ == "__main__":
    sys.exit(main())
