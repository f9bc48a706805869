"""`make demo`'s pipeline end to end at a tiny size: world -> hints -> GT -> two trainings ->
evaluation -> metrics.json, report.md, figures. Also checks that a re-run reuses the work."""
import json
import os

import pytest

from depth_hints.demo import RUNS, DemoConfig, print_expected_time, run_demo
from depth_hints.evaluation import METRIC_NAMES


def test_demo_pipeline_tiny(tmp_path):
    out, data = str(tmp_path / "out"), str(tmp_path / "world")
    metrics = run_demo(out_dir=out, data_dir=data, cfg=DemoConfig.tiny())
    with open(os.path.join(out, "metrics.json")) as f:
        saved = json.load(f)
    for run in RUNS:
        assert set(METRIC_NAMES) <= set(saved[run])
        assert 0 < saved[run]["abs_rel"] < 10
        assert saved["thin_structures"][run]["pixels"] > 0
    hints = saved["hints"]["train_files.txt"]
    assert hints["computed"] == hints["total"] > 0 and hints["failed"] == []
    opts = {}
    for run in RUNS:
        with open(os.path.join(out, "runs", "full", run, "models", "opt.json")) as f:
            opts[run] = json.load(f)
        assert opts[run]["disable_automasking"] is False and opts[run]["use_depth_hints"] == (run == "with_hints")
    differing = {k for k in opts["with_hints"] if opts["with_hints"][k] != opts["without_hints"][k]}
    assert differing == {"model_name", "use_depth_hints"}  # both runs share every other flag
    report = open(os.path.join(out, "report.md")).read()
    assert "with_hints" in report and "figure_0.png" in report
    assert os.path.isfile(os.path.join(out, "figure_0.png"))
    assert os.path.isfile(os.path.join(data, "splits", "synthetic", "gt_depths.npz"))
    # a re-run reuses the trained models (same weights -> same numbers)
    weights = os.path.join(out, "runs", "full", "with_hints", "models", "weights_0", "depth.pth")
    mtime = os.path.getmtime(weights)
    again = run_demo(out_dir=out, data_dir=data, cfg=DemoConfig.tiny())
    assert os.path.getmtime(weights) == mtime
    assert again["with_hints"] == metrics["with_hints"]


def test_expected_time_is_steps_times_the_timed_step(monkeypatch, capsys):
    import depth_hints.demo as demo
    monkeypatch.setattr(demo, "time_one_step", lambda cfg: 2.0)
    # 2 runs x 150 steps x 2 s x 1.05 (validation) + 104 frames x 0.6 steps x 2 s = 754.8 s
    assert print_expected_time(DemoConfig()) == pytest.approx(754.8)
    assert "about 13 minutes (10 of them training" in capsys.readouterr().out

