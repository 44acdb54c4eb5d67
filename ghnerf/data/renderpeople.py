"""RenderPeople multi-view renders in the layout of SHERF's ``RenderPeople_recon``.

Root (e.g. ``RenderPeople_recon/20230228/``) holds ``human_list.txt`` (one
subject folder per line) and per subject ``seq_XXXXXX-rp_<name>_rigged_XXX/``:

* ``cameras.json``: ``{"camera0000": {"K": 3x3, "R": 3x3, "T": 3 or 3x1}, ...}``,
  world-to-camera, T in metres;
* ``img/camera0000/0000.jpg`` (4-digit pose index), ``mask/camera0000/0000.png``;
* ``outputs_re_fitting/refit_smpl_2nd.npz`` (SMPL fit; ``['smpl'].item()`` with
  ``betas``, ``global_orient``, ``body_pose``, ``transl``).

No distortion and no 2D keypoints ship with it. Source: skhu101/SHERF
``sherf/training/RenderPeople_dataset.py`` (../shared/reference/formats.md §2).
"""

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from ghnerf.base.cameras import Camera
from ghnerf.base.errors import DataReadError, UnsafeFileError
from ghnerf.base.safe_numpy import load_npy, load_npz
from ghnerf.data.folders import ProbedImageSizes, SubjectFolders, skipped_subject
from ghnerf.data.geometry import intrinsics_problem, load_vertices
from ghnerf.data.records import SIDE_DIR, CameraView, MultiViewFrame

HUMAN_LIST = "human_list.txt"
CAMERAS = "cameras.json"
SMPL_FIT = "outputs_re_fitting/refit_smpl_2nd.npz"
# Without an SMPL body model the vertices cannot be posed; the box around the
# fitted root translation is then this half-size (metres).
SMPL_ROOT_BOX_HALF = np.array([1.1, 1.1, 1.1])


def camera_name(index: int) -> str:
    return f"camera{index:04d}"


def image_relpath(camera_index: int, pose: int) -> str:
    return f"img/{camera_name(camera_index)}/{pose:04d}.jpg"


def mask_relpath(camera_index: int, pose: int) -> str:
    return f"mask/{camera_name(camera_index)}/{pose:04d}.png"


def is_sequence(path: Path) -> bool:
    return (path / CAMERAS).is_file() and (path / "img").is_dir()


def looks_like_sequence(path: Path) -> bool:
    """Has ``cameras.json`` or ``img/``: meant as a subject folder, whether or not it is complete."""
    return (path / CAMERAS).is_file() or (path / "img").is_dir()


def why_not_sequence(path: Path) -> tuple[Path, str]:
    """(the missing file or folder, the reason) of a folder that is not a readable subject."""
    if not path.is_dir():
        return path, "subject folder is missing (listed in human_list.txt); restore it or remove its line"
    if not (path / CAMERAS).is_file():
        return path / CAMERAS, ("cameras.json is missing: without the calibration none of this subject's images "
                                "can be used; restore it")
    return path / "img", "img/ is missing: this subject has no images; restore the img/ folder"


class RenderPeopleSequence(ProbedImageSizes):
    """One rendered subject folder (all poses, all cameras)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.name = self.root.name
        path = self.root / CAMERAS
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise DataReadError(path, "cameras.json is missing") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataReadError(path, f"cameras.json is not valid JSON ({exc})") from exc
        self.cameras_path = path
        self.camera_names = sorted(raw)
        self.cameras = [self._camera(name, raw[name]) for name in self.camera_names]
        folders = sorted(p.name for p in (self.root / "img").iterdir() if p.is_dir())
        missing = [name for name in self.camera_names if name not in folders]
        if missing:
            raise DataReadError(self.root / "img" / missing[0], f"camera folder is missing: cameras.json lists "
                                f"{len(self.camera_names)} cameras and {len(missing)} of their image folders "
                                f"({', '.join(missing[:4])}{'...' if len(missing) > 4 else ''}) are not in img/; "
                                "restore them")
        if folders != self.camera_names:
            raise DataReadError(path, f"cameras.json has {len(self.camera_names)} cameras but img/ has "
                                      f"{len(folders)} camera folders; they must match one to one")
        first = self.root / "img" / self.camera_names[0]
        self.poses = sorted(int(p.stem) for p in first.glob("*.jpg"))
        if not self.poses:
            raise DataReadError(first, "no images (*.jpg) in the first camera folder")

    def _camera(self, name: str, entry: dict) -> Camera:
        try:
            K = np.asarray(entry["K"], dtype=np.float64).reshape(3, 3)
            R = np.asarray(entry["R"], dtype=np.float64).reshape(3, 3)
            T = np.asarray(entry["T"], dtype=np.float64).reshape(3)
        except (KeyError, ValueError, TypeError) as exc:
            raise DataReadError(self.cameras_path, f"{name}: needs K (3x3), R (3x3), T (3) ({exc})") from exc
        for key, value in (("K", K), ("R", R), ("T", T)):
            if not np.all(np.isfinite(value)):
                raise DataReadError(self.cameras_path, f"{name}: {key} contains NaN or Inf; fix the calibration")
        if abs(np.linalg.det(R) - 1) > 1e-3:
            raise DataReadError(self.cameras_path, f"{name}: R is not a rotation (det = {np.linalg.det(R):.4f})")
        problem = intrinsics_problem(K)
        if problem:
            raise DataReadError(self.cameras_path, f"{name}: {problem}; fix the calibration")
        return Camera(K=K, R=R, T=T)

    @property
    def num_frames(self) -> int:
        return len(self.poses)

    @property
    def num_cameras(self) -> int:
        return len(self.cameras)

    def probed_images(self, frames: int) -> list[list[Path]]:
        return [[self.root / image_relpath(c, p) for p in self.poses[:frames]] for c in range(self.num_cameras)]

    @cached_property
    def _smpl_transl(self) -> np.ndarray | None:
        path = self.root / SMPL_FIT
        if not path.is_file():
            return None
        try:
            smpl = load_npz(path, "SMPL fit")["smpl"].item()
            return np.asarray(smpl["transl"], dtype=np.float64).reshape(-1, 3)
        except UnsafeFileError:
            raise
        except Exception as exc:  # noqa: BLE001
            why = exc.problem if isinstance(exc, DataReadError) else f"{type(exc).__name__}: {exc}"
            raise DataReadError(path, f"cannot read the SMPL fit ({why}); expected ['smpl'] holding a dict with "
                                      "'transl'") from exc

    def frame(self, index: int) -> MultiViewFrame:
        if not 0 <= index < self.num_frames:
            raise IndexError(f"{self.name}: frame {index} out of range [0, {self.num_frames})")
        pose = self.poses[index]
        side = self.root / SIDE_DIR
        kp_path = side / "keypoints2d" / f"{pose:04d}.npy"
        kpts = load_npy(kp_path, "2D keypoint file") if kp_path.is_file() else None
        views = []
        for c, cam in enumerate(self.cameras):
            h, w = self.image_sizes[c]
            mask = self.root / mask_relpath(c, pose)
            depth = side / "depth" / camera_name(c) / f"{pose:04d}.png"
            surface = side / "surface" / camera_name(c) / f"{pose:04d}.npz"
            views.append(CameraView(
                name=self.camera_names[c], index=c, image_path=self.root / image_relpath(c, pose),
                mask_paths=(mask,) if mask.is_file() else (), camera=Camera(cam.K, cam.R, cam.T, cam.D, h, w),
                joints2d=None if kpts is None else kpts[c].copy(),
                depth_path=depth if depth.is_file() else None, surface_path=surface if surface.is_file() else None))
        j3 = side / "joints3d" / f"{pose:04d}.npy"
        joints3d = load_npy(j3, "3D joint file") if j3.is_file() else None
        bounds, vpath = None, None
        vp = side / "vertices" / f"{pose:04d}.npy"
        if vp.is_file():
            verts = load_vertices(vp)
            bounds, vpath = np.stack([verts.min(0), verts.max(0)]), vp
        elif self._smpl_transl is not None and pose < len(self._smpl_transl):
            centre = self._smpl_transl[pose]
            bounds = np.stack([centre - SMPL_ROOT_BOX_HALF, centre + SMPL_ROOT_BOX_HALF])
        annotations = (self.cameras_path,) + ((kp_path,) if kpts is not None else ())
        return MultiViewFrame(subject=self.name, frame_index=index, frame_id=pose, views=tuple(views),
                              joints3d=joints3d, bounds=bounds, vertices_path=vpath, annotation_paths=annotations)


class RenderPeopleReader(SubjectFolders[RenderPeopleSequence]):
    """A RenderPeople root (with ``human_list.txt`` or subject folders) or one subject folder."""

    layout = "renderpeople"

    def __init__(self, root: str | Path):
        root = Path(root)
        skipped = []
        if is_sequence(root):
            dirs = [root]
        elif looks_like_sequence(root):
            raise DataReadError(*why_not_sequence(root))
        elif (root / HUMAN_LIST).is_file():
            names = [ln.strip() for ln in (root / HUMAN_LIST).read_text().splitlines() if ln.strip()]
            dirs = [root / n for n in names if is_sequence(root / n)]
            skipped = [skipped_subject(root / n, *why_not_sequence(root / n)) for n in names
                       if not is_sequence(root / n)]
            skipped += [skipped_subject(p, root / HUMAN_LIST, f"{p.name} is not listed in human_list.txt (the list "
                                                              "chooses the subjects); add it to use it")
                        for p in sorted(root.iterdir()) if p.is_dir() and p.name not in names and is_sequence(p)]
        else:
            subs = sorted(p for p in root.iterdir() if p.is_dir())
            dirs = [p for p in subs if is_sequence(p)]
            skipped = [skipped_subject(p, *why_not_sequence(p)) for p in subs
                       if not is_sequence(p) and looks_like_sequence(p)]
        super().__init__(root, dirs, RenderPeopleSequence, "no RenderPeople subject here (need cameras.json and img/)",
                         skipped)
