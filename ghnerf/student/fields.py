"""Per-sample networks: ENeRF's view pooling and NeRF MLP, and GHNeRF's heads.

ENeRF (lib/networks/enerf/nerf.py): image features + RGB + a 4-d view-direction
difference of every source view are pooled (``ViewPooling``: mean / variance
context, softmax weights over views), concatenated with the cost-volume feature,
and a small MLP gives density and an intermediate feature; colour is a softmax
blend of the source colours. GHNeRF (paper §3, Eq. 5): heatmap, CSE and coordinate
heads read the intermediate feature concatenated with the pooled human feature.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from ghnerf.student.renderers import weighted_sum, weighted_sum_of

VOLUME_FEATURE_DIM = 8
POOLED_IMAGE_DIM = 16
VIEW_DIR_DIM = 4


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight)
            nn.init.zeros_(m.bias)


class ViewPooling(nn.Module):
    """Pool per-view features into one vector per sample (ENeRF ``Agg``).

    Args:
        in_dim: per-view feature width.
        out_dim: pooled width.
        hidden: width of the per-view context layer.
        use_dirs: add a learned embedding of the 4-d view-direction difference first.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 32, use_dirs: bool = True):
        super().__init__()
        self.use_dirs = use_dirs
        if use_dirs:
            self.view_fc = nn.Sequential(nn.Linear(VIEW_DIR_DIM, in_dim), nn.ReLU())
        self.global_fc = nn.Sequential(nn.Linear(3 * in_dim, hidden), nn.ReLU())
        self.weight_fc = nn.Sequential(nn.Linear(hidden, 1), nn.ReLU())
        self.out_fc = nn.Sequential(nn.Linear(hidden, out_dim), nn.ReLU())
        _init(self)

    def forward(self, feats: Float[Tensor, "N V C"], dirs: Float[Tensor, "N V 4"] | None = None) -> Float[
            Tensor, "N out"]:
        return self.pool(feats, dirs)[0]

    def pool(self, feats: Float[Tensor, "N V C"], dirs: Float[Tensor, "N V 4"] | None = None) -> tuple[
            Float[Tensor, "N out"], Float[Tensor, "N C"]]:
        """The pooled vector and the views' mean it was computed from (of ``feats`` plus the direction embedding
        when ``use_dirs``): a reader of both takes the mean from here instead of computing it again."""
        # View by view: the inputs are views of view-major samples (grid_sample's (V, C, N), the directions'
        # (V, N, 4)), so each view's (N, C) slice is a matrix the products read as it is, where the (N, V, C)
        # tensor would be copied first; over 2-3 views, sums of slices also beat reductions over a short axis.
        V, C = feats.shape[1:]
        views = feats.unbind(1)
        if self.use_dirs:
            views = [f + self.view_fc(d) for f, d in zip(views, dirs.unbind(1))]
        mean = sum(views) / V
        var = sum((v - mean).square() for v in views) / (V - 1)  # unbiased, as ENeRF's torch.var
        # global_fc(cat([feats, var, mean])) with the per-point part applied once instead of once per view
        layer = self.global_fc[0]
        shared = F.linear(torch.cat([var, mean], dim=-1), layer.weight[:, C:], layer.bias)
        g = [F.linear(v, layer.weight[:, :C]).add_(shared).relu_() for v in views]  # in place: one pass each
        w = F.softmax(torch.cat([self.weight_fc(gv) for gv in g], dim=1), dim=1)
        return self.out_fc(weighted_sum_of(g, w.split(1, dim=1))), mean


@dataclass(frozen=True, eq=False)
class FieldOutputs:
    """Per-sample outputs (N = rays x samples).

    Attributes:
        sigma: (N,) optical thickness (>= 0).
        rgb: (N, 3) colour blended from the source views.
        intermediate: (N, hidden + 24) the intermediate NeRF feature the GHNeRF heads read.
    """

    sigma: Tensor
    rgb: Tensor
    intermediate: Tensor


class NeRFField(nn.Module):
    """ENeRF's NeRF MLP for one cascade level.

    Args:
        image_dim: per-view image feature width + 3 (RGB).
        hidden: MLP width (64).
    """

    def __init__(self, image_dim: int, hidden: int = 64):
        super().__init__()
        self.pool = ViewPooling(image_dim, POOLED_IMAGE_DIM)
        self.lr0 = nn.Sequential(nn.Linear(VOLUME_FEATURE_DIM + POOLED_IMAGE_DIM, hidden), nn.ReLU())
        self.sigma = nn.Sequential(nn.Linear(hidden, 1), nn.Softplus())
        self.intermediate_dim = hidden + VOLUME_FEATURE_DIM + POOLED_IMAGE_DIM
        self.blend = nn.Sequential(nn.Linear(self.intermediate_dim + image_dim + VIEW_DIR_DIM, hidden), nn.ReLU(),
                                   nn.Linear(hidden, 1), nn.ReLU())
        _init(self)

    def forward(self, volume_feat: Float[Tensor, "N 8"], image_feat_rgb: Float[Tensor, "N V Ci"],
                dirs: Float[Tensor, "N V 4"]) -> FieldOutputs:
        pooled = self.pool(image_feat_rgb, dirs)
        vox_img = torch.cat([volume_feat, pooled], dim=-1)
        x = self.lr0(vox_img)
        sigma = self.sigma(x)[:, 0]
        inter = torch.cat([x, vox_img], dim=-1)
        # blend(cat([inter, image_feat_rgb, dirs])) with the per-point part applied once instead of once per view,
        # view by view (as ViewPooling: the slices are read as they are)
        first, I, Ci = self.blend[0], inter.shape[-1], image_feat_rgb.shape[-1]
        shared = F.linear(inter, first.weight[:, :I], first.bias)
        images = image_feat_rgb.unbind(1)
        hidden = [F.linear(f, first.weight[:, I:I + Ci]).add_(F.linear(d, first.weight[:, I + Ci:])).add_(shared)
                  .relu_() for f, d in zip(images, dirs.unbind(1))]
        w = F.softmax(torch.cat([self.blend[2:](h) for h in hidden], dim=1), dim=1)
        rgb = weighted_sum_of([f[:, -3:] for f in images], w.split(1, dim=1))
        return FieldOutputs(sigma, rgb, inter)


class FeatureHead(nn.Module):
    """Intermediate feature (+ pooled human feature) -> 2 linear layers with ReLU -> ``out_dim``.

    Args:
        activation: "sigmoid" for heatmaps (paper Eq. 5), "none" for CSE.
        prior_gain, prior_bias: with a per-output prior in [0, 1] (the ray evidence), the pre-activation is
            ``MLP(x) + a * prior + b`` with learnable per-output ``a`` (starting at ``prior_gain``) and ``b``
            (``prior_bias``), and the MLP's last layer starts at zero: the head starts as a calibrated copy
            of the prior and learns corrections (ours). A tuple of P gains: P priors (N, P, out), each with
            its own learnable per-output gain, summed. None: no prior.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 64, activation: str = "sigmoid",
                 prior_gain: float | tuple[float, ...] | None = None, prior_bias: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
        self.activation = activation
        _init(self)
        self.prior_gain = self.prior_bias = None
        if prior_gain is not None:
            gains = torch.as_tensor(prior_gain, dtype=torch.float32)  # () or (P,)
            self.prior_gain = nn.Parameter(gains[..., None].repeat(*([1] * gains.dim()), out_dim))
            self.prior_bias = nn.Parameter(torch.full((out_dim,), float(prior_bias)))
            nn.init.zeros_(self.net[-1].weight)

    def hidden(self, points: Tensor | tuple[Tensor, ...], rays: Float[Tensor, "R Cr"] | None = None) -> Float[
            Tensor, "*b hidden"]:
        """The MLP's first layer and ReLU on ``cat([*points, rays])`` without building it: ``points`` one or more
        per-sample parts (``*b`` C_i: (R, S, C_i) or (N, C_i)), each through its own columns of the layer;
        ``rays`` the last ``Cr`` input columns, the same for every sample of a ray (its priors), applied once per
        ray (R rows, not R x S) and added to its samples."""
        first, col = self.net[0], 0
        h = None
        for part in (points,) if isinstance(points, Tensor) else points:
            cols = first.weight[:, col:col + part.shape[-1]]
            h = F.linear(part, cols, first.bias) if h is None else h.add_(F.linear(part, cols))
            col += part.shape[-1]
        if rays is not None:
            h = h.add_(F.linear(rays, first.weight[:, col:])[:, None])
        return h.relu_()

    def forward(self, points: Tensor | tuple[Tensor, ...], rays: Float[Tensor, "R Cr"] | None = None,
                prior: Tensor | None = None) -> Float[Tensor, "*b out"]:
        """Per sample: ``activation(net(cat([points, rays])) + prior term)`` (:meth:`hidden`, :meth:`activate`)."""
        return self.activate(self.net[-1](self.hidden(points, rays)), prior)

    def composited_raw(self, hidden: Float[Tensor, "R S hidden"], weights: Float[Tensor, "R S"]) -> Float[
            Tensor, "R out"]:
        """``composite(net(x), weights)`` from :meth:`hidden`'s output: the last layer is linear, so
        ``sum_s w_s (W h_s + b) = W (sum_s w_s h_s) + b sum_s w_s``, applied once per ray."""
        last = self.net[-1]
        return F.linear(weighted_sum(hidden, weights[..., None]), last.weight) + last.bias * weights.sum(1, True)

    def activate(self, y: Float[Tensor, "N out"] | Float[Tensor, "N S out"],
                 prior: Float[Tensor, "N out"] | Float[Tensor, "N P out"] | None = None
                 ) -> Float[Tensor, "N out"] | Float[Tensor, "N S out"]:
        """The head's output from the MLP's raw output ``y`` (``self.net(x)``) and the priors, if it has them:
        ``activation(y + sum_p a_p * prior_p + b)``; for ``y`` of (N, S, out), one prior per N, the same for its
        S samples. Called on a ray's composited ``y`` with the ray's priors, it is the residual form
        (``StudentConfig.heatmap_residual``)."""
        if self.prior_gain is not None:
            if prior is None or prior.shape[1:] != self.prior_gain.shape:
                raise ValueError(f"this head was built with priors of shape (N, {tuple(self.prior_gain.shape)}): "
                                 f"pass them, not {None if prior is None else tuple(prior.shape)}")
            weighted = self.prior_gain * prior
            term = (weighted.sum(dim=1) if prior.dim() == 3 else weighted) + self.prior_bias
            y = y + (term[:, None] if y.dim() == 3 else term)
        return torch.sigmoid(y) if self.activation == "sigmoid" else y
