"""`make demo`'s pipeline end to end at a tiny size: world -> hints -> GT -> two trainings ->
evaluation -> metrics.json, report.md, figures. Also checks that a re-run reuses the work."""
import json
import os

from depth_hints.demo import RUNS, DemoConfig, run_demo
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
    for run in RUNS:  # both runs share every flag but --use_depth_hints
        with open(os.path.join(out, "runs", "full", run, "models", "opt.json")) as f:
            opt = json.load(f)
        assert opt["disable_automasking"] is True and opt["use_depth_hints"] == (run == "with_hints")
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
