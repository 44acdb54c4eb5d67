"""The student beside its pose teacher on the same held-out views, with the strongest simple rivals that have the
student's inputs: the teacher's keypoints of the same source views, triangulated robustly and projected into the
view, also with the joints no two views agree on lifted from one view (:mod:`ghnerf.eval.triangulated_teacher`).
PCK@0.2, COCO keypoint AP, and the student's paired PCK difference to each with its 95 % bootstrap interval over
views."""

import numpy as np
from jaxtyping import Float

from ghnerf.eval.metric_names import Metric
from ghnerf.eval.metrics import coco17, coco_keypoint_ap, paired_pck_difference, pck
from ghnerf.eval.triangulated_teacher import HeldOutTeacher

STUDENT = "student"
ON_VIEW = "teacher on the view itself"
TRIANGULATED = "teacher triangulated from the same source views (robust), projected"
LIFTED = "the same, joints no 2 views agree on lifted from one view at a neighbour's depth"


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
    rivals = {ON_VIEW: held.on_view, TRIANGULATED: held.triangulated["robust"], LIFTED: held.triangulated["lifted"]}
    student_correct, evaluated = per_view_pck_counts(student, gts)
    rows = []
    for name, kps in {STUDENT: student, **rivals}.items():
        ap = coco_keypoint_ap(coco17(kps), coco17(gts), areas)
        row = {"model": name, Metric.PCK.value: pck(kps, gts).value,
               Metric.COCO_AP.value: ap if np.isfinite(ap) else None}
        if name != STUDENT and len(kps) >= 2 and sum(evaluated) > 0:
            d = paired_pck_difference(student_correct, per_view_pck_counts(kps, gts)[0], evaluated)
            row["student_minus_this"] = {"difference": d.difference, "low": d.low, "high": d.high,
                                         "student_better_views": d.a_better, "this_better_views": d.b_better}
        rows.append(row)
    return {"teacher": teacher, "views": len(student), "rows": rows}


def markdown_comparison(comparison: dict) -> list[str]:
    """The comparison as a Markdown section."""
    def number(v) -> str:
        return "–" if v is None or not np.isfinite(v) else f"{v:.3f}"

    lines = [f"## Student beside its teacher ({comparison['teacher']}, the same {comparison['views']} views)", "",
             "| model | PCK@0.2 | COCO AP | student − this, PCK [95 % CI] |", "|---|---|---|---|"]
    for r in comparison["rows"]:
        d = r.get("student_minus_this")
        diff = f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" if d else ""
        lines.append(f"| {r['model']} | {number(r['pck'])} | {number(r['coco_ap'])} | {diff} |")
    return lines
