"""The synthetic body is anatomically plausible: correct handedness, proportions, seen by a real pose model."""

import numpy as np
import pytest

from ghnerf.base.body25 import JOINT_INDEX as J
from ghnerf.synth.body import SEGMENT_INDEX, Body, BodyShape, pose_body
from ghnerf.synth.generate import SynthConfig, build_subject, iter_frames
from ghnerf.synth.motion import MotionStyle, pose_at


def test_left_and_right_are_anatomical():
    """(LShoulder - RShoulder) x (Neck - MidHip) points where the face looks, in every pose."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        body, style = Body(BodyShape.random(rng)), MotionStyle.random(rng)
        for f in range(0, 20, 3):
            j = pose_body(body, pose_at(style, f)).joints
            forward = np.cross(j[J["LShoulder"]] - j[J["RShoulder"]], j[J["Neck"]] - j[J["MidHip"]])
            face = j[J["Nose"]] - 0.5 * (j[J["REar"]] + j[J["LEar"]])
            assert forward @ face > 0
            assert np.cross(j[J["LHip"]] - j[J["RHip"]], j[J["Neck"]] - j[J["MidHip"]]) @ face > 0


def test_proportions_and_feet_on_the_ground():
    body = Body(BodyShape(height=1.8))
    j = body.rest_joints
    top = max(pr.centre[2] + pr.radii[2] for pr in body.primitives if hasattr(pr, "radii"))
    assert abs(top - 1.8) < 0.08
    assert abs(j[J["LAnkle"], 2] - 0.08 * 1.8 / 1.75) < 1e-9
    bottom = min(pr.centre[2] - pr.radii[2] for pr in body.primitives if hasattr(pr, "radii"))
    assert abs(bottom) < 1e-3
    # arm span (fingertip to fingertip along outstretched arms) close to height, as in adults (ratio 1.0-1.06):
    # shoulder to shoulder, plus per arm shoulder-elbow-wrist and the hand's far tip along the forearm
    span = np.linalg.norm(j[J["LShoulder"]] - j[J["RShoulder"]])
    for side in ("l", "r"):
        hand = next(pr for pr in body.primitives if pr.segment == SEGMENT_INDEX[f"{side}_hand"])
        wrist = j[J[f"{side.upper()}Wrist"]]
        span += (np.linalg.norm(j[J[f"{side.upper()}Elbow"]] - j[J[f"{side.upper()}Shoulder"]])
                 + np.linalg.norm(wrist - j[J[f"{side.upper()}Elbow"]])
                 + np.linalg.norm(hand.centre - wrist) + hand.radii[2])  # radii[2]: along the forearm
    assert 0.97 <= span / 1.8 <= 1.08, span


def test_mediapipe_sees_the_synthetic_person():
    """The real MediaPipe Pose model (bundled in the wheel) finds the person with the right left/right."""
    mp = pytest.importorskip("mediapipe")
    cfg = SynthConfig(layout="renderpeople", subjects=1, frames=1, cameras=8, size=256, seed=1)
    rig = build_subject(cfg, 0)
    from ghnerf.synth.body import SurfaceSampling

    _, fr = next(iter_frames(rig, SurfaceSampling(), 1))
    mp_of = {J["RShoulder"]: 12, J["LShoulder"]: 11, J["RHip"]: 24, J["LHip"]: 23, J["RElbow"]: 14,
             J["LElbow"]: 13, J["RKnee"]: 26, J["LKnee"]: 25}
    errors, detected = [], 0
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        for view, kpts in zip(fr.views, fr.joints2d):
            res = pose.process(view.rgb)
            if res.pose_landmarks is None:
                continue
            detected += 1
            lm = res.pose_landmarks.landmark
            for b, m in mp_of.items():
                errors.append(np.hypot(lm[m].x * 256 - kpts[b, 0], lm[m].y * 256 - kpts[b, 1]))
    assert detected >= 7
    assert np.median(errors) < 6.0
