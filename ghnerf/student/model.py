"""GHNeRF: the ENeRF cascade with a human feature encoder and heatmap / CSE / coordinate heads.

``forward`` only composes the pieces (R1): FPN features and human features of the
source views (computed once, :meth:`GHNeRF.encode`), then per level: depth planes
-> variance cost volume -> 3D U-Net -> depth distribution -> depth-guided samples
-> volume + image features -> NeRF MLP -> heads -> volume rendering.
One target view per call; V source views.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from ghnerf.student.config import FPN_CHANNELS, FPN_SCALES, POSE_ENCODERS, StudentConfig
from ghnerf.student.cost_reg import CostRegNet
from ghnerf.student.cost_volume import (
    DepthEstimate,
    depth_regression,
    from_space,
    next_level_range,
    plane_coordinate,
    plane_values,
    to_space,
    variance_volume,
)
from ghnerf.student.encoders import ResNetEncoder, build_encoder
from ghnerf.student.feature_net import FeatureNet
from ghnerf.student.fields import FeatureHead, NeRFField, ViewPooling
from ghnerf.student.geometry import camera_centres, pixel_grid, project, sample_maps, scale_K
from ghnerf.student.heads import Head
from ghnerf.student.joint_hypotheses import hypothesis_heatmaps, source_keypoints, triangulate_source_keypoints
from ghnerf.student.layouts import Conv1x1, channels_last, channels_last_grad, for_sampling
from ghnerf.student.model_io import LevelOutputs, MultiViewBatch, SourceEncoding
from ghnerf.student.ray_evidence import ray_joint_evidence
from ghnerf.student.renderers import (
    accumulation,
    alpha_from_density,
    composite,
    compositing_weights,
    expected_depth,
    softmax_weighted,
)
from ghnerf.student.samplers import depth_guided_samples
from ghnerf.student.volume_window import VolumeWindow, volume_window, window_pixels
from ghnerf.student.weights import HYPOTHESIS_TEACHER_NOTE

# With ray evidence the heatmap head starts as sigmoid(8 E - 4): evidence 0 -> 0.02, 0.5 -> 0.5, 1 -> 0.98, so
# a joint two of three views agree on (E ~ 0.6) is above OpenPose's 0.1 threshold and one view alone (E ~ 0.3)
# barely is; both numbers are learned from there.
EVIDENCE_GAIN, EVIDENCE_BIAS = 8.0, -4.0
# With triangulated joint hypotheses as well, the head starts as sigmoid(8 T + 4 E - 4): the hypothesis places the
# peak (the triangulated teacher's answer), the evidence keeps a joint the triangulation missed (E ~ 1: 0.5).
HYPOTHESIS_GAIN, EVIDENCE_GAIN_WITH_HYPOTHESES = 8.0, 4.0
SOURCE_HEATMAP_BIAS = -4.0


def source_heatmap_head(channels: int, joints: int, convs: int = 0) -> nn.Module:
    """The source heatmap head over ``channels`` projected human feature maps: ``convs`` 3x3 convolutions (ReLU,
    ``channels`` wide; spatial context at the maps' half resolution) before a 1x1 readout of ``joints`` logits,
    whose bias starts near empty maps (sigmoid(-4) = 0.018), as the targets mostly are. ``convs`` = 0: the 1x1
    readout alone (a linear read of each pixel's features)."""
    readout = Conv1x1(channels, joints)
    nn.init.constant_(readout.bias, SOURCE_HEATMAP_BIAS)
    if not convs:
        return readout
    layers = [m for _ in range(convs) for m in (nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())]
    return nn.Sequential(*layers, readout)


@dataclass(frozen=True, eq=False)
class LevelVolume:
    """One level's regularised cost volume: features (8, D, h, w) and its depth estimate."""

    features: Tensor
    estimate: DepthEstimate


def _view_dirs(points: Float[Tensor, "N 3"], tgt_centre: Float[Tensor, "3"], src_centres: Float[Tensor, "V 3"]):
    """ENeRF's 4-d view feature per (point, view): normalised target-minus-source direction and their dot."""
    d_t = F.normalize(points - tgt_centre, dim=-1)[None]
    d_s = F.normalize(points[None] - src_centres[:, None], dim=-1)
    diff = d_t - d_s
    dot = (d_t * d_s).sum(-1, keepdim=True)
    return torch.cat([F.normalize(diff, dim=-1), dot], dim=-1).permute(1, 0, 2)


class GHNeRF(nn.Module):
    """The student network for a :class:`StudentConfig`."""

    def __init__(self, cfg: StudentConfig):
        super().__init__()
        self.cfg = cfg
        self.human_path_frozen = False  # freeze_human_path
        self.feature_net = FeatureNet()
        self.cost_regs = nn.ModuleList(CostRegNet(FPN_CHANNELS[lv.feature_level], deep=i > 0)
                                       for i, lv in enumerate(cfg.levels))
        self.fields = nn.ModuleList(NeRFField(FPN_CHANNELS[lv.render_feature_level] + 3, cfg.hidden)
                                    for lv in cfg.levels)
        inter = self.fields[0].intermediate_dim
        self.encoder = build_encoder(cfg.encoder, cfg.pretrained)
        for convnet in (self.feature_net, self.encoder if isinstance(self.encoder, ResNetEncoder) else None):
            if convnet is not None:  # their 2D convolutions run channels-last (ghnerf.student.layouts)
                channels_last(convnet)
        head_in = inter
        if self.encoder is not None:
            # A 1x1 projection applied once per source view (cached in encode): the per-sample work then
            # handles human_projection_dim channels instead of the encoder's 512 / 768.
            self.human_proj = Conv1x1(self.encoder.out_channels, cfg.human_projection_dim)
            self.human_pool = ViewPooling(cfg.human_projection_dim, cfg.human_feature_dim, hidden=64,
                                          use_dirs=False)
            head_in += cfg.human_feature_dim + (cfg.human_projection_dim if cfg.human_mean_skip else 0)
            head_in += cfg.num_joints * self.num_priors
        gains = (((EVIDENCE_GAIN_WITH_HYPOTHESES if cfg.joint_hypotheses else EVIDENCE_GAIN,)
                  if cfg.ray_evidence_samples else ()) + ((HYPOTHESIS_GAIN,) if cfg.joint_hypotheses else ())
                 + ((cfg.ray_evidence_agreement_gain,) if cfg.ray_evidence_agreement else ()))
        prior = (dict(prior_gain=gains[0] if len(gains) == 1 else gains, prior_bias=EVIDENCE_BIAS) if gains
                 else {})
        self.heatmap_head = (FeatureHead(head_in, cfg.num_joints, cfg.hidden, "sigmoid", **prior)
                             if cfg.heatmap_head else None)
        self.cse_head = FeatureHead(head_in, cfg.cse_dim, cfg.hidden, "none") if cfg.cse_head else None
        self.coord_head = FeatureHead(inter, 3, cfg.hidden, "none") if cfg.coord_head else None
        self.source_heatmap_head = (source_heatmap_head(cfg.human_projection_dim, cfg.num_joints,
                                                        cfg.source_heatmap_convs) if cfg.source_heatmap_head else None)
        # the pose network whose keypoints join the own ones in the joint hypotheses (frozen, no parameters)
        self.hypothesis_teacher = (None if cfg.hypothesis_teacher == "none"
                                   else build_encoder(cfg.hypothesis_teacher, "auto"))

    def freeze_human_path(self) -> None:
        """Keep the encoder, its projection and the source heatmap head as they are from now on: no gradient, and
        BatchNorm statistics kept (eval mode, also under :meth:`train`). After 2D pretraining they are the student's
        own pose network, used as a frozen one is (``TrainConfig.freeze_pretrained_2d``)."""
        if self.source_heatmap_head is None:
            raise ValueError(f"{self.cfg.name} has no source heatmap head: its encoder is not a 2D pose network to "
                             "freeze")
        self.human_path_frozen = True
        for module in self.human_path():
            module.requires_grad_(False)
        self.train(self.training)

    def human_path(self) -> tuple[nn.Module, ...]:
        """The modules between a source image and its source heatmaps: encoder, projection, source heatmap head."""
        return self.encoder, self.human_proj, self.source_heatmap_head

    def train(self, mode: bool = True) -> "GHNeRF":
        super().train(mode)
        if self.human_path_frozen:
            for module in self.human_path():
                module.eval()
        return self

    @property
    def num_priors(self) -> int:
        """Per-joint priors the heatmap head reads: the ray evidence, the joint hypotheses, the views' agreement."""
        return bool(self.cfg.ray_evidence_samples) + bool(self.cfg.joint_hypotheses) + self.cfg.ray_evidence_agreement

    @property
    def pretrained_weights(self) -> str:
        """Where the encoder's weights came from (and the hypothesis teacher's network, which runs at test time)."""
        own = "n/a (no encoder)" if self.encoder is None else self.encoder.weights_source
        teacher = self.hypothesis_teacher
        return own if teacher is None else f"{own}{HYPOTHESIS_TEACHER_NOTE}{teacher.weights_source}"

    def encode(self, batch: MultiViewBatch) -> SourceEncoding:
        """Features of the source views; reuse it for every target that shares these sources."""
        fpn = tuple(map(channels_last_grad, self.feature_net(batch.src_images * 2 - 1)))  # ENeRF: images in [-1, 1]
        human = pose = joints3d = None
        if self.encoder is not None:
            images = (self._photographs(batch, "encoder") if getattr(self.encoder, "wants_unmasked", False)
                      else batch.src_images)
            keypoints = None
            if self.cfg.encoder in POSE_ENCODERS:  # its own heatmaps are kept
                if self.cfg.joint_hypotheses:
                    raw, keypoints = self.encoder.heatmaps_and_keypoints(images, batch.src_photos)
                else:
                    raw = self.encoder(images, batch.src_photos)
                human = self.human_proj(raw)
                pose = for_sampling(raw) if self.cfg.ray_evidence_samples else None
            else:  # the student's own source heatmaps (and their keypoints; hypothesis_teacher's join them) stand in
                human = self.project_human(images)
                if self.cfg.ray_evidence_samples or self.cfg.joint_hypotheses:
                    own = self.source_heatmaps(human)
                    pose = for_sampling(own) if self.cfg.ray_evidence_samples else None
                    keypoints = source_keypoints(own) if self.cfg.joint_hypotheses else None
            if keypoints is not None:
                joints3d = triangulate_source_keypoints(keypoints, batch.src_K, batch.src_w2c,
                                                        lift=self.cfg.lift_missing_joints,
                                                        rel_threshold=self.cfg.hypothesis_rel_threshold,
                                                        more_keypoints=self._teacher_keypoints(batch))
            human = channels_last_grad(human)
        return SourceEncoding(fpn, human, pose, joints3d)

    def _teacher_keypoints(self, batch: MultiViewBatch) -> Float[np.ndarray, "V 25 3"] | None:
        """``hypothesis_teacher``'s keypoints of the source photographs (pixels of the source images), or None."""
        if self.hypothesis_teacher is None:
            return None
        return self.hypothesis_teacher.heatmaps_and_keypoints(self._photographs(batch, "hypothesis teacher"),
                                                              batch.src_photos)[1]

    def _photographs(self, batch: MultiViewBatch, reader: str) -> Float[Tensor, "V 3 H W"]:
        """The unmasked source photographs, which a pose network reads (``reader`` names it in the error)."""
        if batch.src_images_unmasked is None:
            raise ValueError(f"{self.cfg.name}'s {reader} needs the unmasked source photographs "
                             "(MultiViewBatch.src_images_unmasked)")
        return batch.src_images_unmasked

    def project_human(self, images: Float[Tensor, "V 3 H W"]) -> Float[Tensor, "V C h w"]:
        """``human_proj(encoder(images))``, projected before upsampling where the encoder can
        (:func:`~ghnerf.student.encoders.project_then_upsample`)."""
        projected = getattr(self.encoder, "projected", None)
        return self.human_proj(self.encoder(images)) if projected is None else projected(images, self.human_proj)

    def source_heatmaps(self, human: Float[Tensor, "V C h w"]) -> Float[Tensor, "V J h w"]:
        """The source heatmap head's joint heatmaps of projected human features (``SourceEncoding.human``, at
        half the image resolution: h, w = H/2, W/2)."""
        if self.source_heatmap_head is None:
            raise ValueError(f"{self.cfg.name} has no source heatmap head")
        return torch.sigmoid(self.source_heatmap_head(human))

    def head_priors(self, batch: MultiViewBatch, enc: SourceEncoding, uv: Float[Tensor, "R 2"],
                    K: Float[Tensor, "3 3"]) -> Float[Tensor, "R J"] | Float[Tensor, "R P J"] | None:
        """The rays' per-joint priors for the heatmap head, or None when none is configured: the multi-view joint
        evidence (:mod:`ghnerf.student.ray_evidence`), the triangulated joint hypotheses
        (:mod:`ghnerf.student.joint_hypotheses`) and the views' agreement (``ray_evidence_agreement``), in that
        order, stacked on dim 1 when more than one.

        Args:
            uv: target pixels at the resolution of ``K``.
        """
        priors, agreement = [], None
        if self.cfg.ray_evidence_samples:
            evidence = ray_joint_evidence(uv, K, batch.tgt_w2c, batch.near_far, enc.pose_heatmaps, batch.src_K,
                                          batch.src_w2c, batch.image_size, self.cfg.ray_evidence_samples,
                                          agreement=self.cfg.ray_evidence_agreement)
            if self.cfg.ray_evidence_agreement:
                evidence, agreement = evidence.unbind(1)
            priors.append(evidence)
        if self.cfg.joint_hypotheses:
            sigma = self.cfg.joint_hypothesis_sigma * float(K[0, 0] / batch.tgt_K[0, 0])  # at K's resolution
            priors.append(hypothesis_heatmaps(uv, K, batch.tgt_w2c, enc.joints3d, sigma))
        if agreement is not None:  # last: the order of the head's prior gains
            priors.append(agreement)
        return None if not priors else priors[0] if len(priors) == 1 else torch.stack(priors, dim=1)

    def forward(self, batch: MultiViewBatch, rays: list[Tensor | None] | None = None,
                encoding: SourceEncoding | None = None, with_source_heatmaps: bool = False,
                chunk: int | None = None):
        """Render every level.

        Args:
            batch: target + source views.
            rays: per level, (R, 2) pixel coordinates at that level's render resolution, None for every
                pixel, or an empty (0, 2) tensor to skip rendering that level (its depth still guides the next).
            encoding: precomputed :meth:`encode` output.
            with_source_heatmaps: also return the source heatmap head's (V, J, H/2, W/2) maps (training).
            chunk: at most this many rays through the per-ray work at once (memory); each level's volumes are
                built once either way.
        Returns:
            per level :class:`LevelOutputs` (None where skipped); with ``with_source_heatmaps``, a tuple of
            that list and the source heatmaps.
        """
        enc = encoding or self.encode(batch)
        if with_source_heatmaps:
            src = (enc.pose_heatmaps if self.cfg.ray_evidence_samples and self.cfg.encoder not in POSE_ENCODERS
                   else self.source_heatmaps(enc.human))
            return self.forward(batch, rays, enc, chunk=chunk), src
        H, W = batch.image_size
        outputs: list[LevelOutputs] = []
        prev: DepthEstimate | None = None
        for i, lv in enumerate(self.cfg.levels):
            size = (max(int(H * lv.render_scale), 1), max(int(W * lv.render_scale), 1))
            uv = rays[i] if rays is not None and rays[i] is not None else None
            window = (self._volume_window(i, uv, size, batch.image_size) if uv is not None and not self.training
                      else None)
            volume = self._level_volume(i, batch, enc, prev, window)
            prev = volume.estimate
            uv = pixel_grid(*size, batch.tgt_K.device).view(-1, 2) if uv is None else uv
            if len(uv) == 0:
                outputs.append(None)
                continue
            maps = self._image_maps(i, batch, enc)
            step = chunk or len(uv)
            parts = [self._render_level(i, batch, enc, volume, maps, uv[s:s + step], size)
                     for s in range(0, len(uv), step)]
            outputs.append(parts[0] if len(parts) == 1 else LevelOutputs.cat(parts))
        return outputs

    def _volume_grid(self, i: int, image_size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of level ``i``'s volume for source images of ``image_size``."""
        scale = self.cfg.levels[i].volume_scale
        return max(int(image_size[0] * scale), 1), max(int(image_size[1] * scale), 1)

    def _volume_window(self, i: int, uv: Tensor, render_size: tuple[int, int],
                       image_size: tuple[int, int]) -> VolumeWindow | None:
        """The part of level ``i``'s volume that rays ``uv`` read, when only the last level's rays are rendered
        from it (no later level needs its depth elsewhere): :mod:`ghnerf.student.volume_window`. Evaluation only
        (BatchNorm on running statistics)."""
        if i != len(self.cfg.levels) - 1:
            return None
        return volume_window(uv, render_size, self._volume_grid(i, image_size), self.cost_regs[i].deep)

    def _level_volume(self, i: int, batch: MultiViewBatch, enc: SourceEncoding,
                      prev: DepthEstimate | None, window: VolumeWindow | None = None) -> LevelVolume:
        """Cost volume of level ``i`` (ENeRF ``build_feature_volume`` + cost regularisation + depth regression).

        ``window``: build and regularise only that part of the grid (eval mode; :meth:`_volume_window`); the
        features are zero and the depth estimate that of flat logits outside it."""
        lv = self.cfg.levels[i]
        h, w = self._volume_grid(i, batch.image_size)
        if prev is None:
            near, far = batch.near_far[0].expand(h, w), batch.near_far[1].expand(h, w)
        else:
            near, far = next_level_range(prev, (h, w))
        planes = plane_values(near, far, lv.depth_planes, lv.inverse_depth)
        depths = from_space(planes, lv.inverse_depth)
        pixels = None
        if window is not None:
            if self.training:
                raise ValueError("a cost volume window gives the whole volume's numbers only in eval mode")
            depths, pixels = window.crop(depths), window_pixels(window, depths.device)
        volume = variance_volume(enc.fpn[lv.feature_level], batch.src_K, batch.src_w2c, FPN_SCALES[lv.feature_level],
                                 batch.tgt_K, batch.tgt_w2c, lv.volume_scale, depths, pixels)
        feat_volume, logits = self.cost_regs[i](volume[None])
        if window is not None:
            feat_volume, logits = window.paste(feat_volume, (h, w)), window.paste(logits, (h, w))
        return LevelVolume(for_sampling(feat_volume)[0], depth_regression(logits[0], planes, lv.inverse_depth))

    def _image_maps(self, i: int, batch: MultiViewBatch, enc: SourceEncoding) -> Float[Tensor, "V Ci h w"]:
        """The source views' image features of level ``i`` with their RGB resampled to the same size (Ci = the
        level's FPN channels + 3)."""
        fmap = enc.fpn[self.cfg.levels[i].render_feature_level]
        rgb = batch.src_images  # resampled to the map's size (corners aligned: the identity at its own size)
        if rgb.shape[-2:] != fmap.shape[-2:]:
            rgb = F.interpolate(rgb, size=fmap.shape[-2:], mode="bilinear", align_corners=True)
        return torch.cat([fmap, rgb], dim=1)

    def _evaluate_points(self, i: int, batch: MultiViewBatch, enc: SourceEncoding, feat_volume: Tensor,
                         maps: Tensor, pts: Float[Tensor, "N 3"], volume_coords: Float[Tensor, "N 3"]):
        """Field and head inputs at world points: (FieldOutputs, the per-point head features as a tuple of (N, C_i)
        parts in the heads' input order, None without rendered heads). The heads' per-ray priors are not among
        them (:meth:`_head_outputs` adds them once per ray).

        Args:
            maps: :meth:`_image_maps` of level ``i``.
            volume_coords: normalised (u, v, d) of each point in the level's feature volume.
        """
        lv = self.cfg.levels[i]
        H, W = batch.image_size
        grid = volume_coords.view(1, -1, 1, 1, 3) * 2 - 1
        vox = F.grid_sample(feat_volume[None], grid, mode="bilinear", align_corners=True)[0, :, :, 0, 0].T
        # ENeRF get_img_feat: intrinsics scaled to the feature map, border padding
        scale = FPN_SCALES[lv.render_feature_level]
        src_uv, _ = project(pts, scale_K(batch.src_K, scale), batch.src_w2c)
        img = sample_maps(maps, src_uv, maps.shape[-1], maps.shape[-2], padding="border").permute(1, 0, 2)  # N V C+3
        dirs = _view_dirs(pts, camera_centres(batch.tgt_w2c[None])[0], camera_centres(batch.src_w2c))
        field = self.fields[i](vox, img, dirs)
        feats = field.intermediate.detach() if self.cfg.detach_heads else field.intermediate
        if self.heatmap_head is None and self.cse_head is None:
            return field, None
        if self.encoder is None:
            return field, (feats,)
        head_uv = src_uv.detach() if self.cfg.detach_heads else src_uv  # samples placed by the cost volume
        human = sample_maps(enc.human, head_uv / scale, W, H).permute(1, 0, 2)  # full-resolution pixels
        pooled, mean = self.human_pool.pool(human)  # no directions: the mean of the human features themselves
        return field, (feats, pooled) + ((mean,) if self.cfg.human_mean_skip else ())

    def _head_outputs(self, feats: tuple[Tensor, ...], ray_priors: Tensor | None, weights: Float[Tensor, "R S"],
                      heads: frozenset[Head] = frozenset(Head)) -> dict[Head, Float[Tensor, "R channels"]]:
        """Every rendered head's value per ray (of those in ``heads``), composited over its samples with ``weights``.

        The heads read ``cat([*feats, ray_priors.flatten(1)])`` per sample (``feats``: :meth:`_evaluate_points`'
        parts, each (R, S, C_i)); each part goes through its own columns of their first layer, the priors' once per
        ray (:meth:`FeatureHead.hidden`). A head whose per-sample output is linear in its
        hidden layer (CSE; the heatmaps with ``heatmap_residual``, activated per ray after compositing with the
        ray's priors) composites the hidden layer and applies its last layer once per ray
        (:meth:`FeatureHead.composited_raw`); the heatmaps without it are activated per sample, then composited.
        ``ray_priors``: :meth:`head_priors` of the rays (required when the config has any)."""
        if self.num_priors and ray_priors is None:
            raise ValueError(f"{self.cfg.name} reads per-ray joint priors: pass them for every ray")
        rays = None if ray_priors is None else ray_priors.flatten(1)
        outputs = {}
        if self.heatmap_head is not None and Head.HEATMAPS in heads:
            head = self.heatmap_head
            if self.cfg.heatmap_residual:
                raw = head.composited_raw(head.hidden(feats, rays), weights)
                outputs[Head.HEATMAPS] = head.activate(raw, ray_priors)
            else:
                outputs[Head.HEATMAPS] = composite(head(feats, rays, ray_priors), weights)
        if self.cse_head is not None and Head.CSE in heads:
            outputs[Head.CSE] = self.cse_head.composited_raw(self.cse_head.hidden(feats, rays), weights)
        return outputs

    @torch.no_grad()
    def query_points(self, batch: MultiViewBatch, points: Float[Tensor, "N 3"],
                     encoding: SourceEncoding | None = None) -> tuple[Tensor, Tensor | None]:
        """Occupancy ``1 - exp(-sigma)`` (N,) and heatmaps (N, J) at arbitrary world points, read through the
        coarse level (its cost volume spans the whole near/far range of the target view) exactly as a coarse
        sample at that point would be read when rendering."""
        enc = encoding or self.encode(batch)
        volume = self._level_volume(0, batch, enc, None)
        lv = self.cfg.levels[0]
        H, W = batch.image_size
        rh, rw = max(int(H * lv.render_scale), 1), max(int(W * lv.render_scale), 1)
        K_r = scale_K(batch.tgt_K, lv.render_scale)
        uv, z = project(points, K_r[None], batch.tgt_w2c[None])
        uv, z = uv[0], z[0]
        s = to_space(z, lv.inverse_depth)
        est = volume.estimate  # level 0: its planes are the same at every pixel
        d = plane_coordinate(s, est.first[0, 0], est.last[0, 0], lv.inverse_depth)
        coords = torch.stack([uv[:, 0] / max(rw - 1, 1), uv[:, 1] / max(rh - 1, 1), d], dim=-1)
        priors = self.head_priors(batch, enc, uv, K_r)  # each point's own target ray
        field, feats = self._evaluate_points(0, batch, enc, volume.features, self._image_maps(0, batch, enc),
                                             points, coords)
        heat = None
        if self.heatmap_head is not None:  # each point a ray of one sample of weight 1: the head's value there
            heat = self._head_outputs(tuple(f[:, None] for f in feats), priors, field.sigma.new_ones(len(points), 1),
                                      frozenset({Head.HEATMAPS}))[Head.HEATMAPS]
        return alpha_from_density(field.sigma), heat

    def _render_level(self, i: int, batch: MultiViewBatch, enc: SourceEncoding, volume: "LevelVolume",
                      maps: Tensor, uv: Float[Tensor, "R 2"], render_size: tuple[int, int]) -> LevelOutputs:
        lv = self.cfg.levels[i]
        K_r = scale_K(batch.tgt_K, lv.render_scale)
        samples = depth_guided_samples(uv, render_size, K_r, batch.tgt_w2c, volume.estimate, lv.samples_per_ray)
        R, S = samples.depths.shape
        pts = samples.points.reshape(-1, 3)
        ray_priors = self.head_priors(batch, enc, uv, K_r)
        field, feats = self._evaluate_points(i, batch, enc, volume.features, maps, pts,
                                             samples.volume_coords.reshape(-1, 3))
        weights = compositing_weights(alpha_from_density(field.sigma.view(R, S)))
        if self.cfg.depth_rendering == "softmax":
            depth = from_space(softmax_weighted(weights, samples.values), lv.inverse_depth)
        else:
            depth = expected_depth(weights, samples.depths)
        heads = ({} if feats is None else
                 self._head_outputs(tuple(f.view(R, S, -1) for f in feats), ray_priors,
                                    weights.detach() if self.cfg.detach_heads else weights))
        return LevelOutputs(
            uv=uv, render_size=render_size, rgb=composite(field.rgb.view(R, S, -1), weights), heads=heads,
            coord_error=(((self.coord_head(field.intermediate) - pts) ** 2).mean()
                         if self.coord_head is not None else None),
            depth=depth, acc=accumulation(weights), sample_depths=samples.depths,
            mvs_depth=from_space(volume.estimate.mean, lv.inverse_depth))
