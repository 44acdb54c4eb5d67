"""Typed configuration of the student, with the paper's variants as presets (one source of defaults).

Per-level settings follow ENeRF's two-level cascade (configs/enerf/*.yaml ``cas_config``)
with GHNeRF's plane/sample counts (supplement §1.2): coarse 32 planes / 8 samples,
fine 8 planes / 4 samples.
"""

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from ghnerf.base.errors import ConfigError
from ghnerf.base.tolerances import FEW_VIEWS_REL_THRESHOLD, REL_THRESHOLD

AUTO = "auto"  # weights: the local files when present, else go on without them (ghnerf.student.weights)
PERCEPTUAL_WEIGHT = 0.01  # the paper's LPIPS weight, used by perceptual="auto" when the VGG16 weights are present
FROZEN_ENCODERS = frozenset({"mediapipe"})  # pretrained networks used as they are, not trained
PoseEncoder = Literal["mediapipe"]  # encoders whose output is BODY_25 joint heatmaps
Encoder = Literal["none", "resnet18", "resnet34", "dino", PoseEncoder]
POSE_ENCODERS = frozenset(get_args(PoseEncoder))
HypothesisTeacher = Literal["none", PoseEncoder]


@dataclass(frozen=True)
class LevelConfig:
    """One cascade level.

    Attributes:
        depth_planes: planes of the cost volume.
        samples_per_ray: NeRF samples per ray, placed around the regressed depth.
        volume_scale: cost-volume resolution relative to the input image.
        feature_level: which FPN output builds the volume (0: 1/4 res 32 ch, 1: 1/2 res 16 ch, 2: full 8 ch).
        render_feature_level: FPN output sampled for the NeRF's image features.
        render_scale: resolution this level renders at, relative to the input image.
        inverse_depth: planes and samples uniform in inverse depth (disparity).
    """

    depth_planes: int
    samples_per_ray: int
    volume_scale: float
    feature_level: int
    render_feature_level: int
    render_scale: float
    inverse_depth: bool


COARSE = LevelConfig(depth_planes=32, samples_per_ray=8, volume_scale=0.125, feature_level=0, render_feature_level=0,
                     render_scale=0.25, inverse_depth=True)
ENERF_FINE_SAMPLES = 2
FINE = LevelConfig(depth_planes=8, samples_per_ray=4, volume_scale=0.5, feature_level=1, render_feature_level=2,
                   render_scale=1.0, inverse_depth=False)
FPN_CHANNELS = (32, 16, 8)
FPN_SCALES = (0.25, 0.5, 1.0)  # resolution of each FPN output relative to the input image
DepthRendering = Literal["normalised", "softmax"]


@dataclass(frozen=True)
class LossWeights:
    """GHNeRF supplement §2.1: perceptual 0.01, heatmap 0.5, coordinate 0.01 (or 0.05); CSE as heatmaps.

    ``perceptual`` is ``"auto"`` by default: :data:`PERCEPTUAL_WEIGHT` when the VGG16 weights are in the local
    torch hub cache, else 0 (resolved, said and recorded before training; :mod:`ghnerf.student.weights`).

    ``source_heatmap`` weighs the 2D heatmaps read directly off the source views' human features
    (``StudentConfig.source_heatmap_head``), an auxiliary term of ours, not the paper's. ``levels`` weighs each
    cascade level's terms: equal in GHNeRF (empty: 1 each), (0.1, 1.0) in ENeRF (``cas_config.loss_weight``).
    """

    color: float = 1.0
    perceptual: float | Literal["auto"] = AUTO
    heatmap: float = 0.5
    cse: float = 0.5
    coord: float = 0.01
    source_heatmap: float = 0.5
    levels: tuple[float, ...] = ()  # empty: every level 1


def source_views_problem(n: int) -> str | None:
    """What is wrong with ``n`` source views per target, or None."""
    return "the variance cost volume needs at least 2 source views" if n < 2 else None


@dataclass(frozen=True)
class StudentConfig:
    """Everything that defines a student network and its losses.

    Attributes:
        name: preset name.
        levels: the cascade, coarse to fine.
        encoder: human feature encoder ("none" for the ENeRF baselines).
        pretrained: "auto" (the encoder's pretrained weights when they are in the local caches, else a random
            init; said and recorded), "imagenet" (load them from the local caches; an error naming the file
            when absent), "none" (random init, written into every report), or a path to a weights file.
        heatmap_head, cse_head, coord_head: which GHNeRF heads exist.
        source_heatmap_head: a 1x1 convolution that reads 2D joint heatmaps off each source view's projected
            human features, trained against the source views' own targets (deep supervision of the encoder:
            dense 2D targets every step instead of only what reaches it through the rendered rays); unused
            at inference.
        source_heatmap_convs: 3x3 convolutions before that head's 1x1 readout (:func:`ghnerf.student.model.
            source_heatmap_head`; 0: the readout alone). A teacher-free student triangulates that head's peaks, so
            their precision, not only whether they fall within PCK's radius, decides its joint hypotheses.
        num_joints, cse_dim: head sizes.
        hidden: NeRF MLP width (ENeRF: 64).
        human_projection_dim: channels of the human feature maps after a learned 1x1 projection (computed
            once per source view), which are what each sample reads.
        human_feature_dim: width of the pooled human feature.
        human_mean_skip: also give the heads the plain mean over source views of the projected human features
            (a linear path next to the pooling network; ours): with a pose network as encoder, the views'
            agreement on a joint reaches the heatmap head directly.
        ray_evidence_samples: give the heads each ray's multi-view joint evidence: source-view heatmaps at this
            many points across the target's near/far, averaged over views, maximum along the ray (ours;
            :mod:`ghnerf.student.ray_evidence`). The heatmaps are the pose network's with a pose encoder
            (``mediapipe``), else the student's own source heatmap head's (teacher-free). 0: off.
        ray_evidence_agreement: also give the heatmap head, per ray and joint, the views' agreement along the ray:
            the maximum over the evidence's points of the *smallest* of the source views' heatmaps there (high only
            where every view sees the joint; ours, :func:`ghnerf.student.ray_evidence.ray_joint_evidence`). Needs
            ``ray_evidence_samples``.
        ray_evidence_agreement_gain: the learnable gain that agreement starts with in the heatmap's pre-activation
            (0: a model starts as it would without it; the evidence's own starts at 4 with joint hypotheses).
        joint_hypotheses: also give the heatmap head, per ray, the Gaussian distance to the projection of the
            source-view keypoints triangulated robustly (ours, :mod:`ghnerf.student.joint_hypotheses`): with a pose
            network as encoder, its keypoints (the triangulated teacher's heatmap of the target view); teacher-free,
            the peaks of the student's own source heatmap head.
        hypothesis_teacher: a pose network (one of the pose encoders: ``mediapipe``) whose keypoints of the source
            views join the student's own source heatmap peaks in that triangulation, each an observation of its own
            (:func:`ghnerf.student.joint_hypotheses.triangulate_source_keypoints`): a joint stands where two
            cameras agree, whichever network saw it there. The teacher then runs at test time (teacher-in-the-loop);
            "none": the student's own peaks alone. Needs joint hypotheses from the source heatmap head.
        joint_hypothesis_sigma: that Gaussian's width in source-image pixels (the teachers' target sigma).
        hypothesis_rel_threshold: the outlier tolerance of that triangulation (share of each view's keypoint box
            diagonal; :func:`ghnerf.base.multiview.consistency_report`). The default
            (:data:`ghnerf.base.tolerances.REL_THRESHOLD`) is what checkpoints written before this field used;
            ``ghnerf-mediapipe-hypotheses`` takes the triangulated-teacher rival's
            (:data:`ghnerf.base.tolerances.FEW_VIEWS_REL_THRESHOLD`).
        lift_missing_joints: in the joint hypotheses, place a joint no two source views agree on where the most
            confident view that detected it sees it, at the depth of a triangulated neighbour
            (:mod:`ghnerf.base.joint_lifting`; ours).
        heatmap_residual: the priors (ray evidence, joint hypotheses) enter the heatmap once per ray, after
            compositing: a ray's heatmap is ``sigmoid(head MLP composited along the ray + a * prior + b)`` instead
            of the composite of per-sample ``sigmoid(MLP + a * prior + b)`` (ours). The MLP's last layer starts at
            zero, so the rendered heatmap starts as exactly the prior's (with joint hypotheses: the triangulated
            teacher's heatmap of the target view), whatever the geometry has learned, and the head learns only a
            correction, carried by the body's samples.
        detach_heads: the heatmap and CSE heads read the NeRF's intermediate feature, compositing weights and sample
            positions without gradient (ours): their losses cannot trade the radiance field's image quality for
            joints, and the NeRF trains as ENeRF does.
        source_views: source views per target (GHNeRF 3; ENeRF's ZJU-MoCap evaluation 2).
        depth_rendering: rendered depth as the compositing-weighted mean depth with the weights renormalised
            ("normalised", ours) or, as ENeRF's ``raw2outputs``, softmax(weights) . z in the level's sampling
            space ("softmax").
        losses: loss weights.

    GHNeRF's settings where they differ from ENeRF's (fine samples per ray, source views, depth rendering, level
    loss weights) are the defaults; :meth:`with_enerf_settings` gives ENeRF's.
    """

    name: str
    levels: tuple[LevelConfig, ...] = (COARSE, FINE)
    encoder: Encoder = "none"
    pretrained: str = AUTO
    heatmap_head: bool = True
    cse_head: bool = False
    coord_head: bool = False
    source_heatmap_head: bool = False
    source_heatmap_convs: int = 0
    num_joints: int = 25
    cse_dim: int = 16
    hidden: int = 64
    human_projection_dim: int = 32
    human_feature_dim: int = 32
    human_mean_skip: bool = False
    ray_evidence_samples: int = 0
    ray_evidence_agreement: bool = False
    ray_evidence_agreement_gain: float = 0.0
    joint_hypotheses: bool = False
    hypothesis_teacher: HypothesisTeacher = "none"
    joint_hypothesis_sigma: float = 7.0
    lift_missing_joints: bool = False
    hypothesis_rel_threshold: float = REL_THRESHOLD
    heatmap_residual: bool = False
    detach_heads: bool = False
    source_views: int = 3
    depth_rendering: DepthRendering = "normalised"
    losses: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self):
        if not self.levels:
            raise ConfigError("a student needs at least one cascade level")
        if self.encoder != "none" and not self.heatmap_head and not self.cse_head:
            raise ConfigError(f"{self.name}: a human encoder without a heatmap or CSE head has no use")
        if self.source_heatmap_head and (self.encoder == "none" or not self.heatmap_head):
            raise ConfigError(f"{self.name}: the source heatmap head needs a human encoder and the heatmap head")
        if self.source_heatmap_convs < 0 or self.source_heatmap_convs and not self.source_heatmap_head:
            raise ConfigError(f"{self.name}: source_heatmap_convs ({self.source_heatmap_convs}) must be >= 0 and "
                              "belongs to the source heatmap head (source_heatmap_head=True)")
        if self.ray_evidence_samples and not self.heatmap_head or self.ray_evidence_samples and (
                self.encoder not in POSE_ENCODERS and not self.source_heatmap_head):
            raise ConfigError(f"{self.name}: ray evidence reads source-view heatmaps; it needs the heatmap head and "
                              f"a pose network as encoder ({' or '.join(sorted(POSE_ENCODERS))}) or the source "
                              "heatmap head")
        if self.joint_hypotheses and (self.encoder not in POSE_ENCODERS and not self.source_heatmap_head
                                      or not self.heatmap_head):
            raise ConfigError(f"{self.name}: joint hypotheses triangulate a pose network's keypoints; they need "
                              f"encoder {' or '.join(sorted(POSE_ENCODERS))} or the source heatmap head "
                              "(teacher-free), and the heatmap head")
        if self.hypothesis_teacher != "none" and (self.hypothesis_teacher not in POSE_ENCODERS
                                                  or not self.joint_hypotheses or self.encoder in POSE_ENCODERS):
            raise ConfigError(f"{self.name}: hypothesis_teacher {self.hypothesis_teacher!r} adds a pose network's "
                              "keypoints to the joint hypotheses of the student's own source heatmap head; it must "
                              f"be none or one of {', '.join(sorted(POSE_ENCODERS))} and needs joint_hypotheses "
                              "with a trained encoder (not a pose network, whose keypoints they already are)")
        if self.ray_evidence_agreement and not self.ray_evidence_samples:
            raise ConfigError(f"{self.name}: ray_evidence_agreement is read with the ray evidence; it needs "
                              "ray_evidence_samples")
        if self.lift_missing_joints and not self.joint_hypotheses:
            raise ConfigError(f"{self.name}: lift_missing_joints lifts joints of the joint hypotheses; it needs "
                              "joint_hypotheses")
        if self.heatmap_residual and not (self.joint_hypotheses or self.ray_evidence_samples):
            raise ConfigError(f"{self.name}: heatmap_residual corrects the heatmap priors; it needs joint_hypotheses "
                              "or ray_evidence_samples")
        if not self.hypothesis_rel_threshold > 0:
            raise ConfigError(f"{self.name}: hypothesis_rel_threshold must be > 0 (a share of the keypoint box "
                              f"diagonal), not {self.hypothesis_rel_threshold}")
        if not self.joint_hypothesis_sigma > 0:
            raise ConfigError(f"{self.name}: joint_hypothesis_sigma must be > 0 pixels, not "
                              f"{self.joint_hypothesis_sigma}")
        if self.ray_evidence_samples == 1 or self.ray_evidence_samples < 0:
            raise ConfigError(f"{self.name}: ray_evidence_samples must be 0 (off) or at least 2")
        if source_views_problem(self.source_views):
            raise ConfigError(source_views_problem(self.source_views))
        if self.losses.levels and len(self.losses.levels) != len(self.levels):
            raise ConfigError(f"{self.name}: {len(self.losses.levels)} level loss weights for "
                              f"{len(self.levels)} cascade levels")

    @property
    def has_own_pose_network(self) -> bool:
        """Whether it triangulates the keypoints of its own source heatmap head (a pose network of its own, which the
        2D pretraining trains: ``ghnerf train``'s ``--pretrain-2d-steps auto``)."""
        return self.joint_hypotheses and self.source_heatmap_head

    def with_enerf_settings(self) -> "StudentConfig":
        """This config with ENeRF's values where GHNeRF's differ (configs/enerf/zjumocap_eval.yaml over
        dtu_pretrain.yaml): 2 fine samples per ray, 2 source views, softmax depth, level loss weights 0.1 / 1."""
        levels = self.levels[:-1] + (replace(self.levels[-1], samples_per_ray=ENERF_FINE_SAMPLES),)
        return replace(self, levels=levels, source_views=2, depth_rendering="softmax",
                       losses=replace(self.losses, levels=(0.1,) * (len(levels) - 1) + (1.0,)))

    def without_pretrained_load(self) -> "StudentConfig":
        """This config with no pretrained weights to load (they come from a checkpoint instead). A frozen
        encoder (mediapipe) has no weights in checkpoints and keeps its bundled model."""
        return self if self.encoder in FROZEN_ENCODERS else replace(self, pretrained="none")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "StudentConfig":
        known = {f.name for f in dataclasses.fields(StudentConfig)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown student config keys {sorted(unknown)}")
        d = dict(d)
        d["levels"] = tuple(LevelConfig(**lv) for lv in d.get("levels", ()))
        losses = dict(d.get("losses", {}))
        if "levels" in losses:
            losses["levels"] = tuple(losses["levels"])
        d["losses"] = LossWeights(**losses)
        return StudentConfig(**d)

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


PRESETS: dict[str, StudentConfig] = {
    "enerf": StudentConfig("enerf", heatmap_head=False),
    "enerf-heatmap": StudentConfig("enerf-heatmap"),
    "ghnerf-resnet18": StudentConfig("ghnerf-resnet18", encoder="resnet18"),
    "ghnerf-resnet34": StudentConfig("ghnerf-resnet34", encoder="resnet34"),
    "ghnerf-dino": StudentConfig("ghnerf-dino", encoder="dino"),
    # ours: the frozen pose network as human encoder, with the linear view-mean path, each ray's multi-view joint
    # evidence (32 points along the ray; benchmarks/student_quality.py, 500 CPU steps, 3 source views: PCK 0.64
    # without it, 0.81 with it, the teacher 0.77) and a heatmap weight of 5 (0.5 learns the heads too slowly at a
    # few hundred steps: PCK 0.49 vs 0.58 after 300 steps without the evidence, 0.77 vs 0.80 after 500 with it)
    "ghnerf-mediapipe": StudentConfig("ghnerf-mediapipe", encoder="mediapipe", pretrained="bundled",
                                      human_mean_skip=True, ray_evidence_samples=32, losses=LossWeights(heatmap=5.0)),
    # ours: ghnerf-mediapipe that also reads, per ray, the source views' keypoints triangulated robustly and projected
    # (ghnerf.student.joint_hypotheses), the joints no two views agree on lifted from one view
    # (ghnerf.base.joint_lifting), added after compositing (heatmap_residual), its heads on detached geometry: it
    # starts as the (lifted) triangulated teacher, at the rival's tolerance, and learns where to correct it
    # (benchmarks/student_quality.py rows 16, 20 and 22, README "Student quality")
    "ghnerf-mediapipe-hypotheses": StudentConfig("ghnerf-mediapipe-hypotheses", encoder="mediapipe",
                                                 pretrained="bundled", human_mean_skip=True, ray_evidence_samples=32,
                                                 joint_hypotheses=True, lift_missing_joints=True,
                                                 hypothesis_rel_threshold=FEW_VIEWS_REL_THRESHOLD,
                                                 heatmap_residual=True, detach_heads=True,
                                                 losses=LossWeights(heatmap=5.0)),
    # ours, teacher-free at test time: the ResNet-18 student's own source heatmap head (deep supervision on the
    # source views' targets; train with --pretrain-2d-steps) pooled along each ray as ray evidence
    "ghnerf-resnet18-evidence": StudentConfig("ghnerf-resnet18-evidence", encoder="resnet18",
                                              source_heatmap_head=True, human_mean_skip=True,
                                              ray_evidence_samples=32, losses=LossWeights(heatmap=5.0)),
}

# ours, teacher-free at test time: ghnerf-resnet18-evidence that triangulates the peaks of its own source heatmaps as
# joint hypotheses (the joints no two views agree on lifted from one), added after compositing, heads on detached
# geometry (the teacher-free ghnerf-mediapipe-hypotheses); train it with --pretrain-2d-steps 24000
# --freeze-pretrained-2d, its 2D pretraining on warped views by default (benchmarks/student_quality.py row 33, seed 0:
# PCK 0.860 / 0.882 / 0.902 with 2 / 3 / 4 source views, seed 1 0.793 / 0.838 / 0.874; the teacher 0.774 on the
# view itself and 0.781 / 0.848 / 0.876 triangulated)
PRESETS["ghnerf-resnet18-hypotheses"] = replace(
    PRESETS["ghnerf-resnet18-evidence"], name="ghnerf-resnet18-hypotheses", joint_hypotheses=True,
    lift_missing_joints=True, heatmap_residual=True, detach_heads=True)

# ours: ghnerf-resnet18-hypotheses with MediaPipe at test time too: its keypoints of the source views are triangulated
# together with the student's own source heatmap peaks, each an observation of its own (hypothesis_teacher; a joint
# stands where two cameras agree, whichever network saw it). Train it as ghnerf-resnet18-hypotheses.
PRESETS["ghnerf-resnet18-mediapipe-hypotheses"] = replace(
    PRESETS["ghnerf-resnet18-hypotheses"], name="ghnerf-resnet18-mediapipe-hypotheses", hypothesis_teacher="mediapipe")


# ours: ghnerf-mediapipe-hypotheses without the ray evidence and with ENeRF's 2 fine samples: about half its render
# time (benchmarks/enerf_core_speed.py case ours-fast: 0.52x / 0.64x the original ENeRF's body box / full frame at
# 512², the default 1.04x / 1.52x), the same PSNR within two seeds' spread, and exactly the lifted triangulated
# teacher's PCK: the learned margin over it that the evidence gives the default is gone (student benchmark row 30)
PRESETS["ghnerf-mediapipe-fast"] = replace(
    PRESETS["ghnerf-mediapipe-hypotheses"], name="ghnerf-mediapipe-fast", ray_evidence_samples=0,
    levels=(COARSE, replace(FINE, samples_per_ray=ENERF_FINE_SAMPLES)))


def preset(name: str, cse: bool = False, coord: bool = False, **overrides) -> StudentConfig:
    """A preset by name (``ghnerf-resnet18+cse+coord`` style suffixes or the keyword switches)."""
    base, *switches = name.split("+")
    if base not in PRESETS:
        raise ConfigError(f"unknown student config {base!r}; choose one of {', '.join(PRESETS)}")
    bad = set(switches) - {"cse", "coord"}
    if bad:
        raise ConfigError(f"unknown config switch {sorted(bad)}; use +cse and/or +coord")
    cfg = PRESETS[base]
    cse = cse or "cse" in switches
    coord = coord or "coord" in switches
    suffix = ("+cse" if cse else "") + ("+coord" if coord else "")
    return replace(cfg, name=base + suffix, cse_head=cse, coord_head=coord, **overrides)
