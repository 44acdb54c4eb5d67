"""``surface-cse``: dense-pose targets from the synthetic data's canonical surface coordinates.

As CSE initialises its vertex embeddings (Neverova et al. 2020; DensePose's
``phi_smpl_27554_256.pkl`` = Laplace-Beltrami eigenfunctions), every template
vertex gets the first 16 non-constant eigenvectors of a graph Laplacian of the
template surface, L2-normalised: an embedding that varies smoothly over the body
(neighbouring points have near embeddings, distant parts differ). A pixel's
embedding is interpolated from the template vertices nearest to its canonical
coordinate (inverse-distance weights over 4 neighbours). Signs of the
eigenvectors are fixed (largest-magnitude entry positive) so the embedding is
deterministic; its sha256 is the teacher's weights digest.
"""

import hashlib
from collections.abc import Sequence

import numpy as np
from jaxtyping import Float
from scipy import sparse
from scipy.sparse.linalg import eigsh
from scipy.spatial import cKDTree

from ghnerf.base.kinds import TargetKind
from teachers.base import CSE_DIM, TeacherError, TeacherInput, TeacherOutput

GRAPH_NEIGHBOURS = 10
INTERP_NEIGHBOURS = 4


class SurfaceEmbedding:
    """A template surface's unit 16-d embedding and the lookup of canonical points into it.

    Args:
        vertices: (V, 3) template vertices in the rest pose (metres), given by the caller (the synthetic
            body's template for ``surface-cse``; the teacher registry builds it).
    """

    def __init__(self, vertices: Float[np.ndarray, "V 3"]):
        self.vertices = np.asarray(vertices, np.float64)
        self.embedding = laplacian_embedding(self.vertices)
        self._tree = cKDTree(self.vertices)

    def embed(self, canonical: Float[np.ndarray, "N 3"]) -> Float[np.ndarray, "N 16"]:
        """Embedding of canonical surface points (template coordinates, metres)."""
        dist, idx = self._tree.query(canonical, k=INTERP_NEIGHBOURS)
        w = 1.0 / np.maximum(dist, 1e-6)
        e = np.einsum("nk,nkd->nd", w, self.embedding[idx])
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def laplacian_embedding(verts: Float[np.ndarray, "V 3"]) -> Float[np.ndarray, "V 16"]:
    """Unit 16-d embedding of template vertices: the first non-constant graph-Laplacian eigenvectors."""
    tree = cKDTree(verts)
    dist, idx = tree.query(verts, k=GRAPH_NEIGHBOURS + 1)
    sigma = np.median(dist[:, 1:])
    rows = np.repeat(np.arange(len(verts)), GRAPH_NEIGHBOURS)
    w = np.exp(-(dist[:, 1:].ravel() ** 2) / (2 * sigma**2))
    adj = sparse.coo_matrix((w, (rows, idx[:, 1:].ravel())), shape=(len(verts),) * 2).tocsr()
    adj = adj.maximum(adj.T)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    lap = sparse.diags(deg) - adj
    # Generalised problem L phi = lambda D phi (random-walk normalisation), smallest eigenpairs via shift-invert.
    # A fixed start vector makes ARPACK deterministic (its default is random).
    v0 = np.linspace(1.0, 2.0, len(verts))
    vals, vecs = eigsh(lap, k=CSE_DIM + 1, M=sparse.diags(deg), sigma=-1e-6, which="LM", v0=v0)
    order = np.argsort(vals)
    phi = vecs[:, order[1:]]  # drop the constant eigenvector
    signs = np.sign(phi[np.abs(phi).argmax(axis=0), np.arange(CSE_DIM)])
    phi = phi * signs
    emb = phi / np.linalg.norm(phi, axis=1, keepdims=True)
    # Rounded so that last-bit BLAS differences do not change the weights digest.
    return np.round(emb, 5).astype(np.float32)


class SurfaceCSETeacher:
    name = "surface-cse"
    version = "1"
    needs: tuple[str, ...] = ("surface",)
    kinds = (TargetKind.CSE,)

    def __init__(self, template: SurfaceEmbedding, stride: int = 2):
        self.template = template
        self.stride = stride
        self.weights_digest = hashlib.sha256(np.ascontiguousarray(template.embedding).tobytes()).hexdigest()

    def predict(self, batch: Sequence[TeacherInput]) -> list[TeacherOutput]:
        out = []
        s = self.stride
        for item in batch:
            if item.surface is None:
                raise TeacherError(f"{item.key}: no canonical surface coordinates for this view "
                                   "(synthetic_gt/surface/); surface-cse works on synthetic data only")
            canon = item.surface[(s - 1) // 2::s, (s - 1) // 2::s]
            mask = np.isfinite(canon).all(axis=-1)
            cse = np.zeros((CSE_DIM, *mask.shape), np.float32)
            if mask.any():
                cse[:, mask] = self.template.embed(canon[mask].astype(np.float64)).T
            out.append(TeacherOutput(cse=cse, cse_mask=mask, stride=s))
        return out
