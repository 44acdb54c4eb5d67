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
    held = HeldOutTeacher([("s", i, str(i)) for i in range(n)], teacher, {"robust": gts.copy(), "lifted": lifted},
                          {}, gts, gts, [])  # one view per frame, no 3D: only the 2D rows
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
    assert all("student_minus_this_mpjpe" not in r for r in c["rows"])  # no cameras and 3D here: nothing to pair


def test_3d_rows_pair_the_students_frame_triangulation_with_each_triangulation_on_shared_joints():
    """4 views of one frame from a ring of cameras; the student's keypoints are the exact projections of the true
    joints (its frame triangulation is exact), the robust triangulation 2 cm off everywhere, the lifted one 2 cm off
    and missing joint 0: the student is 2 cm better on the joints both give."""
    from ghnerf.base.cameras import Camera, look_at

    K = np.array([[200.0, 0.0, 128.0], [0.0, 200.0, 128.0], [0.0, 0.0, 1.0]])
    cams = []
    for i in range(4):
        a = 2 * np.pi * i / 8
        R, T = look_at(np.array([3.0 * np.cos(a), 3.0 * np.sin(a), 0.5]), np.zeros(3))
        cams.append(Camera(K.copy(), R, T, height=256, width=256))
    X = np.random.default_rng(0).uniform([-0.25, -0.25, -0.85], [0.25, 0.25, 0.85], size=(NUM_JOINTS, 3))
    student = np.ones((4, NUM_JOINTS, 3))
    for v, cam in enumerate(cams):
        student[v, :, :2] = cam.project(X, distort=False)
    truth = np.broadcast_to(X, (4, NUM_JOINTS, 3)).copy()
    robust = truth + np.array([0.02, 0.0, 0.0])
    lifted = robust.copy()
    lifted[:, 0] = np.nan
    held = HeldOutTeacher([("s", 0, str(v)) for v in range(4)], student.copy(),
                          {"robust": student.copy(), "lifted": student.copy()}, {"robust": robust, "lifted": lifted},
                          student.copy(), truth, cams)
    c = compare_with_teacher(student, student.copy(), np.full(4, 3000.0), held, "mediapipe")
    rows = {r["model"]: r for r in c["rows"]}
    for name in (TRIANGULATED, LIFTED):
        m = rows[name]["student_minus_this_mpjpe"]
        assert m["student_m"] < 1e-6 and abs(m["rival_m"] - 0.02) < 1e-9
        assert abs(m["difference"] + 0.02) < 1e-6 and m["low"] <= m["difference"] <= m["high"] < 0
    assert "student_minus_this_mpjpe" not in rows[ON_VIEW] and "student_minus_this_mpjpe" not in rows[STUDENT]
    md = "\n".join(markdown_comparison(c))
    assert "MPJPE m on the joints both give" in md and "-0.0200 [" in md
