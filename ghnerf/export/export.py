"""``ghnerf export``: keypoints of a trained run or of a teacher's shards as OpenPose, COCO or EasyMocap files.

Files under ``OUT`` (every file written atomically):

* ``openpose``: ``openpose/<camera>/<frame_id:06d>_keypoints.json`` per view and frame;
* ``coco``: ``coco/person_keypoints_results.json`` (results) and ``coco/images.json`` (the images they refer to);
* ``easymocap``: ``keypoints3d/<frame_id:06d>.json`` per frame;
* always ``export.json``: what was exported, from where, and the coordinate conventions.
"""

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ghnerf.base.errors import ConfigError
from ghnerf.base.fileio import write_json
from ghnerf.base.spec_fields import OutputFolder
from ghnerf.export.formats import coco_images, coco_result, easymocap_keypoints3d, openpose_json
from ghnerf.export.sources import FrameKeypoints, student_keypoints, teacher_keypoints

FORMATS = ("openpose", "coco", "easymocap")
COORDINATES = {"2d": "pixels of the full-resolution undistorted image (pixel centres at integers)",
               "3d": "world metres of the dataset's calibration"}


class ExportSpec(BaseModel):
    """An export, as a user asks for it: from ``run`` or from ``store`` + ``teacher``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    data: str = Field(..., description="dataset folder")
    subject: str = Field(..., description="subject to export")
    format: str = Field(..., description=" | ".join(FORMATS))
    out: OutputFolder = Field(..., description="output folder")
    run: str | None = Field(None, description="run folder written by `ghnerf train`")
    store: str | None = Field(None, description="storage root of a teacher's shards")
    teacher: str | None = Field(None, description="pose teacher whose shards to export (with store)")
    frames: str = Field(":", description="frame indices START:STOP[:STEP] or one index")
    checkpoint: str | None = Field(None, description="checkpoint of the run (default RUN/checkpoints/latest.pt)")
    source_views: int | None = Field(None, ge=2, description="source views per rendered view (default: as trained)")
    device: str = Field("auto", description="auto | cpu | cuda")


    @model_validator(mode="after")
    def _one_source(self) -> "ExportSpec":
        if self.format not in FORMATS:
            raise ConfigError(f"unknown --format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if (self.run is None) == (self.store is None) or (self.store is None) != (self.teacher is None):
            raise ConfigError("export from a run (RUN) or from a teacher's shards (--store ROOT --teacher T), "
                              "exactly one of them")
        return self


def export_keypoints(spec: ExportSpec, on_view: Callable[[], None] | None = None) -> dict:
    """Write ``spec.format`` files under ``spec.out``; returns what ``export.json`` records.

    Raises:
        ConfigError: bad options, a student without a heatmap head, a teacher without targets.
    """
    if spec.run is not None:
        frames = student_keypoints(spec.run, spec.data, spec.subject, spec.frames, spec.checkpoint,
                                   spec.source_views, spec.device, on_view, with_2d=spec.format != "easymocap",
                                   with_3d=spec.format == "easymocap")
    else:
        frames = teacher_keypoints(spec.store, spec.teacher, spec.data, spec.subject, spec.frames, on_view)
    out = Path(spec.out)
    written: list[str] = []
    images, results = [], []
    for fk in frames:
        if spec.format == "openpose":
            for cam, kp in fk.views.items():
                path = out / "openpose" / cam / f"{fk.frame_id:06d}_keypoints.json"
                write_json(path, openpose_json(kp))
                written.append(str(path))
        elif spec.format == "coco":
            _coco_frame(fk, images, results)
        else:
            path = out / "keypoints3d" / f"{fk.frame_id:06d}.json"
            write_json(path, easymocap_keypoints3d(fk.joints3d))
            written.append(str(path))
    if spec.format == "coco":
        for name, obj in (("images.json", coco_images(images)), ("person_keypoints_results.json", results)):
            write_json(out / "coco" / name, obj)
            written.append(str(out / "coco" / name))
    summary = {"spec": spec.model_dump(), "source": "student" if spec.run else f"teacher {spec.teacher}",
               "coordinates": COORDINATES, "files": written}
    write_json(out / "export.json", summary)
    return summary


def _coco_frame(fk: FrameKeypoints, images: list[dict], results: list[dict]) -> None:
    """Append one frame's views to the COCO images and results (image ids 1, 2, ... in export order)."""
    for cam, kp in fk.views.items():
        image_id = len(images) + 1
        h, w = fk.sizes[cam]
        images.append({"id": image_id, "file_name": str(fk.image_paths[cam]), "height": h, "width": w,
                       "subject": fk.subject, "frame_id": fk.frame_id, "camera": cam})
        result = coco_result(image_id, kp)
        if result is not None:
            results.append(result)
