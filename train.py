"""Train a monocular depth network with Depth Hints: `python train.py --help`."""
import sys

from depth_hints.errors import run_entry_point


def main(argv=None) -> int:
    """Parse the flags and train; project errors become one line and exit code 2."""
    def run() -> int:
        from depth_hints.options import parse_train
        from depth_hints.trainer import train
        opt = parse_train(argv)
        summary = train(opt)
        if summary["is_main"]:
            print(f"{'stopped by a signal after' if summary['preempted'] else 'trained'} "
                  f"{summary['steps']} steps in {summary['seconds']:.0f} s; "
                  f"weights in {summary['models_dir']}")
        return 0  # also after a preemption signal: the checkpoint is written, the job may end
    return run_entry_point(run, "train.py")


if __name__ == "__main__":
    sys.exit(main())
