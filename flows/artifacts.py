"""Prefect artifacts that make the UI the dashboard: metric tables, pictures, progress, links to reports.

Pictures are embedded in Markdown artifacts as ``data:`` PNG URIs (the UI renders
them; nothing has to be served), downscaled so an artifact stays small.
"""

import base64
from pathlib import Path

import cv2
import numpy as np
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from ghnerf.eval.disagreement import markdown_summary
from ghnerf.eval.evaluate import lineage_lines, metrics_table
from ghnerf.eval.metric_names import TABLE_COLUMNS
from ghnerf.eval.teacher_comparison import markdown_comparison

MAX_PICTURE_SIDE = 512
MIN_PICTURE_SIDE = 256


def png_data_uri(path: str | Path, max_side: int = MAX_PICTURE_SIDE) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI, downscaled to ``max_side`` (small ones enlarged)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"{path}: not a readable image")
    scale = min(1.0, max_side / max(img.shape[:2]))
    if scale < 1:
        img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    elif max(img.shape[:2]) < MIN_PICTURE_SIDE:  # small renders: enlarge by an integer factor, pixels kept sharp
        k = -(-MIN_PICTURE_SIDE // max(img.shape[:2]))
        img = cv2.resize(img, (img.shape[1] * k, img.shape[0] * k), interpolation=cv2.INTER_NEAREST)
    ok, png = cv2.imencode(".png", img)
    return "data:image/png;base64," + base64.b64encode(np.asarray(png).tobytes()).decode()


def picture_markdown(paths: list[str | Path], captions: list[str] | None = None) -> str:
    captions = captions or [Path(p).stem for p in paths]
    return "\n\n".join(f"**{c}**\n\n![{c}]({png_data_uri(p)})" for p, c in zip(paths, captions) if Path(p).is_file())


def safe_key(text: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    out = "".join(ch if ch.isalnum() else "-" for ch in text.lower())
    return "-".join(part for part in out.split("-") if part)[:60]


def publish_evaluation(report: dict, key_prefix: str = "evaluation") -> None:
    """Markdown report (paper-format table, lineage, pictures), a metrics table and a link to report.md."""
    m = report["metrics"]
    images = [p for p in report.get("images", []) if p.endswith(("_render.png", "_heatmaps.png", "_skeleton.png",
                                                                 "_cse.png"))][:4]
    md = "\n".join([f"# {report['config']} on {report['views']} {report['split']} views", "",
                    f"device `{report['device']}`, checkpoint step {report['checkpoint_step']}", "",
                    metrics_table(m), "", "## Lineage", "", *lineage_lines(report), "",
                    "## Pictures (rendered | ground truth; heatmaps over the render; predicted | true skeleton)", "",
                    picture_markdown(images), *comparison_markdown(report.get("teacher_comparison")),
                    *disagreement_markdown(report.get("disagreement"))])
    key = safe_key(f"{key_prefix}-{report['config']}")
    create_markdown_artifact(key=key, markdown=md, description=f"evaluation of {report['checkpoint']}")
    create_table_artifact(key=f"{key}-metrics", description="every metric (definitions in the report)",
                          table=[{"metric": k, "value": v if isinstance(v, (int, float)) else str(v)[:200],
                                  "definition": report["definitions"].get(k, "")} for k, v in m.items()])
    create_link_artifact(key=f"{key}-report", link=Path(report["report_path"]).resolve().as_uri(),
                         link_text="report.md", description=f"full report on the worker: {report['report_path']}")


def comparison_markdown(comparison: dict | None) -> list[str]:
    """The student beside its teacher and the triangulated teacher (nothing without a teacher)."""
    return ["", *markdown_comparison(comparison)] if comparison else []


def disagreement_markdown(summary: dict | None) -> list[str]:
    """The student-vs-teacher section of the evaluation artifact (nothing without a teacher)."""
    if not summary:
        return []
    return ["", f"## Student vs teacher {summary['teacher']}", "", *markdown_summary(summary), "",
            "Worst views (student | teacher | reference, disputed joints ringed):", "",
            picture_markdown(summary["pictures"]), "", f"every joint: `{summary['path']}`"]


MAX_GIF_BYTES = 4_000_000  # larger animations are linked, not embedded


def publish_render(result: dict) -> None:
    """The render as the run's page shows it: the animation embedded (GIF data URI) and a link to the MP4."""
    spec = result["spec"]
    lines = [f"# {spec['path']} render of {spec['subject']} ({result['config']}, step {result['checkpoint_step']})",
             "", f"{result['frames']} frames, {result['fps']:.2f} frames/s on `{result['device']}` "
             f"(network {result['network_fps']:.2f}/s, first frame after {result['first_frame_seconds']:.1f} s)", ""]
    gif = Path(result["gif"]) if result.get("gif") else None
    if gif is not None and gif.stat().st_size <= MAX_GIF_BYTES:
        lines.append(f"![render](data:image/gif;base64,{base64.b64encode(gif.read_bytes()).decode()})")
    else:
        lines.append(f"(animation not embedded: `{gif or 'none written, the video is long'}`)")
    key = safe_key(f"render-{spec['subject']}-{spec['path']}")
    create_markdown_artifact(key=key, markdown="\n".join(lines), description=f"render of {result['checkpoint']}")
    create_link_artifact(key=f"{key}-mp4", link=Path(result["mp4"]).resolve().as_uri(), link_text="render.mp4",
                         description=f"H.264 video on the worker: {result['mp4']}")


class ProgressArtifact:
    """A Prefect progress artifact, updated at most every ``every`` percent and at the end."""

    def __init__(self, description: str, every: float = 2.0, progress: float = 0.0):
        self.every, self.last = every, 0.0
        self.id = create_progress_artifact(progress=progress, description=description)

    def update(self, done: int, total: int, description: str) -> None:
        pct = 100.0 * done / total
        if pct - self.last >= self.every or done == total:
            update_progress_artifact(self.id, progress=pct, description=description)
            self.last = pct


class ViewProgress(ProgressArtifact):
    """The progress of work counted in views or frames, called as ``on_view(done, total)``."""

    def __init__(self, description: str, every: float = 2.0):
        super().__init__(description, every)
        self.description = description

    def __call__(self, done: int, total: int) -> None:
        self.update(done, total, f"{self.description}: {done}/{total}")


class TrainingProgress:
    """The progress artifacts of a training: its steps (called as ``on_step``), and its 2D pretraining when it runs
    one (:meth:`pretrain_step`, an artifact of its own, created at its first step)."""

    def __init__(self, steps: int, description: str, every: float = 2.0):
        self.steps, self.description, self.every = steps, description, every
        self.training = ProgressArtifact(description, every)
        self.pretraining: ProgressArtifact | None = None

    def pretrain_step(self, step: int, steps: int, record: dict) -> None:
        if self.pretraining is None:
            self.pretraining = ProgressArtifact(f"2D pretraining before {self.description}", self.every,
                                                progress=100.0 * step / steps)
        self.pretraining.update(step, steps, f"2D pretraining step {step}/{steps}: source heatmap loss "
                                             f"{record['loss']:.5f}, {record['it_s']:.1f} it/s")

    def __call__(self, step: int, record: dict) -> None:
        self.training.update(step, self.steps, f"step {step}/{self.steps}: loss {record['loss']:.4f}, "
                                               f"PSNR {record['psnr']:.2f} dB, {record['it_s']:.2f} it/s")


def publish_training(history: list[dict], run: str, key: str, val_images: list[Path]) -> None:
    """Loss table (every tenth of the run) and the last validation picture."""
    stride = max(len(history) // 10, 1)
    rows = [{k: round(v, 5) if isinstance(v, float) else v for k, v in h.items()}
            for h in history[stride - 1::stride]]
    create_table_artifact(key=safe_key(f"{key}-loss"), table=rows, description=f"training curve of {run}")
    if val_images:
        create_markdown_artifact(key=safe_key(f"{key}-validation"),
                                 markdown=f"# Validation render of {run}\n\nrendered | ground truth | heatmaps\n\n"
                                          + picture_markdown(val_images[-1:]),
                                 description="last validation picture")


def publish_decision(decision) -> None:
    """The retrain decision with both metric sets side by side."""
    keys = [m.value for m in TABLE_COLUMNS]
    cand = decision.candidate.metrics if decision.candidate else {}
    inc = decision.incumbent.metrics if decision.incumbent else {}
    lines = [f"# Retrain decision: **{decision.action}**", "", decision.reason, "",
             "| metric | incumbent | candidate |", "|---|---|---|"]
    lines += [f"| {k} | {inc.get(k, '–')} | {cand.get(k, '–')} |" for k in keys]
    lines += ["", f"- incumbent: `{decision.incumbent.checkpoint if decision.incumbent else 'none'}`",
              f"- candidate: `{decision.candidate.checkpoint if decision.candidate else 'none'}`",
              f"- new shards: {len(decision.new_shards)}", f"- rule: `{decision.rule.model_dump_json()}`"]
    create_markdown_artifact(key="retrain-decision", markdown="\n".join(lines),
                             description=f"{decision.action}: {decision.reason}"[:500])
