"""``ghnerf export``: keypoints of a trained run or of a teacher's shards in one or more formats
(:data:`ghnerf.export.writers.FORMATS`), all from one pass over the views (a student renders each view once).

Besides the formats' files (:mod:`ghnerf.export.writers`), ``OUT/export.json`` records what was exported, from
where, the coordinate conventions, every format and file written, and every view that could not be exported
with the reason. A view missing from the source is a warning (and counted in ``export.json``), or an error
with ``strict``.
"""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ghnerf.base.errors import ConfigError
from ghnerf.base.fileio import write_json
from ghnerf.base.spec_fields import OutputFolder
from ghnerf.export.sources import (
    DEFAULT_JOINTS3D,
    JOINTS3D,
    Progress,
    student_keypoints,
    teacher_keypoints,
)
from ghnerf.export.writers import FORMATS, formats_help

COORDINATES = {"2d": "pixels of the full-resolution undistorted image (pixel centres at integers)",
               "3d": "world metres of the dataset's calibration"}


class ExportSpec(BaseModel):
    """An export, as a user asks for it: from ``run`` or from ``store`` + ``teacher``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    data: str = Field(..., description="dataset folder")
    subject: str = Field(..., description="subject to export")
    format: list[str] = Field(..., description=formats_help())
    out: OutputFolder = Field(..., description="output folder")
    run: str | None = Field(None, description="run folder written by `ghnerf train` (or --store)",
                            json_schema_extra={"cli": "argument"})
    store: str | None = Field(None, description="storage root of a teacher's shards (instead of RUN)")
    teacher: str | None = Field(None, description="pose teacher whose shards to export (with --store)")
    frames: str = Field(":", description="frame indices START:STOP[:STEP] or one index")
    checkpoint: str | None = Field(None, description="checkpoint of the run (default RUN/checkpoints/latest.pt)")
    source_views: int | None = Field(None, ge=2, description="source views per rendered view (default: as trained)")
    joints3d: Literal[tuple(JOINTS3D)] = Field(  # type: ignore[valid-type]
        DEFAULT_JOINTS3D, description="a student's 3D joints: " + "; ".join(f"{k}: {v}" for k, v in JOINTS3D.items()))
    device: str = Field("auto", description="auto | cpu | cuda")
    strict: bool = Field(False, description="a view missing from the source is an error (exit 2), not a warning")

    @field_validator("format", mode="before")
    @classmethod
    def _split(cls, value):
        """``"openpose,coco"`` or ``["openpose coco", "easymocap"]`` -> a list of names, order kept, no repeats."""
        items = [value] if isinstance(value, str) else list(value)
        names = [n for item in items for n in str(item).replace(",", " ").split()]
        return list(dict.fromkeys(names))


    @model_validator(mode="after")
    def _one_source(self) -> "ExportSpec":
        unknown = [f for f in self.format if f not in FORMATS]
        if unknown or not self.format:
            raise ConfigError(f"unknown --format {' '.join(unknown) or '(none)'!r}; choose one or more of "
                              f"{', '.join(FORMATS)}")
        if (self.run is None) == (self.store is None) or (self.store is None) != (self.teacher is None):
            raise ConfigError("export from a run (RUN) or from a teacher's shards (--store ROOT --teacher T), "
                              "exactly one of them")
        return self


def export_keypoints(spec: ExportSpec, on_view: Progress | None = None) -> dict:
    """Write every format of ``spec.format`` under ``spec.out`` from one pass over the views; returns what
    ``export.json`` records.

    Raises:
        ConfigError: bad options, a student without a heatmap head, a teacher without targets, or (``strict``) a
            view missing from the source.
    """
    chosen = {name: FORMATS[name] for name in spec.format}
    if spec.run is not None:
        frames = student_keypoints(spec.run, spec.data, spec.subject, spec.frames, spec.checkpoint,
                                   spec.source_views, spec.device, on_view,
                                   with_2d=any(f.needs_2d for f in chosen.values()),
                                   with_3d=any(f.needs_3d for f in chosen.values()), joints3d=spec.joints3d)
    else:
        frames = teacher_keypoints(spec.store, spec.teacher, spec.data, spec.subject, spec.frames, on_view)
    out = Path(spec.out)
    writers = {name: f.writer(out, Path(spec.data)) for name, f in chosen.items()}
    missing, exported, n_frames = [], 0, 0
    for fk in frames:
        n_frames += 1
        for cam, reason in fk.missing.items():
            if spec.strict:
                raise ConfigError(f"{spec.store or spec.run}: {fk.subject} frame {fk.frame_id} camera {cam}: "
                                  f"{reason} (drop --strict to export the other views)")
            missing.append({"subject": fk.subject, "frame_id": fk.frame_id, "camera": cam, "reason": reason})
        exported += len(fk.views)
        for w in writers.values():
            w.add(fk)
    summary = {"spec": spec.model_dump(), "source": "student" if spec.run else f"teacher {spec.teacher}",
               "coordinates": COORDINATES, "formats": list(chosen),
               "files": {name: w.finish() for name, w in writers.items()},
               "frames": n_frames, "views_exported": exported, "views_missing": len(missing), "missing_views": missing}
    write_json(out / "export.json", summary)
    return summary
