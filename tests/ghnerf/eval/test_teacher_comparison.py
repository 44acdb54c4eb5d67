"""The student beside its teacher: PCK, COCO AP and the paired difference, against hand counts."""

import numpy as np

from ghnerf.base.body25 import JOINT_INDEX as J
from ghnerf.base.body25 import NUM_JOINTS
from ghnerf.eval.teacher_comparison import (
    LIFTED,
    ON_VIEW,
    STUDENT,
    TRIANGULATED,
    compare_with_teacher,
    markdown_comparison,
)
from ghnerf.eval.triangulated_teacher import HeldOutTeacher


def _truth(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    gts = np.concatenate([rng.uniform(20, 100, (n, NUM_JOINTS, 2)), np.ones((n, NUM_JOINTS, 1))], axis=-1)
    gts[:, J["LShoulder"], :2], gts[:, J["RHip"], :2] = (40, 40), (40, 80)  # torso diameter 40 px: radius 8 px
    return gts


def test_rows_count_the_same_views_and_the_difference_is_paired():
    n = 4
    gts = _truth(n)
    student = gts.copy()
    student[:, J["Nose"], :2] += 20  # one joint of 25 wrong in every view
    teacher = gts.copy()
    teacher[:2, [J["LWrist"], J["RWrist"], J["Nose"]], :2] += 20  # 3 wrong in views 0-1, none in views 2-3
    lifted = gts.copy()
    lifted[0, J["Nose"], :2] += 20  # one wrong joint in view 0
    held = HeldOutTeacher([("s", 0, str(i)) for i in range(n)], teacher, {"robust": gts.copy(), "lifted": lifted}, {},
                          gts, gts, [])
    areas = np.full(n, 3000.0)
    c = compare_with_teacher(student, gts, areas, held, "mediapipe")
    rows = {r["model"]: r for r in c["rows"]}
    assert list(rows) == [STUDENT, ON_VIEW, TRIANGULATED, LIFTED] and c["views"] == n
    assert rows[LIFTED]["pck"] == (25 * n - 1) / (25 * n)
    assert rows[LIFTED]["student_minus_this"]["difference"] == (1 - n) / (25 * n)
    assert rows[STUDENT]["pck"] == (25 * n - n) / (25 * n)
    assert rows[ON_VIEW]["pck"] == (25 * n - 6) / (25 * n)
    assert rows[TRIANGULATED]["pck"] == 1.0 and rows[TRIANGULATED]["coco_ap"] == 1.0
    d = rows[ON_VIEW]["student_minus_this"]
    assert d["difference"] == (6 - n) / (25 * n)  # student 96 correct, teacher 94, over 100 joints
    assert (d["student_better_views"], d["this_better_views"]) == (2, 2)
    assert d["low"] <= d["difference"] <= d["high"]
    assert "student_minus_this" not in rows[STUDENT]
    md = "\n".join(markdown_comparison(c))
    assert "the same 4 views" in md and "| student | 0.960 |" in md and "+0.020 [" in md
