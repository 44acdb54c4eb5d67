"""Analytic surface primitives of the synthetic body: capsules and ellipsoids.

Each primitive is defined in rest-pose world coordinates (metres) and knows how to
intersect rays, give normals, and map a surface point to a *surface parameter*
that is shared by every body built from the same template (so the same parameter
on two subjects is the same place on the body: the canonical surface coordinate).

Surface parameter: 4 numbers ``(s, ux, uy, uz)``. For a capsule ``s`` is the
clamped position along the axis in [0, 1] and ``u`` the unit offset from the
axis; for an ellipsoid ``s = 0`` and ``u`` the point on the unit sphere.
"""

from dataclasses import dataclass, replace

import numpy as np
from jaxtyping import Float

_NO_HIT = np.inf


@dataclass(frozen=True, eq=False)
class Capsule:
    """A segment ``a``-``b`` swept by a sphere of ``radius``.

    Attributes:
        a, b: (3,) end points, metres.
        radius: metres.
        segment: index of the skeleton segment the primitive moves with.
        material: appearance class ("skin", "shirt", "pants", ...).
        label: CIHP-style human-parsing label id written to ``mask_cihp``.
    """

    a: Float[np.ndarray, "3"]
    b: Float[np.ndarray, "3"]
    radius: float
    segment: int
    material: str
    label: int

    def transformed(self, rot: np.ndarray, pivot: np.ndarray, trans: np.ndarray) -> "Capsule":
        """Rigidly move: ``p -> rot @ (p - pivot) + trans``."""
        return replace(self, a=rot @ (self.a - pivot) + trans, b=rot @ (self.b - pivot) + trans)

    def intersect(self, origin: Float[np.ndarray, "3"], dirs: Float[np.ndarray, "N 3"]) -> Float[np.ndarray, "N"]:
        """Distance along each unit ray to the first hit (``inf`` where the ray misses)."""
        ba = self.b - self.a
        oa = origin - self.a
        baba = ba @ ba
        bard = dirs @ ba
        baoa = oa @ ba
        rdoa = dirs @ oa
        oaoa = oa @ oa
        qa = baba - bard * bard
        qb = baba * rdoa - baoa * bard
        qc = baba * oaoa - baoa * baoa - self.radius**2 * baba
        disc = qb * qb - qa * qc
        t = np.full(dirs.shape[0], _NO_HIT)
        with np.errstate(invalid="ignore", divide="ignore"):
            t_body = (-qb - np.sqrt(np.maximum(disc, 0.0))) / qa
            y = baoa + t_body * bard
            body = (disc >= 0) & (y > 0) & (y < baba) & (t_body > 0)
            t[body] = t_body[body]
            # End caps: spheres at a (y <= 0) or b (y >= baba).
            for centre, use in ((self.a, y <= 0), (self.b, y >= baba)):
                oc = origin - centre
                sb = dirs @ oc
                sc = oc @ oc - self.radius**2
                sdisc = sb * sb - sc
                ts = -sb - np.sqrt(np.maximum(sdisc, 0.0))
                cap = (~body) & (disc >= 0) & use & (sdisc > 0) & (ts > 0)
                t[cap] = ts[cap]
        return t

    def _axis_param(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ba = self.b - self.a
        s = np.clip(((p - self.a) @ ba) / (ba @ ba), 0.0, 1.0)
        closest = self.a + s[:, None] * ba
        return s, closest

    def normal(self, p: Float[np.ndarray, "N 3"]) -> Float[np.ndarray, "N 3"]:
        _, closest = self._axis_param(p)
        n = p - closest
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)

    def surface_param(self, p: Float[np.ndarray, "N 3"]) -> Float[np.ndarray, "N 4"]:
        s, closest = self._axis_param(p)
        u = p - closest
        u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
        return np.concatenate([s[:, None], u], axis=1)

    def from_param(self, param: Float[np.ndarray, "N 4"]) -> Float[np.ndarray, "N 3"]:
        return self.a + param[:, :1] * (self.b - self.a) + self.radius * param[:, 1:]

    def contains(self, p: Float[np.ndarray, "N 3"], margin: float = 0.0) -> np.ndarray:
        _, closest = self._axis_param(p)
        return np.linalg.norm(p - closest, axis=1) < self.radius - margin

    def area(self) -> float:
        return 2 * np.pi * self.radius * np.linalg.norm(self.b - self.a) + 4 * np.pi * self.radius**2

    def sample_params(self, n: int) -> Float[np.ndarray, "n 4"]:
        """Deterministic, roughly uniform surface parameters (cylinder grid + two hemispheres)."""
        length = float(np.linalg.norm(self.b - self.a))
        n_cyl = max(int(n * length / (length + 2 * self.radius)), 8)
        n_cap = max((n - n_cyl) // 2, 4)
        ax = (self.b - self.a) / length
        e1 = np.cross(ax, [1.0, 0.0, 0.0] if abs(ax[0]) < 0.9 else [0.0, 1.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(ax, e1)
        rings = max(int(np.sqrt(n_cyl * length / (2 * np.pi * self.radius))), 2)
        per_ring = max(n_cyl // rings, 4)
        s_vals = (np.arange(rings) + 0.5) / rings
        ang = 2 * np.pi * (np.arange(per_ring) + 0.5) / per_ring
        s_grid, a_grid = np.meshgrid(s_vals, ang, indexing="ij")
        u = np.cos(a_grid)[..., None] * e1 + np.sin(a_grid)[..., None] * e2
        cyl = np.concatenate([s_grid.reshape(-1, 1), u.reshape(-1, 3)], axis=1)
        caps = []
        for s_end, sign in ((0.0, -1.0), (1.0, 1.0)):
            d = fibonacci_sphere(2 * n_cap)
            d = d[(d @ ax) * sign > 0]
            caps.append(np.concatenate([np.full((len(d), 1), s_end), d], axis=1))
        return np.concatenate([cyl, *caps], axis=0)


@dataclass(frozen=True, eq=False)
class Ellipsoid:
    """An ellipsoid ``{centre + axes @ (radii * u) : |u| = 1}``.

    Attributes:
        centre: (3,) metres.
        radii: (3,) semi-axes, metres.
        axes: (3, 3) rotation whose columns are the ellipsoid axes in world coordinates.
        segment, material, label: as for :class:`Capsule`.
    """

    centre: Float[np.ndarray, "3"]
    radii: Float[np.ndarray, "3"]
    axes: Float[np.ndarray, "3 3"]
    segment: int
    material: str
    label: int

    def transformed(self, rot: np.ndarray, pivot: np.ndarray, trans: np.ndarray) -> "Ellipsoid":
        return replace(self, centre=rot @ (self.centre - pivot) + trans, axes=rot @ self.axes)

    def _to_unit(self, p: np.ndarray) -> np.ndarray:
        return ((p - self.centre) @ self.axes) / self.radii

    def intersect(self, origin: Float[np.ndarray, "3"], dirs: Float[np.ndarray, "N 3"]) -> Float[np.ndarray, "N"]:
        o = ((origin - self.centre) @ self.axes) / self.radii
        d = (dirs @ self.axes) / self.radii
        qa = np.einsum("ij,ij->i", d, d)
        qb = d @ o
        qc = o @ o - 1.0
        disc = qb * qb - qa * qc
        t = np.full(dirs.shape[0], _NO_HIT)
        with np.errstate(invalid="ignore"):
            th = (-qb - np.sqrt(np.maximum(disc, 0.0))) / qa
        hit = (disc >= 0) & (th > 0)
        t[hit] = th[hit]
        return t

    def normal(self, p: Float[np.ndarray, "N 3"]) -> Float[np.ndarray, "N 3"]:
        n = (self._to_unit(p) / self.radii) @ self.axes.T
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)

    def surface_param(self, p: Float[np.ndarray, "N 3"]) -> Float[np.ndarray, "N 4"]:
        u = self._to_unit(p)
        u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
        return np.concatenate([np.zeros((len(u), 1)), u], axis=1)

    def from_param(self, param: Float[np.ndarray, "N 4"]) -> Float[np.ndarray, "N 3"]:
        return self.centre + (param[:, 1:] * self.radii) @ self.axes.T

    def contains(self, p: Float[np.ndarray, "N 3"], margin: float = 0.0) -> np.ndarray:
        return np.linalg.norm(self._to_unit(p), axis=1) < 1.0 - margin / float(np.min(self.radii))

    def area(self) -> float:
        a, b, c = self.radii
        p = 1.6075  # Knud Thomsen's approximation
        return 4 * np.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)

    def sample_params(self, n: int) -> Float[np.ndarray, "n 4"]:
        d = fibonacci_sphere(n)
        return np.concatenate([np.zeros((n, 1)), d], axis=1)


Primitive = Capsule | Ellipsoid


def fibonacci_sphere(n: int) -> Float[np.ndarray, "n 3"]:
    """``n`` nearly uniform unit vectors (golden-angle spiral)."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r = np.sqrt(np.maximum(1 - z * z, 0))
    phi = np.pi * (3 - np.sqrt(5)) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
