"""Ray-cast renderer for the synthetic body: RGB, mask, depth, parsing labels, surface coordinates.

Every pixel's ray is intersected analytically with every primitive of the posed
body (restricted to the body's projected bounding box); the nearest hit gives
depth (camera z, metres), the primitive's parsing label, the canonical surface
coordinate (position of the same surface point on the template body in rest
pose) and a Lambert-shaded albedo. Lighting is fixed in the world, so a surface
point has the same colour in every view.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from jaxtyping import Float

from ghnerf.base.cameras import Camera
from ghnerf.synth.body import PosedBody, template_body

MATERIALS = ("skin", "hair", "shirt", "sleeve", "pants", "shoe", "eye")
_LIGHTS = (  # direction towards the light (world), intensity
    (np.array([0.4, 0.6, 0.9]) / np.linalg.norm([0.4, 0.6, 0.9]), 0.65),
    (np.array([-0.7, -0.3, 0.3]) / np.linalg.norm([-0.7, -0.3, 0.3]), 0.3),
)
_AMBIENT = 0.28


@dataclass(frozen=True)
class Appearance:
    """Colours (RGB in [0, 1]) and clothing patterns of one subject."""

    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    shirt: tuple[float, float, float]
    shirt_alt: tuple[float, float, float]
    shirt_pattern: str  # "stripes" | "patches" | "solid"
    stripe_period: float  # metres on the template body
    pants: tuple[float, float, float]
    pants_alt: tuple[float, float, float]
    pants_pattern: str
    shoe: tuple[float, float, float]
    wave_vectors: tuple[tuple[float, float, float], ...]
    wave_phases: tuple[float, ...]

    @staticmethod
    def random(rng: np.random.Generator) -> "Appearance":
        skins = [(0.96, 0.80, 0.69), (0.87, 0.67, 0.52), (0.72, 0.52, 0.38), (0.55, 0.38, 0.26), (0.40, 0.27, 0.18)]

        def colour() -> tuple[float, float, float]:
            return tuple(float(c) for c in rng.uniform(0.08, 0.95, 3))

        return Appearance(
            skin=skins[int(rng.integers(len(skins)))],
            hair=tuple(float(c) for c in rng.uniform(0.03, 0.35, 3)),
            shirt=colour(), shirt_alt=colour(),
            shirt_pattern=str(rng.choice(["stripes", "patches", "solid"], p=[0.45, 0.35, 0.2])),
            stripe_period=float(rng.uniform(0.05, 0.14)),
            pants=colour(), pants_alt=colour(),
            pants_pattern=str(rng.choice(["patches", "solid", "stripes"], p=[0.4, 0.4, 0.2])),
            shoe=tuple(float(c) for c in rng.uniform(0.05, 0.6, 3)),
            wave_vectors=tuple(tuple(float(v) for v in rng.normal(0, 25, 3)) for _ in range(4)),
            wave_phases=tuple(float(v) for v in rng.uniform(0, 2 * np.pi, 4)),
        )

    def _pattern(self, kind: str, canonical: np.ndarray) -> np.ndarray:
        if kind == "stripes":
            return (np.sin(2 * np.pi * canonical[:, 2] / self.stripe_period) > 0).astype(np.float64)
        if kind == "patches":
            v = sum(np.sin(canonical @ np.array(k) + ph) for k, ph in zip(self.wave_vectors, self.wave_phases))
            return (v > 0.8).astype(np.float64)
        return np.zeros(len(canonical))

    def albedo(self, material: np.ndarray, canonical: Float[np.ndarray, "N 3"]) -> Float[np.ndarray, "N 3"]:
        """Albedo of surface points given their material index and canonical coordinate."""
        out = np.zeros((len(material), 3))
        for m, name in enumerate(MATERIALS):
            sel = material == m
            if not sel.any():
                continue
            c = canonical[sel]
            if name in ("shirt", "sleeve", "pants"):
                base, alt, kind = ((self.shirt, self.shirt_alt, self.shirt_pattern) if name != "pants"
                                   else (self.pants, self.pants_alt, self.pants_pattern))
                mix = self._pattern(kind, c)[:, None]
                out[sel] = (1 - mix) * np.array(base) + mix * np.array(alt)
            elif name == "eye":
                out[sel] = (0.05, 0.04, 0.04)
            else:
                out[sel] = getattr(self, name)
        return out


@dataclass(frozen=True)
class ViewRender:
    """Everything rendered for one camera (arrays over the raw image grid).

    Attributes:
        rgb: (H, W, 3) uint8.
        mask: (H, W) bool, foreground.
        depth: (H, W) float32 camera-z depth in metres, 0 on background.
        label: (H, W) uint8 CIHP parsing label, 0 on background.
        canonical: (H, W, 3) float32 canonical surface coordinate, NaN on background.
    """

    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    label: np.ndarray
    canonical: np.ndarray


@lru_cache(maxsize=1)
def _template():
    return template_body()


def background(camera: Camera, kind: str, seed: int) -> np.ndarray:
    """A plain studio backdrop (``"studio"``: grey gradient with grain) or black (``"black"``)."""
    h, w = camera.height, camera.width
    if kind == "black":
        return np.zeros((h, w, 3))
    rng = np.random.default_rng(seed)
    grad = np.linspace(0.42, 0.22, h)[:, None, None] * np.ones((1, w, 3))
    tint = rng.uniform(0.9, 1.1, 3)
    return np.clip(grad * tint + rng.normal(0, 0.015, (h, w, 1)), 0, 1)


def render_view(posed: PosedBody, appearance: Appearance, camera: Camera,
                rays: tuple[np.ndarray, np.ndarray], bg: np.ndarray,
                roi_points: Float[np.ndarray, "N 3"]) -> ViewRender:
    """Render one view.

    Args:
        posed: the body in its pose.
        appearance: colours and patterns.
        camera: the camera (raw image grid, distortion honoured).
        rays: ``camera.pixel_rays()`` (origin, (H, W, 3) unit directions), computed once per camera.
        bg: (H, W, 3) background in [0, 1].
        roi_points: world points covering the body (e.g. its vertices) to bound the rays cast.
    Returns:
        The :class:`ViewRender`.
    """
    h, w = camera.height, camera.width
    origin, dirs = rays
    uv = camera.project(roi_points)
    margin = 4
    x0, y0 = np.clip(np.floor(uv.min(0)).astype(int) - margin, 0, [w, h])
    x1, y1 = np.clip(np.ceil(uv.max(0)).astype(int) + margin + 1, 0, [w, h])
    rgb = bg.copy()
    depth = np.zeros((h, w), np.float32)
    label = np.zeros((h, w), np.uint8)
    canonical = np.full((h, w, 3), np.nan, np.float32)
    if x1 <= x0 or y1 <= y0:
        return ViewRender((rgb * 255).round().astype(np.uint8), depth > 0, depth, label, canonical)
    d = dirs[y0:y1, x0:x1].reshape(-1, 3)
    prims = posed.primitives
    t_all = np.stack([pr.intersect(origin, d) for pr in prims])
    best = np.argmin(t_all, axis=0)
    t = t_all[best, np.arange(len(best))]
    hit = np.isfinite(t)
    pts = origin + t[hit, None] * d[hit]
    ids = best[hit]
    normals = np.zeros_like(pts)
    canon = np.zeros_like(pts)
    mats = np.zeros(len(pts), int)
    labs = np.zeros(len(pts), np.uint8)
    tmpl = _template()
    for k in np.unique(ids):
        sel = ids == k
        pr = prims[k]
        normals[sel] = pr.normal(pts[sel])
        canon[sel] = tmpl.primitives[k].from_param(pr.surface_param(pts[sel]))
        mats[sel] = MATERIALS.index(pr.material)
        labs[sel] = pr.label
    albedo = appearance.albedo(mats, canon)
    shade = np.full(len(pts), _AMBIENT)
    for light_dir, intensity in _LIGHTS:
        shade += intensity * np.clip(normals @ light_dir, 0, None)
    colour = np.clip(albedo * shade[:, None], 0, 1)
    z = (pts - camera.center) @ camera.R[2]
    ys, xs = np.unravel_index(np.flatnonzero(hit), (y1 - y0, x1 - x0))
    ys, xs = ys + y0, xs + x0
    rgb[ys, xs] = colour
    depth[ys, xs] = z
    label[ys, xs] = labs
    canonical[ys, xs] = canon
    return ViewRender((rgb * 255).round().astype(np.uint8), depth > 0, depth, label, canonical)
