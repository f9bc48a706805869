"""Launched by tests/test_distributed.py, under torchrun or plainly: trains with the given
train.py flags through depth_hints.trainer, optionally with a fixed sample order and no
augmentation (so runs with different process counts see the same global batches), and has
rank 0 write the final weights to --out. Not a test module itself."""
import argparse
import json
import os
import signal
import sys
import time

import torch


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--fixed_order", action="store_true")
    p.add_argument("--nan_on_rank", type=int, default=None, help="this rank's loss becomes NaN at step 2")
    p.add_argument("--sigterm_on_rank", type=int, default=None,
                   help="this rank sends itself SIGTERM after step 2 (a preemption)")
    p.add_argument("--slow_save", type=float, default=0.0,
                   help="rank 0 waits this many seconds before writing each checkpoint; every "
                        "other rank writes <out>.rank<r>: what its models/ held when train() returned")
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
        if own.sigterm_on_rank == ctx.rank:
            original_step = trainer.step

            def step_then_signal(batch):
                out = original_step(batch)
                if trainer.state.step == 2:
                    os.kill(os.getpid(), signal.SIGTERM)
                return out
            trainer.step = step_then_signal
        if own.slow_save and ctx.is_main:
            from depth_hints import checkpoints
            original_save = checkpoints.save_weights_folder

            def slow_save(*args, **kwargs):
                time.sleep(own.slow_save)
                return original_save(*args, **kwargs)
            checkpoints.save_weights_folder = slow_save
        summary = trainer.train()
        if own.slow_save and not ctx.is_main:
            with open(f"{own.out}.rank{ctx.rank}", "w") as f:
                json.dump(sorted(os.listdir(trainer.models_dir)), f)
        if ctx.is_main:
            torch.save({"state": trainer.model.state_dict(), "summary": summary,
                        "world_size": ctx.world_size}, own.out)
    finally:
        distributed.teardown(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
