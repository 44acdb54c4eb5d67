"""GHNeRF: the ENeRF cascade with a human feature encoder and heatmap / CSE / coordinate heads.

``forward`` only composes the pieces (R1): FPN features and human features of the
source views (computed once, :meth:`GHNeRF.encode`), then per level: depth planes
-> variance cost volume -> 3D U-Net -> depth distribution -> depth-guided samples
-> volume + image features -> NeRF MLP -> heads -> volume rendering.
One target view per call; V source views.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from ghnerf.student.config import FPN_CHANNELS, StudentConfig
from ghnerf.student.cost_reg import CostRegNet
from ghnerf.student.cost_volume import DepthEstimate, depth_regression, from_space, plane_values, to_space, variance_volume
from ghnerf.student.encoders import build_encoder
from ghnerf.student.feature_net import FeatureNet
from ghnerf.student.fields import FeatureHead, NeRFField, ViewPooling
from ghnerf.student.geometry import camera_centres, pixel_grid, project, sample_maps, scale_K
from ghnerf.student.ray_evidence import ray_joint_evidence
from ghnerf.student.renderers import accumulation, alpha_from_density, composite, compositing_weights, expected_depth
from ghnerf.student.samplers import depth_guided_samples

# With ray evidence the heatmap head starts as sigmoid(8 E - 4): evidence 0 -> 0.02, 0.5 -> 0.5, 1 -> 0.98, so
# a joint two of three views agree on (E ~ 0.6) is above OpenPose's 0.1 threshold and one view alone (E ~ 0.3)
# barely is; both numbers are learned from there.
EVIDENCE_GAIN, EVIDENCE_BIAS = 8.0, -4.0


@dataclass(frozen=True, eq=False)
class MultiViewBatch:
    """One target view and its source views (tensors on the model's device).

    Attributes:
        src_images: (V, 3, H, W) RGB in [0, 1], undistorted, background zeroed.
        src_K: (V, 3, 3) intrinsics at (H, W).
        src_w2c: (V, 4, 4) world-to-camera, metres.
        tgt_K: (3, 3) target intrinsics at (H, W).
        tgt_w2c: (4, 4) target world-to-camera.
        near_far: (2,) scene depth range for the target (ENeRF: padded vertex box).
        src_images_unmasked: (V, 3, H, W) the source images with their background, for encoders that
            expect real photographs (the frozen pose network, which refuses a batch without them).
    """

    src_images: Tensor
    src_K: Tensor
    src_w2c: Tensor
    tgt_K: Tensor
    tgt_w2c: Tensor
    near_far: Tensor
    src_images_unmasked: Tensor | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.src_images.shape[-2:])

    def to(self, device) -> "MultiViewBatch":
        return MultiViewBatch(*(None if getattr(self, f) is None else getattr(self, f).to(device) for f in
                                ("src_images", "src_K", "src_w2c", "tgt_K", "tgt_w2c", "near_far",
                                 "src_images_unmasked")))


@dataclass(frozen=True, eq=False)
class SourceEncoding:
    """Per-source-view features computed once per batch.

    Attributes:
        fpn: the three FPN levels.
        human: (V, human_projection_dim, H/2, W/2) projected human features, or None.
        pose_heatmaps: (V, J, H/2, W/2) the pose encoder's own heatmaps, kept for the ray evidence
            (``StudentConfig.ray_evidence_samples``), or None.
    """

    fpn: tuple[Tensor, Tensor, Tensor]
    human: Tensor | None
    pose_heatmaps: Tensor | None = None


@dataclass(frozen=True, eq=False)
class LevelOutputs:
    """Rendered rays of one cascade level.

    Attributes:
        uv: (R, 2) pixels at this level's render resolution ``render_size`` (H, W).
        rgb: (R, 3); heatmaps: (R, J) or None; cse: (R, 16) or None.
        coord_error: mean squared error of the coordinate head against its query points (supplement
            §2.1: the head regresses each sample's own 3D position), or None.
        depth: (R,) rendered depth; acc: (R,) accumulated opacity.
        sample_depths: (R, S) sample depths; depth_near/depth_far: (R,) the ray's sampling interval.
        mvs_depth: (h, w) the cost volume's expected depth map.
    """

    uv: Tensor
    render_size: tuple[int, int]
    rgb: Tensor
    heatmaps: Tensor | None
    cse: Tensor | None
    coord_error: Tensor | None
    depth: Tensor
    acc: Tensor
    sample_depths: Tensor
    mvs_depth: Tensor


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
        self.feature_net = FeatureNet()
        self.cost_regs = nn.ModuleList(CostRegNet(FPN_CHANNELS[lv.feature_level], deep=i > 0)
                                       for i, lv in enumerate(cfg.levels))
        self.fields = nn.ModuleList(NeRFField(FPN_CHANNELS[lv.render_feature_level] + 3, cfg.hidden)
                                    for lv in cfg.levels)
        inter = self.fields[0].intermediate_dim
        self.encoder = build_encoder(cfg.encoder, cfg.pretrained)
        head_in = inter
        if self.encoder is not None:
            # A 1x1 projection applied once per source view (cached in encode): the per-sample work then
            # handles human_projection_dim channels instead of the encoder's 512 / 768.
            self.human_proj = nn.Conv2d(self.encoder.out_channels, cfg.human_projection_dim, 1)
            self.human_pool = ViewPooling(cfg.human_projection_dim, cfg.human_feature_dim, hidden=64,
                                          use_dirs=False)
            head_in += cfg.human_feature_dim + (cfg.human_projection_dim if cfg.human_mean_skip else 0)
            head_in += cfg.num_joints if cfg.ray_evidence_samples else 0
        prior = dict(prior_gain=EVIDENCE_GAIN, prior_bias=EVIDENCE_BIAS) if cfg.ray_evidence_samples else {}
        self.heatmap_head = (FeatureHead(head_in, cfg.num_joints, cfg.hidden, "sigmoid", **prior)
                             if cfg.heatmap_head else None)
        self.cse_head = FeatureHead(head_in, cfg.cse_dim, cfg.hidden, "none") if cfg.cse_head else None
        self.coord_head = FeatureHead(inter, 3, cfg.hidden, "none") if cfg.coord_head else None
        self.source_heatmap_head = (nn.Conv2d(cfg.human_projection_dim, cfg.num_joints, 1)
                                    if cfg.source_heatmap_head else None)

    @property
    def pretrained_weights(self) -> str:
        return "n/a (no encoder)" if self.encoder is None else self.encoder.weights_source

    def encode(self, batch: MultiViewBatch) -> SourceEncoding:
        """Features of the source views; reuse it for every target that shares these sources."""
        fpn = self.feature_net(batch.src_images * 2 - 1)  # ENeRF feeds images in [-1, 1]
        human = pose = None
        if self.encoder is not None:
            images = batch.src_images
            if getattr(self.encoder, "wants_unmasked", False):
                if batch.src_images_unmasked is None:
                    raise ValueError(f"{self.cfg.name}'s encoder needs the unmasked source photographs "
                                     "(MultiViewBatch.src_images_unmasked)")
                images = batch.src_images_unmasked
            raw = self.encoder(images)
            human = self.human_proj(raw)
            pose = raw if self.cfg.ray_evidence_samples else None
        return SourceEncoding(fpn, human, pose)

    def ray_evidence(self, batch: MultiViewBatch, enc: SourceEncoding, uv: Float[Tensor, "R 2"],
                     K: Float[Tensor, "3 3"]) -> Float[Tensor, "R J"] | None:
        """The rays' multi-view joint evidence (:mod:`ghnerf.student.ray_evidence`), or None when not configured.

        Args:
            uv: target pixels at the resolution of ``K``.
        """
        if enc.pose_heatmaps is None:
            return None
        return ray_joint_evidence(uv, K, batch.tgt_w2c, batch.near_far, enc.pose_heatmaps, batch.src_K,
                                  batch.src_w2c, batch.image_size, self.cfg.ray_evidence_samples)

    def forward(self, batch: MultiViewBatch, rays: list[Tensor | None] | None = None,
                encoding: SourceEncoding | None = None, with_source_heatmaps: bool = False):
        """Render every level.

        Args:
            batch: target + source views.
            rays: per level, (R, 2) pixel coordinates at that level's render resolution, None for every
                pixel, or an empty (0, 2) tensor to skip rendering that level (its depth still guides the next).
            encoding: precomputed :meth:`encode` output.
            with_source_heatmaps: also return the source heatmap head's (V, J, H/2, W/2) maps (training).
        Returns:
            per level :class:`LevelOutputs` (None where skipped); with ``with_source_heatmaps``, a tuple of
            that list and the source heatmaps.
        """
        enc = encoding or self.encode(batch)
        if with_source_heatmaps:
            if self.source_heatmap_head is None:
                raise ValueError(f"{self.cfg.name} has no source heatmap head")
            return self.forward(batch, rays, enc), torch.sigmoid(self.source_heatmap_head(enc.human))
        H, W = batch.image_size
        outputs: list[LevelOutputs] = []
        prev: DepthEstimate | None = None
        for i, lv in enumerate(self.cfg.levels):
            feat_volume, est, planes = self._level_volume(i, batch, enc, prev)
            prev = est
            rh, rw = max(int(H * lv.render_scale), 1), max(int(W * lv.render_scale), 1)
            uv = rays[i] if rays is not None and rays[i] is not None else pixel_grid(rh, rw, planes.device).view(-1, 2)
            if len(uv) == 0:
                outputs.append(None)
                continue
            outputs.append(self._render_level(i, batch, enc, feat_volume, est, planes, uv, (rh, rw)))
        return outputs

    def _level_volume(self, i: int, batch: MultiViewBatch, enc: SourceEncoding,
                      prev: DepthEstimate | None) -> tuple[Tensor, DepthEstimate, Tensor]:
        """Cost volume of level ``i``: (feature volume (8, D, h, w), depth estimate, planes (D, h, w))."""
        lv = self.cfg.levels[i]
        H, W = batch.image_size
        h, w = max(int(H * lv.volume_scale), 1), max(int(W * lv.volume_scale), 1)
        if prev is None:
            near, far = batch.near_far[0].expand(h, w), batch.near_far[1].expand(h, w)
        else:
            near = F.interpolate(prev.near[None, None], size=(h, w), mode="bilinear", align_corners=True)[0, 0]
            far = F.interpolate(prev.far[None, None], size=(h, w), mode="bilinear", align_corners=True)[0, 0]
        planes = plane_values(near, far, lv.depth_planes, lv.inverse_depth)
        volume = variance_volume(enc.fpn[lv.feature_level], batch.src_K, batch.src_w2c, (H, W), batch.tgt_K,
                                 batch.tgt_w2c, from_space(planes, lv.inverse_depth))
        feat_volume, logits = self.cost_regs[i](volume[None])
        return feat_volume[0], depth_regression(logits[0], planes, lv.inverse_depth), planes

    def _evaluate_points(self, i: int, batch: MultiViewBatch, enc: SourceEncoding, feat_volume: Tensor,
                         pts: Float[Tensor, "N 3"], volume_coords: Float[Tensor, "N 3"],
                         evidence: Float[Tensor, "N J"] | None = None):
        """Field and head inputs at world points: (FieldOutputs, head features (N, C)); ``evidence``: the ray
        evidence of each point's ray (required when the config has it)."""
        lv = self.cfg.levels[i]
        H, W = batch.image_size
        grid = volume_coords.view(1, -1, 1, 1, 3) * 2 - 1
        vox = F.grid_sample(feat_volume[None], grid, mode="bilinear", align_corners=True)[0, :, :, 0, 0].T
        src_uv, _ = project(pts, batch.src_K, batch.src_w2c)
        fmap = enc.fpn[lv.render_feature_level]
        maps = torch.cat([fmap, F.interpolate(batch.src_images, size=fmap.shape[-2:], mode="bilinear",
                                              align_corners=True)], dim=1)
        img = sample_maps(maps, src_uv, W, H).permute(1, 0, 2)  # N V C+3
        dirs = _view_dirs(pts, camera_centres(batch.tgt_w2c[None])[0], camera_centres(batch.src_w2c))
        field = self.fields[i](vox, img, dirs)
        feats = field.intermediate
        if self.encoder is not None and (self.heatmap_head is not None or self.cse_head is not None):
            human = sample_maps(enc.human, src_uv, W, H).permute(1, 0, 2)
            parts = [feats, self.human_pool(human)] + ([human.mean(dim=1)] if self.cfg.human_mean_skip else [])
            if self.cfg.ray_evidence_samples:
                if evidence is None:
                    raise ValueError(f"{self.cfg.name} reads the ray evidence: pass it for every point")
                parts.append(evidence)
            feats = torch.cat(parts, dim=-1)
        return field, feats

    @torch.no_grad()
    def query_points(self, batch: MultiViewBatch, points: Float[Tensor, "N 3"],
                     encoding: SourceEncoding | None = None) -> tuple[Tensor, Tensor | None]:
        """Occupancy ``1 - exp(-sigma)`` (N,) and heatmaps (N, J) at arbitrary world points, read through the
        coarse level (its cost volume spans the whole near/far range of the target view)."""
        enc = encoding or self.encode(batch)
        feat_volume, _, planes = self._level_volume(0, batch, enc, None)
        lv = self.cfg.levels[0]
        D, h, w = planes.shape
        uv, z = project(points, scale_K(batch.tgt_K, w / batch.image_size[1])[None], batch.tgt_w2c[None])
        uv, z = uv[0], z[0]
        s = to_space(z, lv.inverse_depth)
        lo, hi = planes[0, 0, 0], planes[-1, 0, 0]  # level 0 planes are the same at every pixel
        coords = torch.stack([uv[:, 0] / max(w - 1, 1), uv[:, 1] / max(h - 1, 1), (s - lo) / (hi - lo)], dim=-1)
        evidence = self.ray_evidence(batch, enc, uv * (batch.image_size[1] / w),  # each point's own target ray
                                     batch.tgt_K)
        field, feats = self._evaluate_points(0, batch, enc, feat_volume, points, coords, evidence)
        heat = self.heatmap_head(feats, evidence) if self.heatmap_head is not None else None
        return alpha_from_density(field.sigma), heat

    def _render_level(self, i, batch, enc, feat_volume, est, planes, uv, render_size) -> LevelOutputs:
        lv = self.cfg.levels[i]
        H, W = batch.image_size
        K_r = scale_K(batch.tgt_K, render_size[1] / W)
        lo, hi = planes[0], planes[-1]  # the first and the last plane (decreasing in inverse depth)
        samples = depth_guided_samples(uv, render_size, K_r, batch.tgt_w2c, est.near, est.far, lo, hi,
                                       lv.samples_per_ray, lv.inverse_depth)
        R, S = samples.depths.shape
        pts = samples.points.reshape(-1, 3)
        evidence = self.ray_evidence(batch, enc, uv, K_r)
        if evidence is not None:
            evidence = evidence[:, None].expand(R, S, -1).reshape(R * S, -1)
        field, feats = self._evaluate_points(i, batch, enc, feat_volume, pts, samples.volume_coords.reshape(-1, 3),
                                             evidence)
        weights = compositing_weights(alpha_from_density(field.sigma.view(R, S)))

        def render(values: Tensor | None) -> Tensor | None:
            return None if values is None else composite(values.view(R, S, -1), weights)

        return LevelOutputs(
            uv=uv, render_size=render_size, rgb=render(field.rgb),
            heatmaps=render(self.heatmap_head(feats, evidence)) if self.heatmap_head is not None else None,
            cse=render(self.cse_head(feats)) if self.cse_head is not None else None,
            coord_error=(((self.coord_head(field.intermediate) - pts) ** 2).mean()
                         if self.coord_head is not None else None),
            depth=expected_depth(weights, samples.depths), acc=accumulation(weights), sample_depths=samples.depths,
            mvs_depth=from_space(est.mean, lv.inverse_depth))
