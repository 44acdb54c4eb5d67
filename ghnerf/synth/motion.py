"""Per-frame poses of a synthetic subject: walking in place, arm raises and turning.

A :class:`MotionStyle` is drawn once per subject; :func:`pose_at` evaluates it at a
frame. Angles follow the rest-pose axes of :mod:`ghnerf.synth.body` (x = subject's
right, y = forward, z = up): a positive rotation about x swings a hanging limb
forward.
"""

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ghnerf.synth.body import NUM_SEGMENTS, SEGMENT_INDEX, Pose


@dataclass(frozen=True)
class MotionStyle:
    """Motion parameters of one subject (angles in degrees, periods in frames)."""

    walk_amplitude: float
    walk_period: float
    raise_amplitude: float
    raise_period: float
    raise_side: int  # -1 right arm leads, +1 left arm leads
    yaw0: float
    turn_rate: float
    phase: float

    @staticmethod
    def random(rng: np.random.Generator) -> "MotionStyle":
        return MotionStyle(
            walk_amplitude=float(rng.uniform(0.5, 1.0)),
            walk_period=float(rng.uniform(7, 11)),
            raise_amplitude=float(rng.uniform(0.5, 1.0)),
            raise_period=float(rng.uniform(9, 14)),
            raise_side=int(rng.choice([-1, 1])),
            yaw0=float(rng.uniform(0, 360)),
            turn_rate=float(rng.uniform(8, 20) * rng.choice([-1, 1])),
            phase=float(rng.uniform(0, 2 * np.pi)),
        )


def _rot(axis: str, deg: float) -> np.ndarray:
    return Rotation.from_euler(axis, deg, degrees=True).as_matrix()


def pose_at(style: MotionStyle, frame: int) -> Pose:
    """The pose of frame ``frame`` (0-based)."""
    rots = np.tile(np.eye(3), (NUM_SEGMENTS, 1, 1))
    seg = SEGMENT_INDEX
    w = 2 * np.pi * frame / style.walk_period + style.phase
    walk = style.walk_amplitude
    swing = np.sin(w)
    # Legs: hips swing opposite, knees bend on the back swing.
    rots[seg["r_thigh"]] = _rot("x", 28 * walk * swing)
    rots[seg["l_thigh"]] = _rot("x", -28 * walk * swing)
    rots[seg["r_shin"]] = _rot("x", -40 * walk * max(0.0, -np.cos(w)) - 3)
    rots[seg["l_shin"]] = _rot("x", -40 * walk * max(0.0, np.cos(w)) - 3)
    rots[seg["r_foot"]] = _rot("x", 10 * walk * swing)
    rots[seg["l_foot"]] = _rot("x", -10 * walk * swing)
    # Arm raise: 0 -> 1 -> 0 over raise_period, the leading arm higher.
    lift = 0.5 * (1 - np.cos(2 * np.pi * frame / style.raise_period + style.phase))
    lead = 150 * style.raise_amplitude * lift
    follow = 60 * style.raise_amplitude * lift * lift
    r_abd, l_abd = (lead, follow) if style.raise_side < 0 else (follow, lead)
    rots[seg["r_upperarm"]] = _rot("y", -r_abd) @ _rot("x", -22 * walk * swing * (1 - lift))
    rots[seg["l_upperarm"]] = _rot("y", l_abd) @ _rot("x", 22 * walk * swing * (1 - lift))
    rots[seg["r_forearm"]] = _rot("x", 15 + 25 * walk * max(0.0, swing) + 40 * (1 - lift) * lift)
    rots[seg["l_forearm"]] = _rot("x", 15 + 25 * walk * max(0.0, -swing) + 40 * (1 - lift) * lift)
    rots[seg["r_hand"]] = _rot("x", 8)
    rots[seg["l_hand"]] = _rot("x", 8)
    # Upper body: counter-twist to the legs, a small forward lean, head looks around.
    rots[seg["torso"]] = _rot("z", -8 * walk * swing) @ _rot("x", 4)
    rots[seg["head"]] = _rot("z", 20 * np.sin(0.5 * w)) @ _rot("x", -5 * np.cos(0.7 * w))
    yaw = style.yaw0 + style.turn_rate * frame
    bob = np.array([0.0, 0.0, -0.02 * walk * abs(np.cos(w))])
    return Pose(rots, _rot("z", yaw), bob)
