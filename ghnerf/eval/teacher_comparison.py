"""The student beside its pose teacher on the same held-out views, with the strongest simple rivals that have the
student's inputs: the teacher's keypoints of the same source views, triangulated robustly and projected into the
view, also with the joints no two views agree on lifted from one view (:mod:`ghnerf.eval.triangulated_teacher`).
PCK@0.2, COCO keypoint AP, and the student's paired PCK difference to each with its 95 % bootstrap interval over
views; against the triangulations also its paired 3D MPJPE difference on the joints both give (the student's 3D
joints: its keypoints of each frame's views triangulated, :func:`~ghnerf.eval.triangulated_teacher.
frame_triangulation`)."""

import dataclasses
from collections.abc import Iterable

import numpy as np
from jaxtyping import Float

from ghnerf.eval.metric_names import Metric
from ghnerf.eval.metrics import (
    coco17,
    coco_keypoint_ap,
    paired_mpjpe_difference,
    paired_pck_difference,
    pck,
    shared_joints,
)
from ghnerf.eval.triangulated_teacher import HeldOutTeacher, frame_triangulation

STUDENT = "student"
ON_VIEW = "teacher on the view itself"
TRIANGULATED = "teacher triangulated from the same source views (robust), projected"
LIFTED = "the same, joints no 2 views agree on lifted from one view at a neighbour's depth"
TRIANGULATION_OF = {TRIANGULATED: "robust", LIFTED: "lifted"}  # row -> its method in HeldOutTeacher
COLUMNS = ("model", "PCK@0.2", "COCO AP", "student − this, PCK [95 % CI]",
           "student − this, MPJPE m on the joints both give [95 % CI]")


def per_view_pck_counts(preds: Float[np.ndarray, "N K 3"], gts: Float[np.ndarray, "N K 3"],
                        joints=None) -> tuple[list[int], list[int]]:
    """Per view (correct, evaluated) joints of ``preds`` against ``gts`` (only ``joints`` if given, as :func:`pck`),
    unzipped: the input of the paired comparisons."""
    res = [pck(p[None], g[None], joints=joints) for p, g in zip(preds, gts)]
    return [r.correct for r in res], [r.evaluated for r in res]


def compare_with_teacher(student: Float[np.ndarray, "N 25 3"], gts: Float[np.ndarray, "N 25 3"],
                         areas: Float[np.ndarray, "N"], held: HeldOutTeacher, teacher: str) -> dict:
    """Rows of PCK and COCO AP for the student, the teacher on each view and the triangulated teacher, all on the
    same N views (``held`` is built from the student's example set: the same views and source views)."""
    rivals = {ON_VIEW: held.on_view, **{name: held.triangulated[m] for name, m in TRIANGULATION_OF.items()}}
    student_correct, evaluated = per_view_pck_counts(student, gts)
    in_3d = shared_joint_mpjpe(student, held, TRIANGULATION_OF.values())
    rows = []
    for name, kps in {STUDENT: student, **rivals}.items():
        ap = coco_keypoint_ap(coco17(kps), coco17(gts), areas)
        row = {"model": name, Metric.PCK.value: pck(kps, gts).value,
               Metric.COCO_AP.value: ap if np.isfinite(ap) else None}
        if name != STUDENT and len(kps) >= 2 and sum(evaluated) > 0:
            d = paired_pck_difference(student_correct, per_view_pck_counts(kps, gts)[0], evaluated)
            row["student_minus_this"] = {"difference": d.difference, "low": d.low, "high": d.high,
                                         "student_better_views": d.a_better, "this_better_views": d.b_better}
        if in_3d.get(TRIANGULATION_OF.get(name)):
            row["student_minus_this_mpjpe"] = in_3d[TRIANGULATION_OF[name]]
        rows.append(row)
    return {"teacher": teacher, "views": len(student), "rows": rows}


def shared_joint_mpjpe(student: Float[np.ndarray, "N 25 3"], held: HeldOutTeacher,
                       methods: Iterable[str]) -> dict[str, dict | None]:
    """The student's 3D joints (its keypoints of each frame's views triangulated, :func:`~ghnerf.eval.
    triangulated_teacher.frame_triangulation`) against each triangulation ``method`` of ``held`` on the joints both
    give: per method, both MPJPEs (``student_m``, ``rival_m``, metres), the paired difference with its interval over
    views (:func:`~ghnerf.eval.metrics.paired_mpjpe_difference`) and the share of (view, joint) with a true joint
    that each side gives (``student_joints``, ``rival_joints``); None where they share no joint (a frame with one
    view has no student 3D, a dataset without 3D joints no truth)."""
    student3d = frame_triangulation(held.cameras, student, [key[:2] for key in held.keys])
    truth = shared_joints(held.gt3d)
    out: dict[str, dict | None] = {}
    for method in methods:
        rival3d = held.joints3d.get(method)
        if rival3d is None or len(student) < 2 or not shared_joints(student3d, rival3d, held.gt3d).any():
            out[method] = None
            continue
        student_m, rival_m, diff = paired_mpjpe_difference(student3d, rival3d, held.gt3d)
        out[method] = dataclasses.asdict(diff) | {
            "student_m": student_m, "rival_m": rival_m,
            "student_joints": float((shared_joints(student3d) & truth).sum() / max(truth.sum(), 1)),
            "rival_joints": float((shared_joints(rival3d) & truth).sum() / max(truth.sum(), 1))}
    return out


def comparison_cells(row: dict) -> list[str]:
    """One row of the comparison as the text of :data:`COLUMNS` (the report's Markdown and the CLI's table)."""
    def number(v) -> str:
        return "–" if v is None or not np.isfinite(v) else f"{v:.3f}"

    d, m = row.get("student_minus_this"), row.get("student_minus_this_mpjpe")
    return [row["model"], number(row["pck"]), number(row["coco_ap"]),
            f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" if d else "",
            f"{m['difference']:+.4f} [{m['low']:+.4f}, {m['high']:+.4f}] ({m['student_m']:.4f} vs {m['rival_m']:.4f})"
            if m else ""]


def markdown_comparison(comparison: dict) -> list[str]:
    """The comparison as a Markdown section."""
    lines = [f"## Student beside its teacher ({comparison['teacher']}, the same {comparison['views']} views)", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return lines + ["| " + " | ".join(comparison_cells(r)) + " |" for r in comparison["rows"]]
