"""OpenPose BODY_25 keypoint order, limbs and render colours.

Source: CMU-Perceptual-Computing-Lab/openpose `poseParameters.cpp`
(`POSE_BODY_25_BODY_PARTS`) and `poseParametersRender.hpp` (pairs, colours);
copied into ../shared/reference/formats.md §3.
"""

BODY25_NAMES: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye",
    "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)
NUM_JOINTS = len(BODY25_NAMES)  # 25
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(BODY25_NAMES)}

# (right, left) joint pairs a mirror image or a left/right swap exchanges.
BODY25_LR_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (JOINT_INDEX[f"R{p}"], JOINT_INDEX[f"L{p}"]) for p in ("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Eye",
                                                           "Ear", "BigToe", "SmallToe", "Heel"))
# Each joint's partner in a mirror image (itself for Nose, Neck, MidHip): keypoints[BODY25_MIRROR] relabels them.
BODY25_MIRROR: tuple[int, ...] = tuple(
    next((b if j == a else a for a, b in BODY25_LR_PAIRS if j in (a, b)), j) for j in range(NUM_JOINTS))

# 24 limbs drawn by OpenPose (POSE_BODY_25_PAIRS_RENDER_GPU).
BODY25_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11),
    (8, 12), (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19),
    (19, 20), (14, 21), (11, 22), (22, 23), (11, 24),
)

# RGB render colour per keypoint.
BODY25_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 85), (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0),
    (85, 255, 0), (0, 255, 0), (255, 0, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255),
    (0, 170, 255), (0, 85, 255), (0, 0, 255), (255, 0, 170), (170, 0, 255), (255, 0, 255),
    (85, 0, 255), (0, 0, 255), (0, 0, 255), (0, 0, 255), (0, 255, 255), (0, 255, 255),
    (0, 255, 255),
)

# COCO-17 keypoint names (openpifpaf plugins/coco/constants.py COCO_KEYPOINTS; formats.md §3).
COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)
# BODY_25 index of each COCO-17 keypoint (EasyMocap easymocap/dataset/config.py COCO17_IN_BODY25).
COCO17_IN_BODY25: tuple[int, ...] = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)
# COCO person skeleton, 1-based keypoint ids (openpifpaf COCO_PERSON_SKELETON), as COCO's categories carry it.
COCO17_SKELETON: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9), (8, 10), (9, 11),
    (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)
