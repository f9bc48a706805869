"""Launched by tests/test_distributed.py, under torchrun or plainly: trains with the given
train.py flags through depth_hints.trainer, optionally with a fixed sample order and no
augmentation (so runs with different process counts see the same global batches), and has
rank 0 write the final weights to --out. Not a test module itself."""
import argparse
import sys

import torch


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--fixed_order", action="store_true")
    p.add_argument("--nan_on_rank", type=int, default=None, help="this rank's loss becomes NaN at step 2")
    own, train_argv = p.parse_known_args()
    torch.set_num_threads(1)
    from depth_hints import distributed, options
    from depth_hints.trainer import Trainer
    opt = options.parse_train(train_argv)
    ctx = distributed.setup(options.device_from(opt.no_cuda))
    try:
        trainer = Trainer(opt, ctx)
        if own.fixed_order:
            trainer.train_sampler.shuffle = False
            trainer.train_set.flip_probability = trainer.train_set.color_aug_probability = 0.0
        if own.nan_on_rank == ctx.rank:
            original = trainer.process_batch

            def poisoned(batch, model=None):
                inputs, outputs, losses = original(batch, model)
                if trainer.state.step == 1:  # the second step
                    losses["loss"] = losses["loss"] * float("nan")
                return inputs, outputs, losses
            trainer.process_batch = poisoned
        summary = trainer.train()
        if ctx.is_main:
            torch.save({"state": trainer.model.state_dict(), "summary": summary,
                        "world_size": ctx.world_size}, own.out)
    finally:
        distributed.teardown(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
