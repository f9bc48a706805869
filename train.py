"""Train a monocular depth network with Depth Hints: `python train.py --help`."""
import sys

from depth_hints.options import OptionsError, parse_train


def main(argv=None) -> int:
    try:
        opt = parse_train(argv)
    except OptionsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from depth_hints.trainer import TrainingError, train
    from depth_hints.checkpoints import CheckpointError
    from depth_hints.hints import HintFileError
    from depth_hints.splits import SplitError
    from datasets import DatasetError
    from networks.resnet_encoder import PretrainedWeightsError
    try:
        summary = train(opt)
    except (TrainingError, CheckpointError, HintFileError, SplitError, DatasetError,
            PretrainedWeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"trained {summary['steps']} steps in {summary['seconds']:.0f} s; weights in {summary['models_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
