"""The synthetic generator: projections, determinism, visibility, canonical coordinates."""

import json

import numpy as np
import pytest

from ghnerf.data import open_dataset
from ghnerf.data.records import SIDE_DIR
from ghnerf.synth.body import SurfaceSampling, template_body
from ghnerf.synth.generate import SynthConfig, build_subject, generate_dataset


def opencv_project(X, K, R, T, D):
    """Independent re-implementation of OpenCV's pinhole + (k1, k2, p1, p2, k3) model."""
    cam = X @ R.T + T
    x, y = cam[:, 0] / cam[:, 2], cam[:, 1] / cam[:, 2]
    k1, k2, p1, p2, k3 = D
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([K[0, 0] * xd + K[0, 1] * yd + K[0, 2], K[1, 1] * yd + K[1, 2]], axis=1)


def _raw_cameras_and_kpts(root, layout, subject):
    """Cameras and stored 2D joints straight from the files, bypassing the readers."""
    seq = root / subject
    if layout == "zju":
        annots = np.load(seq / "annots.npy", allow_pickle=True).item()
        cams = annots["cams"]
        cameras = [(np.array(cams["K"][i]), np.array(cams["R"][i]), np.array(cams["T"][i]).reshape(3) / 1000.0,
                    np.array(cams["D"][i]).reshape(5)) for i in range(len(cams["K"]))]
        kpts = [np.asarray(e["kpts2d"]) for e in annots["ims"]]
        ids = [int(p.stem) for p in sorted((seq / SIDE_DIR / "joints3d").glob("*.npy"), key=lambda p: int(p.stem))]
    else:
        cams = json.loads((seq / "cameras.json").read_text())
        cameras = [(np.array(c["K"]), np.array(c["R"]), np.array(c["T"]).reshape(3), np.zeros(5))
                   for _, c in sorted(cams.items())]
        ids = sorted(int(p.stem) for p in (seq / SIDE_DIR / "joints3d").glob("*.npy"))
        kpts = [np.load(seq / SIDE_DIR / "keypoints2d" / f"{i:04d}.npy") for i in ids]
    return cameras, kpts, ids


@pytest.mark.parametrize("fixture,layout", [("zju_root", "zju"), ("zju_plain_root", "zju"), ("rp_root", "renderpeople")])
def test_projected_3d_joints_match_stored_2d_joints(request, fixture, layout):
    root = request.getfixturevalue(fixture)
    subject = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))[0]
    cameras, kpts, ids = _raw_cameras_and_kpts(root, layout, subject)
    distorted = any(np.any(c[3] != 0) for c in cameras)
    assert distorted == (fixture == "zju_root")
    fmt = "{}.npy" if layout == "zju" else "{:04d}.npy"
    checked = 0
    for f, fid in enumerate(ids):
        X = np.load(root / subject / SIDE_DIR / "joints3d" / fmt.format(fid))
        for c, (K, R, T, D) in enumerate(cameras):
            uv = opencv_project(X, K, R, T, D)
            valid = kpts[f][c][:, 2] > 0
            assert valid.sum() >= 15
            err = np.linalg.norm(uv[valid] - kpts[f][c][valid, :2], axis=1)
            assert err.max() < 0.5, (f, c, err.max())
            checked += valid.sum()
    assert checked > 100


def test_reader_joints_are_undistorted_pinhole_projections(zju_root):
    reader = open_dataset(zju_root)
    shift = 0.0
    for name in reader.subjects():
        frame = reader.sequence(name).frame(1)
        for view in frame.views:
            assert view.camera.has_distortion
            cam = view.camera
            uv = opencv_project(frame.joints3d, cam.K, cam.R, cam.T, np.zeros(5))
            valid = view.joints2d[:, 2] > 0
            err = np.linalg.norm(uv[valid] - view.joints2d[valid, :2], axis=1)
            assert err.max() < 0.5
            raw = opencv_project(frame.joints3d, cam.K, cam.R, cam.T, cam.D)
            shift = max(shift, np.abs(raw[valid] - uv[valid]).max())
    # the distortion is not negligible: raw and undistorted joints differ by pixels
    assert shift > 1.0


def test_generation_is_deterministic_and_subjects_independent(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_dataset(SynthConfig(layout="zju", subjects=2, frames=2, cameras=3, size=64, seed=11), a)
    generate_dataset(SynthConfig(layout="zju", subjects=1, frames=2, cameras=3, size=64, seed=11), b)
    generate_dataset(SynthConfig(layout="zju", subjects=1, frames=2, cameras=3, size=64, seed=12), c)
    rel = "CoreView_901/Camera (2)/CoreView_901_Camera_(2)_0002_2019-08-23_16-08-50.592.jpg"
    assert (a / rel).read_bytes() == (b / rel).read_bytes()
    assert (a / rel).read_bytes() != (c / rel).read_bytes()
    ka = np.load(a / "CoreView_901/annots.npy", allow_pickle=True).item()["cams"]["K"]
    kc = np.load(c / "CoreView_901/annots.npy", allow_pickle=True).item()["cams"]["K"]
    assert not np.allclose(ka, kc)


def test_visibility_flags_self_occlusion():
    """A joint behind the body from one camera is visible from the opposite one."""
    cfg = SynthConfig(layout="zju", subjects=1, frames=1, cameras=8, size=128, seed=0, distortion=False)
    from ghnerf.synth.generate import iter_frames

    rig = build_subject(cfg, 0)
    _, fr = next(iter_frames(rig, SurfaceSampling(), 1))
    conf = fr.joints2d[:, :, 2]
    assert set(np.unique(conf)) <= {0.0, 0.5, 1.0}
    assert (conf == 0.5).any(), "some joint must be self-occluded in a ring of 8 cameras"
    occluded_somewhere = (conf == 0.5).any(axis=0)
    visible_elsewhere = (conf == 1.0).any(axis=0)
    assert np.all(visible_elsewhere[occluded_somewhere])


def test_canonical_coordinates_lie_on_the_template(zju_plain_root):
    """Every foreground pixel's canonical coordinate is a point of the template body surface."""
    from ghnerf.data import load_surface

    tmpl = template_body()
    verts = SurfaceSampling().rest_vertices(tmpl)
    frame = open_dataset(zju_plain_root).sequence("CoreView_901").frame(0)
    canonical, label = load_surface(frame.views[0])
    pts = canonical[label > 0].astype(np.float64)
    assert len(pts) > 500
    d = np.min(np.linalg.norm(pts[::7, None, :] - verts[None, ::3, :], axis=2), axis=1)
    # vertices are ~2 cm apart on the template: every pixel is within a few cm of one
    assert np.percentile(d, 99) < 0.05
    # and the coordinates span the body (head to feet)
    assert pts[:, 2].max() - pts[:, 2].min() > 1.2
