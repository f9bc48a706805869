"""`make demo`'s pipeline end to end at a tiny size: world -> hints -> GT -> two trainings per
seed -> evaluation -> metrics.json, report.md, figures, loss curves. Also checks that a re-run
reuses the work. The real figures live in the README (no values or timings asserted here)."""
import json
import os

import numpy as np
import pytest

from depth_hints.demo import (RUNS, DemoConfig, expected_seconds, print_expected_time, run_demo,
                              spread, summarise)
from depth_hints.evaluation import METRIC_NAMES

SPREAD_FIELDS = {"mean", "std", "min", "max", "n"}


def test_demo_pipeline_tiny(tmp_path):
    out, data = str(tmp_path / "out"), str(tmp_path / "world")
    cfg = DemoConfig.tiny(seeds=2)
    metrics = run_demo(out_dir=out, data_dir=data, cfg=cfg)
    with open(os.path.join(out, "metrics.json")) as f:
        saved = json.load(f)
    assert saved["seeds"] == [0, 1] and set(saved["per_seed"]) == {"0", "1"}
    for seed in ("0", "1"):
        for run in RUNS:
            assert set(METRIC_NAMES) <= set(saved["per_seed"][seed][run]["all"])
            assert set(METRIC_NAMES) | {"pixels"} <= set(saved["per_seed"][seed][run]["thin"])
            assert saved["per_seed"][seed][run]["thin"]["pixels"] > 0
            assert len(saved["losses"][seed][run]) == cfg.num_steps
            assert all(np.isfinite(saved["losses"][seed][run]))
    for run in RUNS:
        for region in ("all", "thin"):
            assert set(saved["summary"][run][region]) == set(METRIC_NAMES)
            for stats in saved["summary"][run][region].values():
                assert set(stats) == SPREAD_FIELDS and stats["n"] == 2
        assert set(METRIC_NAMES) <= set(saved[run])  # the means, under the earlier keys
        assert saved[run]["abs_rel"] == pytest.approx(saved["summary"][run]["all"]["abs_rel"]["mean"])
        assert set(METRIC_NAMES) | {"pixels"} <= set(saved["thin_structures"][run])
    for region in ("all", "thin"):
        assert set(saved["summary"]["hints_better"][region]) == {"abs_rel", "a1", "seeds"}
    assert "thin" in saved["thin_definition"] and saved["seconds"] > 0 and saved["expected_seconds"] > 0
    hints = saved["hints"]["train_files.txt"]
    assert hints["computed"] == hints["total"] > 0 and hints["failed"] == []

    opts = {}
    for run in RUNS:
        with open(os.path.join(out, "runs", "full", "seed_1", run, "models", "opt.json")) as f:
            opts[run] = json.load(f)
        assert opts[run]["use_depth_hints"] == (run == "with_hints") and opts[run]["seed"] == 1
        assert opts[run]["init_depth"] == cfg.init_depth and opts[run]["lr_warmup_steps"] == cfg.lr_warmup_steps
        assert opts[run]["disable_automasking"] is False
    differing = {k for k in opts["with_hints"] if opts["with_hints"][k] != opts["without_hints"][k]}
    assert differing == {"model_name", "use_depth_hints"}  # both runs share every other flag

    report = open(os.path.join(out, "report.md")).read()
    for section in ("## All pixels", "## Thin-structure pixels", "## Per seed", "## Training loss",
                    "## Test frames", "## What this shows and what it does not", "loss_curves.png",
                    "figure_0.png", saved["thin_definition"], "±"):
        assert section in report, section
    for run in RUNS:
        assert report.count(f"\n| {run} | ") == 2  # the all-pixel and thin tables
        assert all(f"\n| {seed} | {run} | " in report for seed in (0, 1))  # the per-seed table
    for name in ("figure_0.png", "loss_curves.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    assert os.path.isfile(os.path.join(data, "splits", "synthetic", "gt_depths.npz"))
    cache = os.path.join(data, "training_cache", f"synthetic_{cfg.train_height}x{cfg.train_width}_png")
    with open(os.path.join(cache, "index.json")) as f:  # the runs train from the training cache
        assert json.load(f)["use_depth_hints"] is True

    # a re-run reuses the trained models (same weights -> same numbers)
    models = os.path.join(out, "runs", "full", "seed_0", "with_hints", "models")
    assert [d for d in os.listdir(models) if d.startswith("weights_")] == ["weights_0"]  # final only
    weights = os.path.join(models, "weights_0", "depth.pth")
    mtime = os.path.getmtime(weights)
    again = run_demo(out_dir=out, data_dir=data, cfg=cfg)
    assert os.path.getmtime(weights) == mtime
    assert again["per_seed"] == metrics["per_seed"] and again["losses"] == metrics["losses"]


def test_spread_by_hand():
    s = spread([1.0, 2.0, 6.0])
    assert s == pytest.approx({"mean": 3.0, "std": np.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2),
                               "min": 1.0, "max": 6.0, "n": 3})
    assert spread([0.25])["std"] == 0.0


def test_summarise_counts_the_seeds_hints_win():
    def m(abs_rel, a1):
        return {k: 0.0 for k in METRIC_NAMES} | {"abs_rel": abs_rel, "a1": a1}
    per_seed = {"0": {"without_hints": {"all": m(0.2, 0.7), "thin": m(0.3, 0.5)},
                      "with_hints": {"all": m(0.1, 0.8), "thin": m(0.4, 0.6)}},
                "1": {"without_hints": {"all": m(0.2, 0.7), "thin": m(0.3, 0.5)},
                      "with_hints": {"all": m(0.1, 0.6), "thin": m(0.2, 0.4)}}}
    s = summarise(per_seed)
    assert s["hints_better"] == {"all": {"abs_rel": 2, "a1": 1, "seeds": 2},
                                 "thin": {"abs_rel": 1, "a1": 1, "seeds": 2}}
    assert s["with_hints"]["thin"]["abs_rel"]["mean"] == pytest.approx(0.3)
    assert s["with_hints"]["all"]["a1"]["min"] == pytest.approx(0.6)


def test_expected_time_is_steps_times_the_timed_step(monkeypatch, capsys):
    import depth_hints.demo as demo
    monkeypatch.setattr(demo, "time_one_step", lambda cfg: 2.0)
    cfg = DemoConfig(num_steps=100, seeds=3, num_drives=4, frames_per_drive=25)
    # by hand: 6 runs x 100 steps x 2 s x STEP_FACTOR training; 6 runs x RUN_OVERHEAD_STEPS x 2 s
    # overhead; 100 frames x WORLD_STEPS_PER_100_FRAMES / 100 x 2 s for the world
    training = 6 * 100 * 2.0 * demo.STEP_FACTOR
    total = training + 6 * demo.RUN_OVERHEAD_STEPS * 2.0 + demo.WORLD_STEPS_PER_100_FRAMES * 2.0
    assert print_expected_time(cfg) == pytest.approx(total)
    assert (f"about {total / 60:.0f} minutes ({training / 60:.0f} of them training, 3 seeds"
            in capsys.readouterr().out)
    assert expected_seconds(DemoConfig(seeds=1), 1.0)[1] == pytest.approx(2 * DemoConfig().num_steps * demo.STEP_FACTOR)
    # seeds added to a finished one-seed run: only the 4 runs left, no world to generate
    left = 4 * 100 * 2.0 * demo.STEP_FACTOR + 4 * demo.RUN_OVERHEAD_STEPS * 2.0
    assert print_expected_time(cfg, runs=4, world_ready=True) == pytest.approx(left)
    assert "3 seeds, 2 of 6 runs trained before" in capsys.readouterr().out


def test_an_interrupted_training_is_not_marked_done(tmp_path, monkeypatch):
    """A run stopped by SIGTERM / Ctrl-C returns from Trainer.train() with its checkpoint: the
    demo must not take it for a finished run (no DONE marker) and says so in one line."""
    import depth_hints.options
    import depth_hints.trainer
    from depth_hints.demo import train_run
    from depth_hints.errors import DepthHintsError

    class Stopped:
        def __init__(self, opt):
            pass

        def train(self):
            return {"steps": 3, "epochs": 0, "losses": [1.0, 0.9, 0.8], "preempted": True, "is_main": True}

    monkeypatch.setattr(depth_hints.options, "parse_train", lambda argv: argv)
    monkeypatch.setattr(depth_hints.trainer, "Trainer", Stopped)
    cfg = DemoConfig.tiny(num_steps=10)
    with pytest.raises(DepthHintsError, match=r"with_hints \(seed 0\) stopped at step 3 of 10; run the demo again"):
        train_run("with_hints", str(tmp_path), str(tmp_path / "split"), str(tmp_path / "runs"), cfg, 0)
    assert not os.path.exists(tmp_path / "runs" / "with_hints" / "models" / "DONE")


def test_a_world_of_an_older_generator_is_regenerated(tmp_path, capsys):
    """The car paint changed in generator version 2: a demo folder of version 1 (with its hints
    and cache) is removed and generated afresh; a current one is kept; a folder that is not a
    generated world is never removed."""
    from depth_hints.demo import make_world, remove_outdated_world
    from depth_hints.synthetic.scene import WORLD_VERSION
    data, cfg = str(tmp_path / "world"), DemoConfig.tiny(num_drives=2, frames_per_drive=3)
    make_world(data, cfg)
    record = os.path.join(data, "synthetic_kitti.json")
    assert json.load(open(record))["version"] == WORLD_VERSION == 2
    assert not remove_outdated_world(data, cfg)
    stale = os.path.join(data, "depth_hints", "stale.npy")
    os.makedirs(os.path.dirname(stale))
    open(stale, "w").close()
    recorded = json.load(open(record))
    with open(record, "w") as f:
        json.dump({**recorded, "version": 1}, f)
    make_world(data, cfg)
    assert "generator version 1" in capsys.readouterr().out
    assert json.load(open(record))["version"] == WORLD_VERSION and not os.path.exists(stale)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "synthetic_kitti.json").write_text(json.dumps({"format": "something else", "version": 1}))
    assert not remove_outdated_world(str(other), cfg) and other.exists()
