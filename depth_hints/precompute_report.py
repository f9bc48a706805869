"""The outcome of a precompute run: the summary it prints and the JSON report (--report)."""
from __future__ import annotations

import dataclasses
import json
from typing import Optional

import numpy as np

from depth_hints.atomic import atomic_write
from depth_hints.options import to_json_dict


@dataclasses.dataclass
class PrecomputeSummary:
    """The outcome of a run; ``ok`` is False when any frame failed or lacked images."""
    total: int
    computed: int
    skipped: int
    replaced: int
    failed: list  # [(sample, message)] frames that failed for reasons other than missing images
    missing_images: list  # paths of missing input images
    missing_frames: int
    mean_coverage: Optional[float]
    seconds: float
    save_path: str
    report_path: Optional[str] = None
    skipped_duplicate_matchers: bool = True
    removed_temporaries: int = 0
    cpu_seconds_per_frame: Optional[float] = None  # mean over computed frames
    parallelism: str = ""
    extension_hint: str = ""  # e.g. "did you mean --png?" when the other extension's files exist

    @property
    def ok(self) -> bool:
        return not self.failed and not self.missing_frames

    def to_dict(self) -> dict:
        """JSON-ready counts and timings (failed frames as 'folder frame side: message')."""
        return {"total": self.total, "computed": self.computed, "skipped": self.skipped,
                "replaced": self.replaced,
                "failed": [f"{s.folder} {s.frame_index} {s.side}: {m}" for s, m in self.failed],
                "missing_frames": self.missing_frames, "missing_images": self.missing_images,
                "mean_coverage": self.mean_coverage, "seconds": self.seconds,
                "cpu_seconds_per_frame": self.cpu_seconds_per_frame,
                "parallelism": self.parallelism,
                "skipped_duplicate_matchers": self.skipped_duplicate_matchers}

    def format(self) -> str:
        """A human-readable multi-line summary."""
        rate = ""
        if self.computed:
            rate = f"{self.seconds / self.computed:.3f} s/frame"
            if self.cpu_seconds_per_frame is not None:
                rate += f", {self.cpu_seconds_per_frame:.3f} CPU s/frame"
            rate += "; "
        lines = [f"Depth hints -> {self.save_path}: {self.total} frames in {self.seconds:.1f} s "
                 f"({self.parallelism})",
                 f"  computed {self.computed} ({rate}{self.replaced} corrupt or mismatched files "
                 f"replaced), skipped {self.skipped} existing, "
                 f"failed {len(self.failed) + self.missing_frames}"]
        if self.mean_coverage is not None:
            lines.append(f"  mean hint coverage {self.mean_coverage:.4f}")
        if self.removed_temporaries:
            lines.append(f"  removed {self.removed_temporaries} temporary files of an "
                         f"interrupted run")
        if self.missing_images:
            lines.append(f"  missing input images ({len(self.missing_images)}, "
                         f"{self.missing_frames} frames without a hint):")
            lines += _capped([f"    {p}" for p in self.missing_images], self.report_path)
            if self.extension_hint:
                lines.append(f"  {self.extension_hint}")
        if self.failed:
            lines.append(f"  failed frames ({len(self.failed)}):")
            lines += _capped([f"    {s.folder} {s.frame_index} {s.side}: {m}"
                              for s, m in self.failed], self.report_path)
        if self.report_path:
            lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)



#: at most this many missing images / failed frames are printed (--report lists them all)
LISTED = 10


def _capped(lines: list, report_path: Optional[str]) -> list:
    if len(lines) <= LISTED:
        return lines
    where = f"all in {report_path}" if report_path else "--report FILE lists every frame"
    return lines[:LISTED] + [f"    ... and {len(lines) - LISTED} more ({where})"]


def write_report(path: str, options, summary: PrecomputeSummary, samples, results) -> None:
    """--report: the summary, mean accuracy of the hint and of each matcher, the options and
    one entry per frame (status, coverage, accuracy where ground truth exists), atomically."""
    frames = []
    per_matcher: dict = {}
    hint_scores = []
    for sample, result in zip(samples, results):
        entry = {"folder": sample.folder, "frame_index": sample.frame_index, "side": sample.side,
                 "status": result.status if result else "not run",
                 "coverage": result.coverage if result else None}
        if result and result.message:
            entry["message"] = result.message
        if result and result.accuracy:
            entry.update(result.accuracy)
            if "hint" in result.accuracy:
                hint_scores.append(result.accuracy["hint"])
            for name, scores in result.accuracy.get("matchers", {}).items():
                per_matcher.setdefault(name, []).append(scores)
        frames.append(entry)

    def mean_of(scores):
        out = {}
        for key in ("epe", "bad1", "bad3", "coverage"):
            values = [s[key] for s in scores if s.get(key) is not None]
            out[key] = float(np.mean(values)) if values else None
        out["frames"] = len(scores)
        return out

    report = {
        "summary": summary.to_dict(),
        "accuracy_mean": {"hint": mean_of(hint_scores),
                          "matchers": {name: mean_of(v) for name, v in per_matcher.items()}},
        "options": to_json_dict(options),
        "frames": frames,
    }
    with atomic_write(path, "w") as f:
        json.dump(report, f, indent=1)
