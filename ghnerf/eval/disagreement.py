"""Where a student and its pose teacher disagree on held-out views, and which of the two the evidence supports.

Per view and joint, the student's and the teacher's 2D keypoints disagree when they are at least the PCK
radius apart (``alpha`` x the torso diameter, LShoulder-RHip, of the reference; of the teacher, then the
student, when the reference has no torso), or when only one of them gives the joint. The reference is the
dataset's 2D joint where present (``ground truth``), otherwise the teacher's keypoints of the frame's *other*
views triangulated robustly (:func:`ghnerf.base.multiview.consistency_report`) and projected into the view
(``multi-view``). A side is supported when it is within the radius of the reference.

Verdicts: ``student`` (student supported, teacher not), ``teacher``, ``both``, ``neither``, ``undecided``
(no reference for the joint). On real data without ground truth, ``student`` rows are the teacher's label
errors the student fixed.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from jaxtyping import Float

from ghnerf.base.body25 import BODY25_NAMES
from ghnerf.base.cameras import Camera
from ghnerf.base.fileio import write_image, write_json
from ghnerf.base.keypoint_codec import empty_keypoints
from ghnerf.data.images import pinhole
from ghnerf.eval.metrics import PCK_ALPHA, torso_diameter
from ghnerf.eval.triangulated_teacher import project_joints, robust_triangulation, teacher_keypoints

VERDICTS = ("student", "teacher", "both", "neither", "undecided")
WORST_PICTURES = 4


def multiview_reference(cameras: Sequence[Camera], keypoints: Float[np.ndarray, "C 25 3"],
                        target: int) -> Float[np.ndarray, "25 3"]:
    """(25, 3) the C views' keypoints except ``target``'s, triangulated robustly and projected into ``target``."""
    others = [c for c in range(len(cameras)) if c != target]
    X = robust_triangulation([cameras[c] for c in others], np.asarray(keypoints, np.float64)[others])
    return project_joints(cameras[target], X)


def _present(kp: np.ndarray) -> np.ndarray:
    return np.isfinite(kp[:, :2]).all(1) & (np.nan_to_num(kp[:, 2]) > 0)


def _radius(alpha: float, *candidates: np.ndarray) -> float:
    for kp in candidates:
        torso = torso_diameter(kp)
        if np.isfinite(torso) and torso >= 1.0:
            return alpha * torso
    return float("nan")


def compare_view(student: Float[np.ndarray, "25 3"], teacher: Float[np.ndarray, "25 3"],
                 reference: Float[np.ndarray, "25 3"], alpha: float = PCK_ALPHA) -> list[dict]:
    """The joints of one view where student and teacher disagree.

    Returns:
        Rows: joint (BODY_25 name), student and teacher (x, y or None), reference (x, y or None), distance_px
        between the two (None when one is missing), radius_px, verdict (one of :data:`VERDICTS`).
    """
    radius = _radius(alpha, reference, teacher, student)
    if not np.isfinite(radius):
        return []
    s_ok, t_ok, r_ok = _present(student), _present(teacher), _present(reference)
    dist = np.linalg.norm(student[:, :2] - teacher[:, :2], axis=1)
    rows = []
    for j in np.flatnonzero(s_ok | t_ok):
        if s_ok[j] and t_ok[j] and dist[j] < radius:
            continue
        verdict = "undecided"
        if r_ok[j]:
            s_fit = s_ok[j] and np.linalg.norm(student[j, :2] - reference[j, :2]) < radius
            t_fit = t_ok[j] and np.linalg.norm(teacher[j, :2] - reference[j, :2]) < radius
            verdict = {(True, False): "student", (False, True): "teacher", (True, True): "both",
                       (False, False): "neither"}[(bool(s_fit), bool(t_fit))]
        rows.append({"joint": BODY25_NAMES[j], "student": _xy(student[j], s_ok[j]), "teacher": _xy(teacher[j], t_ok[j]),
                     "reference": _xy(reference[j], r_ok[j]),
                     "distance_px": float(dist[j]) if s_ok[j] and t_ok[j] else None, "radius_px": radius,
                     "verdict": verdict})
    return rows


def _xy(kp: np.ndarray, ok: bool | np.bool_) -> list[float] | None:
    return [float(kp[0]), float(kp[1])] if ok else None


def summarise(views: list[dict]) -> dict:
    """Counts over views (each with ``disagreements`` rows): views, disagreements, per verdict, per joint."""
    rows = [r for v in views for r in v["disagreements"]]
    per_joint: dict[str, int] = {}
    for r in rows:
        per_joint[r["joint"]] = per_joint.get(r["joint"], 0) + 1
    return {"views": len(views), "disagreements": len(rows),
            "verdicts": {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS},
            "per_joint": dict(sorted(per_joint.items(), key=lambda kv: -kv[1]))}


def teacher_and_reference(examples, index: int, store) -> tuple[np.ndarray, np.ndarray, str]:
    """The teacher's keypoints of held-out view ``index`` and its reference, both (25, 3) in the evaluation's
    pixels, and the reference's kind (``ground truth`` or ``multi-view``)."""
    subject, f, cam = examples.items[index]
    frame = examples.reader.sequence(subject).frame(f)
    teacher = teacher_keypoints(store, subject, frame.frame_id, frame.views[cam].name)
    gt = frame.views[cam].joints2d
    if gt is not None:
        reference, kind = gt.astype(np.float64), "ground truth"
    elif len(frame.views) >= 3:
        kps = np.stack([teacher_keypoints(store, subject, frame.frame_id, v.name) for v in frame.views])
        reference, kind = multiview_reference([pinhole(v.camera) for v in frame.views], kps, cam), "multi-view"
    else:
        reference, kind = empty_keypoints(), "none"
    teacher[:, :2] *= examples.scale
    reference = reference.copy()
    reference[:, :2] *= examples.scale
    return teacher, reference, kind


def _picture(image: np.ndarray, view: dict, student: np.ndarray, teacher: np.ndarray,
             reference: np.ndarray) -> np.ndarray:
    """student | teacher | reference skeletons over the view, disagreeing joints ringed in white (ring radius:
    the PCK radius)."""
    import cv2

    from ghnerf.base.viz import draw_skeleton

    joints = [BODY25_NAMES.index(r["joint"]) for r in view["disagreements"]]
    ring = max(2, round(view["disagreements"][0]["radius_px"])) if joints else 2
    panels = []
    for kp in (student, teacher, reference):
        panel = draw_skeleton(image, np.nan_to_num(kp))
        for j in joints:
            if _present(kp)[j]:
                cv2.circle(panel, tuple(int(v) for v in np.round(kp[j, :2])), ring, (255, 255, 255), 1, cv2.LINE_AA)
        panels.append(panel)
    return np.concatenate(panels, axis=1)


def disagreement_report(examples, store, evaluated: list[tuple[int, np.ndarray, np.ndarray]], out: Path,
                        alpha: float = PCK_ALPHA) -> dict:
    """Compare a student's keypoints with the teacher's on evaluated views; writes ``out/disagreement.json`` and
    pictures of the worst views (``out/images/disagreement_NN.png``).

    Args:
        examples: the evaluation's :class:`ghnerf.student.data.ExampleSet`.
        store: a :class:`storage.targets.TargetStore` of the pose teacher.
        evaluated: per view (item index, student keypoints (25, 3), view image (H, W, 3) uint8), the
            evaluation's pixels.
    Returns:
        The summary (:func:`summarise`) with the file paths and the worst views' keys.
    """
    views, kept = [], []
    for index, student, image in evaluated:
        teacher, reference, kind = teacher_and_reference(examples, index, store)
        subject, f, cam = examples.items[index]
        frame = examples.reader.sequence(subject).frame(f)
        frame_id, camera = frame.frame_id, frame.views[cam].name
        rows = compare_view(student, teacher, reference, alpha)
        views.append({"subject": subject, "frame_id": frame_id, "camera": camera, "reference": kind,
                      "disagreements": rows})
        kept.append((image, student, teacher, reference))
    decided = [sum(r["verdict"] != "undecided" for r in v["disagreements"]) for v in views]
    order = sorted((i for i in range(len(views)) if views[i]["disagreements"]),
                   key=lambda i: (-decided[i], -len(views[i]["disagreements"]), i))[:WORST_PICTURES]
    for stale in (out / "images").glob("disagreement_*.png"):  # an earlier report's worst views
        stale.unlink()
    pictures = []
    for rank, i in enumerate(order):
        path = out / "images" / f"disagreement_{rank:02d}.png"
        write_image(path, _picture(kept[i][0], views[i], *kept[i][1:]))
        pictures.append(str(path))
    summary = summarise(views) | {"alpha": alpha, "path": str(out / "disagreement.json"), "pictures": pictures,
                                  "worst_views": [{k: views[i][k] for k in ("subject", "frame_id", "camera")}
                                                  for i in order]}
    write_json(out / "disagreement.json", {"summary": summary, "views": views})
    return summary


def markdown_summary(summary: dict) -> list[str]:
    """Markdown lines: the verdict counts and the most disputed joints."""
    v = summary["verdicts"]
    lines = [f"{summary['disagreements']} disagreements over {summary['views']} views (joints at least the "
             f"PCK@{summary['alpha']} radius apart, or given by only one):", "",
             "| student right, teacher wrong | teacher right, student wrong | both right | both wrong | no reference |",
             "|---|---|---|---|---|",
             f"| {v['student']} | {v['teacher']} | {v['both']} | {v['neither']} | {v['undecided']} |"]
    top = list(summary["per_joint"].items())[:5]
    if top:
        lines += ["", "most disputed joints: " + ", ".join(f"{j} ({n})" for j, n in top)]
    return lines
