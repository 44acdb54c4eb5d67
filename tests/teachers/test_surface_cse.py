"""The surface-cse embedding: unit vectors, smooth over the surface, different on different body parts."""

import numpy as np
from scipy.spatial import cKDTree

from ghnerf.base.body25 import JOINT_INDEX as J
from ghnerf.synth.body import template_body
from teachers.surface_cse import embed_points, template_embedding


def test_embedding_is_unit_smooth_and_discriminative():
    verts, emb = template_embedding()
    assert emb.shape == (len(verts), 16)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    _, nn = cKDTree(verts).query(verts, k=2)
    neighbour = np.linalg.norm(emb - emb[nn[:, 1]], axis=1)
    rng = np.random.default_rng(0)
    random_pair = np.linalg.norm(emb - emb[rng.permutation(len(emb))], axis=1)
    assert np.median(neighbour) < 0.1 * np.median(random_pair)
    # the two hands, the two feet and head vs pelvis are far apart in embedding space
    joints = template_body().rest_joints

    def e(name):
        return emb[cKDTree(verts).query(joints[J[name]])[1]]

    for a, b in (("LWrist", "RWrist"), ("LBigToe", "RBigToe"), ("Nose", "MidHip"), ("LWrist", "LBigToe")):
        assert np.linalg.norm(e(a) - e(b)) > 0.5, (a, b)


def test_embedding_is_deterministic_and_interpolates():
    template_embedding.cache_clear()
    v1, e1 = template_embedding()
    template_embedding.cache_clear()
    _, e2 = template_embedding()
    np.testing.assert_array_equal(e1, e2)
    # a point on a vertex embeds (almost) as that vertex
    np.testing.assert_allclose(embed_points(v1[100:101] + 1e-7), e1[100:101], atol=1e-3)
