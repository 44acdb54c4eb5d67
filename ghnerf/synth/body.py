"""Procedural articulated human: BODY_25 skeleton, rigid segments, closed surface.

A body is a small kinematic tree of rigid *segments* (pelvis, torso, head, upper
arms, forearms, hands, thighs, shins, feet). Every BODY_25 joint and every
surface primitive is attached to one segment. Rest pose: standing at the origin,
z up, facing +y, the subject's right along +x (right-handed: east is on
your right when you face north), arms slightly abducted (A-pose),
feet on z = 0. All lengths in metres.

Per-subject variation lives in :class:`BodyShape`; the surface parameters of
:mod:`ghnerf.synth.primitives` are shared, so :func:`template_body` gives every
surface point a subject-independent canonical coordinate.
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from jaxtyping import Float

from ghnerf.base.body25 import JOINT_INDEX, NUM_JOINTS
from ghnerf.synth.primitives import Capsule, Ellipsoid, Primitive

# Segments: (name, parent, pivot joint name). Pivots are rest-pose points.
SEGMENTS: tuple[tuple[str, int, str], ...] = (
    ("pelvis", -1, "MidHip"),
    ("torso", 0, "Waist"),
    ("head", 1, "Neck"),
    ("r_upperarm", 1, "RShoulder"),
    ("r_forearm", 3, "RElbow"),
    ("r_hand", 4, "RWrist"),
    ("l_upperarm", 1, "LShoulder"),
    ("l_forearm", 6, "LElbow"),
    ("l_hand", 7, "LWrist"),
    ("r_thigh", 0, "RHip"),
    ("r_shin", 9, "RKnee"),
    ("r_foot", 10, "RAnkle"),
    ("l_thigh", 0, "LHip"),
    ("l_shin", 12, "LKnee"),
    ("l_foot", 13, "LAnkle"),
)
SEGMENT_INDEX = {name: i for i, (name, _, _) in enumerate(SEGMENTS)}
NUM_SEGMENTS = len(SEGMENTS)

# Which segment carries each BODY_25 joint.
JOINT_SEGMENT: dict[str, str] = {
    "Nose": "head", "Neck": "torso", "RShoulder": "torso", "RElbow": "r_forearm", "RWrist": "r_hand",
    "LShoulder": "torso", "LElbow": "l_forearm", "LWrist": "l_hand", "MidHip": "pelvis",
    "RHip": "pelvis", "RKnee": "r_shin", "RAnkle": "r_foot", "LHip": "pelvis", "LKnee": "l_shin",
    "LAnkle": "l_foot", "REye": "head", "LEye": "head", "REar": "head", "LEar": "head",
    "LBigToe": "l_foot", "LSmallToe": "l_foot", "LHeel": "l_foot", "RBigToe": "r_foot",
    "RSmallToe": "r_foot", "RHeel": "r_foot",
}

# How deep inside the surface each joint lies (metres): a joint is visible in a
# view when the rendered surface in front of it is no nearer than this.
JOINT_DEPTH_TOLERANCE = np.array([
    0.04, 0.15, 0.10, 0.07, 0.06, 0.10, 0.07, 0.06, 0.16, 0.12, 0.09, 0.08, 0.12, 0.09, 0.08,
    0.03, 0.03, 0.04, 0.04, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05,
])

# CIHP human-parsing label ids (0 background, 2 hair, 5 upper-clothes, 9 pants,
# 10 torso-skin, 13 face, 14/15 left/right arm, 16/17 left/right leg, 18/19 shoes).
HAIR, UPPER, PANTS, NECK_SKIN, FACE, L_ARM, R_ARM, L_SHOE, R_SHOE = 2, 5, 9, 10, 13, 14, 15, 18, 19

A_POSE_DEG = 12.0


@dataclass(frozen=True)
class BodyShape:
    """Body proportions of one subject (multipliers around an average adult)."""

    height: float = 1.75
    shoulder_width: float = 1.0
    hip_width: float = 1.0
    girth: float = 1.0
    arm_length: float = 1.0
    leg_length: float = 1.0
    head_size: float = 1.0

    @staticmethod
    def random(rng: np.random.Generator) -> "BodyShape":
        return BodyShape(
            height=float(rng.uniform(1.55, 1.92)),
            shoulder_width=float(rng.uniform(0.88, 1.12)),
            hip_width=float(rng.uniform(0.9, 1.15)),
            girth=float(rng.uniform(0.85, 1.2)),
            arm_length=float(rng.uniform(0.93, 1.07)),
            leg_length=float(rng.uniform(0.94, 1.06)),
            head_size=float(rng.uniform(0.92, 1.08)),
        )


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _frame_along(direction: np.ndarray) -> np.ndarray:
    """Rotation whose third column is ``direction`` (for ellipsoids elongated along a limb)."""
    z = _unit(direction)
    x = np.cross([0.0, 1.0, 0.0], z)
    if np.linalg.norm(x) < 1e-6:
        x = np.array([1.0, 0.0, 0.0])
    x = _unit(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


class Body:
    """Rest-pose skeleton and surface of one subject.

    Attributes:
        shape: the proportions it was built from.
        points: rest-pose positions of the named skeleton points (BODY_25 joints + helpers).
        primitives: surface primitives in rest-pose coordinates.
    """

    def __init__(self, shape: BodyShape):
        self.shape = shape
        s = shape.height / 1.75
        sw, hw, g = shape.shoulder_width, shape.hip_width, shape.girth
        al, ll, hs = shape.arm_length * s, shape.leg_length * s, shape.head_size * s
        ankle_h = 0.08 * s
        hip_z = ankle_h + (0.43 + 0.44) * ll
        neck_z = hip_z + 0.50 * s
        a = np.deg2rad(A_POSE_DEG)
        arm_dir = {"R": np.array([np.sin(a), 0.0, -np.cos(a)]), "L": np.array([-np.sin(a), 0.0, -np.cos(a)])}
        p: dict[str, np.ndarray] = {}
        p["MidHip"] = np.array([0.0, 0.0, hip_z])
        p["Waist"] = np.array([0.0, 0.0, hip_z + 0.08 * s])
        p["Neck"] = np.array([0.0, 0.0, neck_z])
        head_c = p["Neck"] + np.array([0.0, 0.01 * hs, 0.19 * hs])
        p["HeadCentre"] = head_c
        p["Nose"] = p["Neck"] + np.array([0.0, 0.112 * hs, 0.17 * hs])
        for side, sx in (("R", 1.0), ("L", -1.0)):
            p[f"{side}Eye"] = p["Neck"] + np.array([sx * 0.032 * hs, 0.092 * hs, 0.205 * hs])
            p[f"{side}Ear"] = p["Neck"] + np.array([sx * 0.078 * hs, -0.005 * hs, 0.19 * hs])
            p[f"{side}Shoulder"] = p["Neck"] + np.array([sx * 0.185 * s * sw, 0.0, -0.03 * s])
            p[f"{side}Elbow"] = p[f"{side}Shoulder"] + 0.30 * al * arm_dir[side]
            p[f"{side}Wrist"] = p[f"{side}Elbow"] + 0.26 * al * arm_dir[side]
            p[f"{side}Hip"] = p["MidHip"] + np.array([sx * 0.095 * s * hw, 0.0, 0.0])
            p[f"{side}Knee"] = p[f"{side}Hip"] - np.array([0.0, 0.0, 0.44 * ll])
            p[f"{side}Ankle"] = p[f"{side}Knee"] - np.array([0.0, 0.0, 0.43 * ll])
            p[f"{side}BigToe"] = p[f"{side}Ankle"] + np.array([-sx * 0.015 * s, 0.175 * s, -0.065 * s])
            p[f"{side}SmallToe"] = p[f"{side}Ankle"] + np.array([sx * 0.035 * s, 0.155 * s, -0.065 * s])
            p[f"{side}Heel"] = p[f"{side}Ankle"] + np.array([0.0, -0.055 * s, -0.065 * s])
        self.points = p
        self.primitives: tuple[Primitive, ...] = tuple(self._build_primitives(s, sw, hw, g, al, ll, hs, arm_dir))

    def _build_primitives(self, s, sw, hw, g, al, ll, hs, arm_dir) -> list[Primitive]:
        p, seg, eye = self.points, SEGMENT_INDEX, np.eye(3)
        prims: list[Primitive] = [
            Ellipsoid(p["MidHip"] + [0, -0.005 * s, 0.02 * s], np.array([0.165 * hw, 0.11 * g, 0.12]) * s, eye,
                      seg["pelvis"], "pants", PANTS),
            Ellipsoid(p["Waist"] + [0, 0, 0.1 * s], np.array([0.145 * g, 0.1 * g, 0.16]) * s, eye,
                      seg["torso"], "shirt", UPPER),
            Ellipsoid(p["Neck"] + [0, 0, -0.16 * s], np.array([0.175 * sw, 0.115 * g, 0.2]) * s, eye,
                      seg["torso"], "shirt", UPPER),
            Capsule(p["Neck"] + [0, 0, -0.03 * s], p["Neck"] + [0, 0.005 * s, 0.1 * hs], 0.052 * s, seg["head"],
                    "skin", NECK_SKIN),
            Ellipsoid(p["HeadCentre"], np.array([0.075, 0.095, 0.115]) * hs, eye, seg["head"], "skin", FACE),
            Ellipsoid(p["HeadCentre"] + [0, -0.018 * hs, 0.022 * hs], np.array([0.08, 0.094, 0.112]) * hs, eye,
                      seg["head"], "hair", HAIR),
            Ellipsoid(p["Nose"] + [0, -0.01 * hs, 0], np.array([0.014, 0.022, 0.026]) * hs, eye, seg["head"],
                      "skin", FACE),
        ]
        for side in ("R", "L"):
            lab_arm, lab_shoe = (R_ARM, R_SHOE) if side == "R" else (L_ARM, L_SHOE)
            lo = side.lower()
            prims += [
                Ellipsoid(p[f"{side}Eye"], np.array([0.013, 0.008, 0.009]) * hs, eye, seg["head"], "eye", FACE),
                Ellipsoid(p[f"{side}Ear"], np.array([0.012, 0.02, 0.03]) * hs, eye, seg["head"], "skin", FACE),
                Ellipsoid(p[f"{side}Shoulder"] + [0, 0, -0.01 * s], np.array([0.06, 0.06, 0.06]) * s * g, eye,
                          seg["torso"], "shirt", UPPER),
                Capsule(p[f"{side}Shoulder"], p[f"{side}Elbow"], 0.046 * s * g, seg[f"{lo}_upperarm"], "sleeve",
                        UPPER),
                Capsule(p[f"{side}Elbow"], p[f"{side}Wrist"], 0.037 * s * g, seg[f"{lo}_forearm"], "skin", lab_arm),
                Ellipsoid(p[f"{side}Wrist"] + 0.085 * al * arm_dir[side], np.array([0.028, 0.045, 0.09]) * s,
                          _frame_along(arm_dir[side]), seg[f"{lo}_hand"], "skin", lab_arm),
                Capsule(p[f"{side}Hip"] + [0, 0, 0.02 * s], p[f"{side}Knee"], 0.072 * s * g, seg[f"{lo}_thigh"],
                        "pants", PANTS),
                Capsule(p[f"{side}Knee"], p[f"{side}Ankle"], 0.05 * s * g, seg[f"{lo}_shin"], "pants", PANTS),
                Ellipsoid(p[f"{side}Ankle"] + [0, 0.055 * s, -0.038 * s], np.array([0.048, 0.125, 0.042]) * s, eye,
                          seg[f"{lo}_foot"], "shoe", lab_shoe),
            ]
        return prims

    @cached_property
    def pivots(self) -> Float[np.ndarray, "S 3"]:
        return np.stack([self.points[pivot] for _, _, pivot in SEGMENTS])

    @cached_property
    def rest_joints(self) -> Float[np.ndarray, "25 3"]:
        joints = np.zeros((NUM_JOINTS, 3))
        for name, i in JOINT_INDEX.items():
            joints[i] = self.points[name]
        return joints


@dataclass(frozen=True)
class Pose:
    """Articulation of one frame.

    Attributes:
        local_rotations: (S, 3, 3) rotation of each segment relative to its parent.
        root_rotation: (3, 3) world orientation of the pelvis (turning).
        root_translation: (3,) world offset of the pelvis from its rest position, metres.
    """

    local_rotations: Float[np.ndarray, "S 3 3"]
    root_rotation: Float[np.ndarray, "3 3"]
    root_translation: Float[np.ndarray, "3"]

    @staticmethod
    def rest() -> "Pose":
        return Pose(np.tile(np.eye(3), (NUM_SEGMENTS, 1, 1)), np.eye(3), np.zeros(3))


@dataclass(frozen=True)
class PosedBody:
    """A body in a pose: segment transforms, 3D joints, primitives, vertices in world coordinates."""

    body: Body
    rotations: Float[np.ndarray, "S 3 3"]
    translations: Float[np.ndarray, "S 3"]

    def to_world(self, rest_points: np.ndarray, segments: np.ndarray) -> np.ndarray:
        """Rest-pose points attached to ``segments`` -> world."""
        piv = self.body.pivots[segments]
        return np.einsum("nij,nj->ni", self.rotations[segments], rest_points - piv) + self.translations[segments]

    def to_rest(self, world_points: np.ndarray, segments: np.ndarray) -> np.ndarray:
        """World points attached to ``segments`` -> rest pose."""
        local = world_points - self.translations[segments]
        return np.einsum("nji,nj->ni", self.rotations[segments], local) + self.body.pivots[segments]

    @cached_property
    def joints(self) -> Float[np.ndarray, "25 3"]:
        segs = np.array([SEGMENT_INDEX[JOINT_SEGMENT[name]] for name in JOINT_INDEX])
        return self.to_world(self.body.rest_joints, segs)

    @cached_property
    def primitives(self) -> tuple[Primitive, ...]:
        b = self.body
        return tuple(pr.transformed(self.rotations[pr.segment], b.pivots[pr.segment], self.translations[pr.segment])
                     for pr in b.primitives)


def pose_body(body: Body, pose: Pose) -> PosedBody:
    """Forward kinematics: world rotation and pivot position of every segment."""
    rots = np.zeros((NUM_SEGMENTS, 3, 3))
    trans = np.zeros((NUM_SEGMENTS, 3))
    piv = body.pivots
    for i, (_, parent, _) in enumerate(SEGMENTS):
        if parent < 0:
            rots[i] = pose.root_rotation @ pose.local_rotations[i]
            trans[i] = piv[i] + pose.root_translation
        else:
            rots[i] = rots[parent] @ pose.local_rotations[i]
            trans[i] = rots[parent] @ (piv[i] - piv[parent]) + trans[parent]
    return PosedBody(body, rots, trans)


def template_body() -> Body:
    """The average body: canonical surface coordinates are positions on it in rest pose."""
    return Body(BodyShape())


class SurfaceSampling:
    """A fixed vertex set on the body surface, shared by every subject (like SMPL's topology).

    Vertices lying inside another primitive of the template are dropped, so every
    vertex is on the outer surface of the union.
    """

    def __init__(self, approx_vertices: int = 6890):
        tmpl = template_body()
        areas = np.array([pr.area() for pr in tmpl.primitives])
        counts = np.maximum((approx_vertices * 1.25 * areas / areas.sum()).astype(int), 12)
        params, prim_ids = [], []
        for k, (pr, n) in enumerate(zip(tmpl.primitives, counts)):
            par = pr.sample_params(int(n))
            pts = pr.from_param(par)
            inside = np.zeros(len(pts), dtype=bool)
            for j, other in enumerate(tmpl.primitives):
                if j != k:
                    inside |= other.contains(pts, margin=1e-4)
            params.append(par[~inside])
            prim_ids.append(np.full(int((~inside).sum()), k))
        self.params = np.concatenate(params)
        self.primitive_ids = np.concatenate(prim_ids)

    def rest_vertices(self, body: Body) -> Float[np.ndarray, "V 3"]:
        out = np.zeros((len(self.params), 3))
        for k, pr in enumerate(body.primitives):
            sel = self.primitive_ids == k
            out[sel] = pr.from_param(self.params[sel])
        return out

    def posed_vertices(self, posed: PosedBody) -> Float[np.ndarray, "V 3"]:
        segs = np.array([posed.body.primitives[k].segment for k in self.primitive_ids])
        return posed.to_world(self.rest_vertices(posed.body), segs)
