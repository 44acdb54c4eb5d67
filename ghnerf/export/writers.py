"""The export formats: a mapping from format name to its writer (``ghnerf export --format`` and its help text
come from :data:`FORMATS`; adding a format is one entry here).

A writer receives every frame's keypoints once (:meth:`FormatWriter.add`) and returns the files it wrote
(:meth:`FormatWriter.finish`); every file is written atomically. Files under ``OUT``:

* ``openpose``: ``openpose/<camera>/<image basename>_keypoints.json`` per view, the camera folder named as the
  dataset's image folder (EasyMocap's ``convert`` pairs ``openpose/<camera>/X_keypoints.json`` with
  ``images/<camera>/X.jpg``);
* ``coco``: ``coco/person_keypoints_results.json`` (results) and ``coco/person_keypoints_gt.json`` (ground
  truth: the images, ``file_name`` relative to the dataset root, and the dataset's joints where it has them);
* ``easymocap``: ``keypoints3d/<frame_id:06d>.json`` per frame.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ghnerf.base.fileio import write_json
from ghnerf.export.formats import (
    coco_annotation,
    coco_ground_truth,
    coco_result,
    easymocap_keypoints3d,
    openpose_filename,
    openpose_json,
)
from ghnerf.export.sources import FrameKeypoints


class FormatWriter(Protocol):
    def add(self, fk: FrameKeypoints) -> None: ...

    def finish(self) -> list[str]: ...


class OpenPoseWriter:
    """One OpenPose ``--write_json`` file per exported view."""

    def __init__(self, out: Path, data: Path):
        self.out, self.files = out / "openpose", []

    def add(self, fk: FrameKeypoints) -> None:
        for cam, kp in fk.views.items():
            path = self.out / cam / openpose_filename(fk.frame.view(cam).image_path)
            write_json(path, openpose_json(kp))
            self.files.append(str(path))

    def finish(self) -> list[str]:
        return self.files


class CocoWriter:
    """COCO results, and the ground truth from the dataset's 2D joints (areas from the masks) where it has them;
    image ids 1, 2, ... in export order."""

    def __init__(self, out: Path, data: Path):
        self.out, self.data = out / "coco", Path(data)
        self.images, self.annotations, self.results = [], [], []

    def add(self, fk: FrameKeypoints) -> None:
        from ghnerf.data.images import load_mask

        for cam, kp in fk.views.items():
            view = fk.frame.view(cam)
            image_id = len(self.images) + 1
            h, w = view.camera.height, view.camera.width
            self.images.append({"id": image_id, "file_name": Path(os.path.relpath(view.image_path, self.data))
                                .as_posix(), "height": h, "width": w, "subject": fk.subject,
                                "frame_id": fk.frame_id, "camera": cam})
            if view.joints2d is not None and view.mask_paths:
                self.annotations.append(coco_annotation(len(self.annotations) + 1, image_id, view.joints2d,
                                                        load_mask(view)))
            result = coco_result(image_id, kp)
            if result is not None:
                self.results.append(result)

    def finish(self) -> list[str]:
        files = [self.out / "person_keypoints_gt.json", self.out / "person_keypoints_results.json"]
        write_json(files[0], coco_ground_truth(self.images, self.annotations))
        write_json(files[1], self.results)
        return [str(f) for f in files]


class EasyMocapWriter:
    """One EasyMocap ``keypoints3d`` file per frame."""

    def __init__(self, out: Path, data: Path):
        self.out, self.files = out / "keypoints3d", []

    def add(self, fk: FrameKeypoints) -> None:
        path = self.out / f"{fk.frame_id:06d}.json"
        write_json(path, easymocap_keypoints3d(fk.joints3d))
        self.files.append(str(path))

    def finish(self) -> list[str]:
        return self.files


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        description: one phrase for ``--help``.
        needs_2d, needs_3d: which keypoints the writer reads (a student renders only what some format needs).
        writer: ``(out folder, dataset root) -> FormatWriter``.
    """

    description: str
    needs_2d: bool
    needs_3d: bool
    writer: Callable[[Path, Path], FormatWriter]


FORMATS: dict[str, ExportFormat] = {
    "openpose": ExportFormat("OpenPose --write_json files, one per image", True, False, OpenPoseWriter),
    "coco": ExportFormat("COCO keypoint results and ground truth", True, False, CocoWriter),
    "easymocap": ExportFormat("EasyMocap keypoints3d, one file per frame", False, True, EasyMocapWriter),
}


def formats_help() -> str:
    """``--format`` help text, from :data:`FORMATS`."""
    return "one or more of: " + "; ".join(f"{name} ({f.description})" for name, f in FORMATS.items())
