"""The student benchmark's rows (``benchmarks/student_quality.py`` trains them, ``student_quality_report.py``
reports them): what each row trains, declared once; a row's index names its run folder and its line in the table.
"""

from ghnerf.base.tolerances import FEW_VIEWS_REL_THRESHOLD, REL_THRESHOLD
from ghnerf.student.train_config import ENERF_SOURCE_VIEW_MIX, OWN_POSE_NETWORK_2D_STEPS, TrainConfig

# The teacher-free student (no teacher network at test time): 2D pretraining of the encoder and its source heatmap
# head on the teacher's heatmaps of the training photographs, then those heatmaps pooled along each ray as ray
# evidence (the ghnerf-resnet18-evidence preset; ghnerf.student.pretrain_2d, ghnerf.student.ray_evidence).
# Rows measured before the 2D pretraining warped its views by default (session 17) keep it off.
UNWARPED_2D = {"pretrain_2d_augment": False}
TEACHER_FREE = {"train": {"pretrain_2d_steps": "--pretrain-2d-steps"} | UNWARPED_2D}
ENERF_MIX = {"source_view_mix": ENERF_SOURCE_VIEW_MIX}
# as many training examples with 3 source views as with 2 (ENeRF's mix has one in ten)
EVEN_MIX = {"source_view_mix": {2: 0.5, 3: 0.5}}
_TRAIN_DEFAULTS = TrainConfig()
# `ghnerf train`'s own step count (the benchmark's 500 are its CPU budget; the learning rate still halves half-way)
TRAIN_DEFAULT_STEPS = {"steps": _TRAIN_DEFAULTS.steps}
# `ghnerf train`'s whole optimisation: its steps, learning rate and halving schedule (the paper's, scaled)
TRAIN_DEFAULT_SCHEDULE = TRAIN_DEFAULT_STEPS | {"lr": _TRAIN_DEFAULTS.lr, "lr_halving_steps": _TRAIN_DEFAULTS.halving()}
TRAIN_DEFAULT_LABEL = (f"with `ghnerf train`'s optimisation: {TRAIN_DEFAULT_SCHEDULE['steps']} steps, rate "
                       f"{TRAIN_DEFAULT_SCHEDULE['lr']:g} halved every {TRAIN_DEFAULT_SCHEDULE['lr_halving_steps']}")
# The teacher-free student's own 2D pose network: 6000 2D pretraining steps (cosine rate), frozen after them.
FROZEN_2D = {"pretrain_2d_steps": 6000, "freeze_pretrained_2d": True} | UNWARPED_2D
# ... with four times the 2D pretraining (its 2D pose network is what limits it at K = 2): what the README's train
# commands for a student with its own pose network pass
LONG_FROZEN_2D = FROZEN_2D | {"pretrain_2d_steps": OWN_POSE_NETWORK_2D_STEPS}
# the teacher-free student's 2D pose network trained on warped views (ghnerf.student.augment_2d; TrainConfig's default)
AUGMENTED_2D = {"pretrain_2d_augment": True}

# The quick recipe (train_spec.QUICK_CONFIG, the main job's: row 22; `ghnerf train`'s default until row 35) and
# rows that train it otherwise
RECIPE_OVERRIDES = {"lift_missing_joints": True, "hypothesis_rel_threshold": FEW_VIEWS_REL_THRESHOLD}
RECIPE_LABEL = ("ghnerf-mediapipe + triangulated joint hypotheses at the rival's tolerance (0.1), lifted, residual "
                "heatmap head, detached heads, trained on 2/3 source views")


def recipe_row(train: dict, how: str) -> tuple:
    """A row of the default recipe trained with ``train`` (TrainConfig overrides), labelled with ``how``."""
    return ("ghnerf-mediapipe-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
            RECIPE_OVERRIDES | {"train": train}, f"{RECIPE_LABEL} {how}")


RUNS = (  # (config, heatmap targets, teacher, fused, config overrides (+ "train": TrainConfig ones), row label)
    ("enerf", "dataset joints", None, False, {}, "enerf"),
    ("enerf-heatmap", "dataset joints", None, False, {}, "enerf-heatmap (paper baseline)"),
    ("ghnerf-resnet18", "dataset joints", None, False, {}, "ghnerf-resnet18"),
    ("ghnerf-resnet18", "mediapipe shards", "mediapipe", False, {}, "ghnerf-resnet18"),
    ("ghnerf-resnet18", "mediapipe shards, fused over views", "mediapipe", True, {}, "ghnerf-resnet18"),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True, {"ray_evidence_samples": 0},
     "ghnerf-mediapipe without ray evidence"),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True, {}, "ghnerf-mediapipe"),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True, {"joint_hypotheses": True},
     "ghnerf-mediapipe + triangulated joint hypotheses"),
    ("ghnerf-resnet18-evidence", "mediapipe shards, fused over views", "mediapipe", True, TEACHER_FREE,
     "ghnerf-resnet18-evidence (2D-pretrained, own source heatmaps as ray evidence)"),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True,
     {"joint_hypotheses": True, "detach_heads": True},
     "ghnerf-mediapipe + triangulated joint hypotheses, detached heads"),
    ("enerf", "dataset joints", None, False, {"train": ENERF_MIX}, "enerf, trained on 2/3 source views"),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True,
     {"joint_hypotheses": True, "train": ENERF_MIX},
     "ghnerf-mediapipe + triangulated joint hypotheses, trained on 2/3 source views"),
    ("ghnerf-resnet18-evidence", "mediapipe shards, fused over views", "mediapipe", True,
     {"train": TEACHER_FREE["train"] | ENERF_MIX},
     "ghnerf-resnet18-evidence (2D-pretrained, own source heatmaps as ray evidence), trained on 2/3 source views"),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True,
     {"joint_hypotheses": True, "heatmap_residual": True, "train": ENERF_MIX},
     "ghnerf-mediapipe + triangulated joint hypotheses, residual heatmap head, trained on 2/3 source views"),
    ("ghnerf-resnet18-evidence", "mediapipe shards, fused over views", "mediapipe", True,
     {"joint_hypotheses": True, "heatmap_residual": True, "train": TEACHER_FREE["train"] | ENERF_MIX},
     ("ghnerf-resnet18-evidence + its own source keypoints triangulated, residual heatmap head, trained on 2/3 "
      "source views")),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True,
     {"joint_hypotheses": True, "heatmap_residual": True, "train": ENERF_MIX | {"steps": 1000}},
     ("ghnerf-mediapipe + triangulated joint hypotheses, residual heatmap head, trained on 2/3 source views, "
      "1000 steps")),
    ("ghnerf-mediapipe", "mediapipe shards, fused over views", "mediapipe", True,
     {"joint_hypotheses": True, "heatmap_residual": True, "detach_heads": True, "train": ENERF_MIX},
     ("ghnerf-mediapipe + triangulated joint hypotheses, residual heatmap head, detached heads, trained on 2/3 "
      "source views")),
    ("ghnerf-resnet18-evidence", "mediapipe shards, fused over views", "mediapipe", True,
     {"joint_hypotheses": True, "heatmap_residual": True, "detach_heads": True,
      "train": {"pretrain_2d_steps": 6000} | UNWARPED_2D | ENERF_MIX},
     ("ghnerf-resnet18-evidence + its own source keypoints triangulated, residual heatmap head, detached heads, "
      "6000 2D pretraining steps, trained on 2/3 source views")),
    ("ghnerf-resnet18-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     {"lift_missing_joints": False, "train": FROZEN_2D | ENERF_MIX},  # the preset before it lifted them
     ("ghnerf-resnet18-evidence + its own source keypoints triangulated, residual heatmap head, detached heads, "
      "6000 2D pretraining steps (cosine rate), encoder frozen after them, trained on 2/3 source views")),
    ("ghnerf-mediapipe-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     {"lift_missing_joints": False, "hypothesis_rel_threshold": REL_THRESHOLD,
      "train": ENERF_MIX | {"near_joints_fraction": 0.5}},
     ("ghnerf-mediapipe + triangulated joint hypotheses, residual heatmap head, detached heads, trained on 2/3 "
      "source views, half the rays near the target's joints")),
    ("ghnerf-mediapipe-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     {"lift_missing_joints": True, "hypothesis_rel_threshold": REL_THRESHOLD, "train": ENERF_MIX},
     ("ghnerf-mediapipe + triangulated joint hypotheses with the joints no 2 views agree on lifted from one view, "
      "residual heatmap head, detached heads, trained on 2/3 source views")),
    ("ghnerf-resnet18-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     {"lift_missing_joints": True, "train": FROZEN_2D | ENERF_MIX},
     ("ghnerf-resnet18-evidence + its own source keypoints triangulated, the joints no 2 views agree on lifted from "
      "one view, residual heatmap head, detached heads, 6000 2D pretraining steps (cosine rate), encoder frozen "
      "after them, trained on 2/3 source views")),
    ("ghnerf-mediapipe-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     RECIPE_OVERRIDES | {"train": ENERF_MIX},
     ("ghnerf-mediapipe + triangulated joint hypotheses at the rival's tolerance (0.1) with the joints no 2 views "
      "agree on lifted from one view, residual heatmap head, detached heads, trained on 2/3 source views")),
    ("ghnerf-resnet18-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     {"lift_missing_joints": True, "hypothesis_rel_threshold": FEW_VIEWS_REL_THRESHOLD,
      "train": FROZEN_2D | ENERF_MIX},
     ("ghnerf-resnet18-evidence + its own source keypoints triangulated at the rival's tolerance (0.1), lifted, "
      "residual heatmap head, detached heads, 6000 2D pretraining steps (cosine rate), encoder frozen after them, "
      "trained on 2/3 source views")),
    ("ghnerf-resnet18-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     {"lift_missing_joints": True, "hypothesis_rel_threshold": 0.025,
      "train": FROZEN_2D | ENERF_MIX},
     ("ghnerf-resnet18-evidence + its own source keypoints triangulated at tolerance 0.025, lifted, residual "
      "heatmap head, detached heads, 6000 2D pretraining steps (cosine rate), encoder frozen after them, trained on "
      "2/3 source views")),
    recipe_row(ENERF_MIX | TRAIN_DEFAULT_STEPS, f"for `ghnerf train`'s default {TRAIN_DEFAULT_STEPS['steps']} steps "
               "(row 22's recipe; the other rows: 500)"),
    ("ghnerf-resnet18-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     {"lift_missing_joints": True, "train": LONG_FROZEN_2D | ENERF_MIX},
     (f"ghnerf-resnet18-evidence + its own source keypoints triangulated, lifted, residual heatmap head, detached "
      f"heads, {LONG_FROZEN_2D['pretrain_2d_steps']} 2D pretraining steps (cosine rate), encoder frozen after them, "
      "trained on 2/3 source views (row 21 with 4x the 2D pretraining)")),
    recipe_row(EVEN_MIX, "half and half (row 22 with 5x the 3-view examples)"),
    recipe_row(ENERF_MIX | TRAIN_DEFAULT_SCHEDULE,
               f"{TRAIN_DEFAULT_LABEL} (row 22's recipe)"),
    ("ghnerf-mediapipe-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     RECIPE_OVERRIDES | {"ray_evidence_samples": 0, "train": ENERF_MIX},
     f"{RECIPE_LABEL}, without the ray evidence (row 22 without it)"),
    ("ghnerf-mediapipe-fast", "mediapipe shards, fused over views", "mediapipe", True,
     RECIPE_OVERRIDES | {"train": ENERF_MIX},
     f"{RECIPE_LABEL}, without the ray evidence, 2 fine samples (row 22 without the evidence, ENeRF's samples)"),
    ("ghnerf-mediapipe-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     RECIPE_OVERRIDES | {"ray_evidence_agreement": True, "train": ENERF_MIX},
     f"{RECIPE_LABEL}, + the views' agreement along each ray (row 22 with ray_evidence_agreement)"),
    ("ghnerf-mediapipe-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     RECIPE_OVERRIDES | {"ray_evidence_agreement": True, "ray_evidence_agreement_gain": 4.0, "train": ENERF_MIX},
     f"{RECIPE_LABEL}, + the views' agreement along each ray, its gain starting at 4 (row 31's, read from the start)"),
    ("ghnerf-resnet18-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     {"lift_missing_joints": True, "train": LONG_FROZEN_2D | AUGMENTED_2D | ENERF_MIX},
     "row 26, its 2D pretraining's views and targets warped at random (rotation, zoom, mirror, brightness)"),
    ("ghnerf-resnet18-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     {"lift_missing_joints": True, "source_heatmap_convs": 2, "train": LONG_FROZEN_2D | ENERF_MIX},
     "row 26, two 3x3 convolutions before its source heatmap head's readout (source_heatmap_convs)"),
    ("ghnerf-resnet18-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     {"lift_missing_joints": True, "hypothesis_teacher": "mediapipe",
      "train": LONG_FROZEN_2D | AUGMENTED_2D | ENERF_MIX},
     "row 33, MediaPipe's keypoints of the source views triangulated with its own (hypothesis_teacher)"),
    ("ghnerf-resnet18-mediapipe-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     {"train": LONG_FROZEN_2D | AUGMENTED_2D | ENERF_MIX | TRAIN_DEFAULT_SCHEDULE},
     f"row 35 (preset ghnerf-resnet18-mediapipe-hypotheses) {TRAIN_DEFAULT_LABEL}"),
    ("ghnerf-resnet18-hypotheses", "mediapipe shards, fused over views", "mediapipe", True,
     {"train": LONG_FROZEN_2D | AUGMENTED_2D | ENERF_MIX | TRAIN_DEFAULT_SCHEDULE},
     f"row 33 (preset ghnerf-resnet18-hypotheses) {TRAIN_DEFAULT_LABEL}"),
)
ENERF_ROWS = (0, 10)  # the image-quality reference
# the best students that read the teacher network's outputs at test time
TEACHER_IN_THE_LOOP = (7, 11, 13, 15, 16, 19, 20, 22, 25, 27, 28, 35, 36)
BEST_RECIPE = 35  # the row whose recipe `ghnerf train`'s defaults are (tests/ghnerf/student/test_train_cli.py)
DEFAULT_STEPS_ROW = 36  # that recipe trained as `ghnerf train` trains it by default (steps, rate; the same test)
# the best recipe without 2D pretraining (train_spec.QUICK_CONFIG: the main job's and a nightly's first model; row 28
# trains it with `ghnerf train`'s optimisation)
QUICK_RECIPE = 22
RECIPE_ROWS = (BEST_RECIPE, DEFAULT_STEPS_ROW)  # the goals are judged on both
# no teacher network at test time (the paper's setting)
TEACHER_FREE_ROWS = (8, 12, 14, 17, 18, 21, 23, 24, 26, 33, 34, 37)
# the teacher-free recipe the README reports: `ghnerf train --config ghnerf-resnet18-hypotheses` with train's other
# defaults (its pose network pretrained in 2D on warped views for 24000 steps, frozen; train's steps and rate; row 33
# is it at the benchmark's 500 steps and rate)
TEACHER_FREE_RECIPE = 37
FAST_PRESET_ROW = 30  # the preset ghnerf-mediapipe-fast as row 22 trains it
# What a run without --only trains: the rows the goals are judged on and the presets users are pointed to. The
# others are earlier experiments; the table keeps each with the commit it was measured at (--only ROW ... or --all
# measures them again).
CURRENT_ROWS = tuple(sorted({*ENERF_ROWS, *RECIPE_ROWS, QUICK_RECIPE, TEACHER_FREE_RECIPE, FAST_PRESET_ROW}))

