"""ZJU-MoCap reader (real layout, as zju3dv/neuralbody and zju3dv/ENeRF read it).

Per sequence ``CoreView_XXX/``:

* ``annots.npy`` -> dict: ``cams`` = {K, R, T (millimetres, 3x1), D (5x1)} lists
  indexed by camera; ``ims`` = per frame {``ims``: image paths relative to the
  sequence, optional ``kpts2d``: (C, 25, 3) BODY_25 on the raw images}.
* images in ``Camera_B1``… (``000000.jpg``, 0-based) or ``Camera (1)``… with long
  1-based names (CoreView_313/315: ``CoreView_313_Camera_(1)_0001_<date>.jpg``);
* masks at the same relative path with ``.png`` under ``mask/`` and/or ``mask_cihp/``
  (non-zero = person; the union is used);
* body vertices ``new_vertices/<id>.npy`` or ``vertices/<id>.npy`` (V, 3) metres,
  ``<id>`` = the frame number encoded in the image name.

Sources: ../shared/reference/formats.md §1.
"""

import re
from pathlib import Path

import numpy as np

from ghnerf.base.cameras import Camera
from ghnerf.base.errors import DataReadError, UnsafeFileError
from ghnerf.base.safe_numpy import load_npy
from ghnerf.data.folders import ProbedImageSizes, SubjectFolders, skipped_subject
from ghnerf.data.geometry import intrinsics_problem, load_vertices
from ghnerf.data.records import SIDE_DIR, CameraView, MultiViewFrame

MM_TO_M = 1e-3
ANNOTS = "annots.npy"
MASK_DIRS = ("mask", "mask_cihp")
VERTEX_DIRS = ("new_vertices", "vertices")
_CAMERA_DIR = re.compile(r"^Camera(_B\d+| \(\d+\))$")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def camera_folder(camera_number: int, naming: str) -> str:
    """Folder of 1-based camera ``camera_number``: ``Camera_B3`` (naming "b") or ``Camera (3)`` ("paren")."""
    return f"Camera_B{camera_number}" if naming == "b" else f"Camera ({camera_number})"


def image_relpath(sequence: str, camera_number: int, frame_index: int, naming: str) -> str:
    """Relative image path of 0-based ``frame_index`` as the real dataset names it."""
    folder = camera_folder(camera_number, naming)
    if naming == "b":
        return f"{folder}/{frame_index:06d}.jpg"
    return f"{folder}/{sequence}_Camera_({camera_number})_{frame_index + 1:04d}_2019-08-23_16-08-50.592.jpg"


def frame_id_from_path(relpath: str) -> int:
    """The frame number encoded in an image name (1-based for the long CoreView_313/315 names)."""
    base = Path(relpath).name
    if base.startswith("CoreView_"):
        return int(base.split("_")[4])
    return int(Path(base).stem)


def mask_relpath(image_relpath: str) -> str:
    return str(Path(image_relpath).with_suffix(".png"))


def is_sequence(path: Path) -> bool:
    return (path / ANNOTS).is_file()


def has_camera_folders(path: Path) -> bool:
    """The folder holds ZJU-MoCap camera folders (``Camera_B1``, ``Camera (1)``, ...): it looks like a sequence."""
    try:
        return any(p.is_dir() and _CAMERA_DIR.match(p.name) for p in path.iterdir())
    except OSError:
        return False


def looks_like_sequence(path: Path) -> bool:
    return is_sequence(path) or has_camera_folders(path)


MISSING_ANNOTS = ("annots.npy is missing: this folder has camera folders like a ZJU-MoCap sequence, but without "
                  "annots.npy (cams + ims) none of its images can be used; restore annots.npy")


class ZJUSequence(ProbedImageSizes):
    """One ZJU-MoCap sequence folder.

    Args:
        root: the ``CoreView_XXX`` folder.
    Raises:
        DataReadError: annots missing/unreadable, camera entries inconsistent or non-finite,
            or the camera count disagreeing with the image folders.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.name = self.root.name
        path = self.root / ANNOTS
        if not path.is_file():
            raise DataReadError(path, MISSING_ANNOTS)
        try:
            annots = load_npy(path, "annots.npy").item()
            cams, ims = annots["cams"], annots["ims"]
        except UnsafeFileError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure here means a bad file
            why = exc.problem if isinstance(exc, DataReadError) else f"{type(exc).__name__}: {exc}"
            raise DataReadError(path, f"cannot read annots.npy ({why}); expected a pickled dict with 'cams' "
                                      "{K,R,T,D} and 'ims'") from exc
        self.annots_path = path
        self.ims = ims
        self.cameras = self._read_cameras(cams)
        if not ims:
            raise DataReadError(path, "'ims' lists no frames")
        self._check_paths_inside()
        self._check_camera_count()

    def _check_paths_inside(self) -> None:
        """Every image path in ``ims`` stays inside the sequence folder (nothing outside it is ever read)."""
        for index, entry in enumerate(self.ims):
            try:
                rels = [str(r) for r in entry["ims"]]
            except (KeyError, TypeError) as exc:
                raise DataReadError(self.annots_path, f"frame {index}: no 'ims' list of image paths ({exc})") from None
            for rel in rels:
                if Path(rel).is_absolute() or ".." in Path(rel).parts:
                    raise DataReadError(self.annots_path, f"frame {index}: image path {rel!r} leaves the dataset "
                                                          f"folder {self.root}; annots.npy may only list files "
                                                          "inside it (nothing outside was read)")

    def unlisted_images(self) -> list[Path]:
        """Image files in the camera folders that no frame of ``ims`` lists (they are never used)."""
        listed = {str(self.root / rel) for entry in self.ims for rel in entry["ims"]}
        folders = {Path(rel).parts[0] for rel in self.ims[0]["ims"]}
        return sorted(p for name in folders if (self.root / name).is_dir() for p in (self.root / name).iterdir()
                      if p.suffix.lower() in IMAGE_SUFFIXES and str(p) not in listed)

    def warnings(self) -> list[str]:
        """A line when image files on disk are not listed in annots.npy (so no command uses them)."""
        unlisted = self.unlisted_images()
        if not unlisted:
            return []
        shown = ", ".join(str(p) for p in unlisted[:3]) + (" ..." if len(unlisted) > 3 else "")
        return [f"{self.annots_path}: lists {self.num_frames} frame(s), and {len(unlisted)} image file(s) on disk "
                f"are in none of them, so they are not used: {shown}; add their frames to annots.npy or move the "
                "files away"]

    def _read_cameras(self, cams: dict) -> list[Camera]:
        path = self.annots_path
        missing = [k for k in ("K", "R", "T") if k not in cams]
        if missing:
            raise DataReadError(path, f"'cams' lacks {missing}; expected keys K, R, T (mm) and D")
        n = len(cams["K"])
        for key in ("R", "T", "D"):
            if key in cams and len(cams[key]) != n:
                raise DataReadError(path, f"'cams' has {n} K entries but {len(cams[key])} {key} entries")
        out = []
        for i in range(n):
            try:
                K = np.asarray(cams["K"][i], dtype=np.float64).reshape(3, 3)
                R = np.asarray(cams["R"][i], dtype=np.float64).reshape(3, 3)
                T = np.asarray(cams["T"][i], dtype=np.float64).reshape(3) * MM_TO_M
                D = np.asarray(cams["D"][i], dtype=np.float64).reshape(-1) if "D" in cams else np.zeros(5)
            except (ValueError, TypeError) as exc:
                raise DataReadError(path, f"camera {i}: malformed K/R/T/D ({exc})") from exc
            for key, value in (("K", K), ("R", R), ("T", T), ("D", D)):
                if not np.all(np.isfinite(value)):
                    raise DataReadError(path, f"camera {i}: {key} contains NaN or Inf; fix the calibration")
            problem = intrinsics_problem(K)
            if problem:
                raise DataReadError(path, f"camera {i}: {problem}; fix the calibration")
            if abs(np.linalg.det(R) - 1) > 1e-3:
                raise DataReadError(path, f"camera {i}: R is not a rotation (det = {np.linalg.det(R):.4f})")
            D = np.concatenate([D, np.zeros(max(0, 5 - D.size))])[:5]
            out.append(Camera(K=K, R=R, T=T, D=D))
        return out

    def _check_camera_count(self) -> None:
        n = len(self.cameras)
        first = self.ims[0]["ims"]
        if len(first) != n:
            raise DataReadError(self.annots_path, f"frame 0 lists {len(first)} images but 'cams' has {n} cameras")
        folders = sorted(p.name for p in self.root.iterdir() if p.is_dir() and _CAMERA_DIR.match(p.name))
        listed = list(dict.fromkeys(Path(rel).parts[0] for rel in first))
        missing = [name for name in listed if name not in folders]
        if folders and missing:
            raise DataReadError(self.root / missing[0], f"camera folder is missing: annots.npy lists {len(listed)} "
                                f"cameras and {len(missing)} of their folders ({', '.join(missing[:4])}"
                                f"{'...' if len(missing) > 4 else ''}) are not in {self.root}; restore them")
        if folders and len(folders) != n:
            extra = [name for name in folders if name not in listed]
            raise DataReadError(self.annots_path, f"'cams' has {n} cameras but the sequence has {len(folders)} "
                                                  f"camera folders (not in annots.npy: {', '.join(extra[:4])}); the "
                                                  "annots.npy does not belong to these images")

    @property
    def num_frames(self) -> int:
        return len(self.ims)

    @property
    def num_cameras(self) -> int:
        return len(self.cameras)

    def camera_name(self, index: int) -> str:
        return Path(self.ims[0]["ims"][index]).parts[0]

    def probed_images(self, frames: int) -> list[list[Path]]:
        return [[self.root / entry["ims"][c] for entry in self.ims[:frames]] for c in range(self.num_cameras)]

    def frame(self, index: int) -> MultiViewFrame:
        """Frame ``index`` (0-based position in ``annots['ims']``)."""
        if not 0 <= index < self.num_frames:
            raise IndexError(f"{self.name}: frame {index} out of range [0, {self.num_frames})")
        entry = self.ims[index]
        rels = list(entry["ims"])
        if len(rels) != self.num_cameras:
            raise DataReadError(self.annots_path, f"frame {index} lists {len(rels)} images, expected "
                                                  f"{self.num_cameras}")
        kpts = self._kpts2d(index, entry) if "kpts2d" in entry else None
        frame_id = frame_id_from_path(rels[0])
        side = self.root / SIDE_DIR
        views = []
        for c, rel in enumerate(rels):
            h, w = self.image_sizes[c]
            cam = self.cameras[c]
            cam = Camera(K=cam.K, R=cam.R, T=cam.T, D=cam.D, height=h, width=w)
            joints2d = None
            if kpts is not None:
                joints2d = kpts[c].copy()
                if cam.has_distortion:
                    joints2d[:, :2] = cam.undistort_points(joints2d[:, :2])
                joints2d[joints2d[:, 2] <= 0] = 0.0
            masks = tuple(p for p in (self.root / d / mask_relpath(rel) for d in MASK_DIRS) if p.is_file())
            depth = side / "depth" / mask_relpath(rel)
            surface = side / "surface" / Path(rel).with_suffix(".npz")
            views.append(CameraView(
                name=Path(rel).parts[0], index=c, image_path=self.root / rel, mask_paths=masks, camera=cam,
                joints2d=joints2d, depth_path=depth if depth.is_file() else None,
                surface_path=surface if surface.is_file() else None))
        joints3d = None
        j3 = side / "joints3d" / f"{frame_id}.npy"
        if j3.is_file():
            joints3d = load_npy(j3, "3D joint file")
        bounds, vpath = None, None
        for d in VERTEX_DIRS:
            p = self.root / d / f"{frame_id}.npy"
            if p.is_file():
                verts = load_vertices(p)
                bounds, vpath = np.stack([verts.min(0), verts.max(0)]), p
                break
        return MultiViewFrame(subject=self.name, frame_index=index, frame_id=frame_id, views=tuple(views),
                              joints3d=joints3d, bounds=bounds, vertices_path=vpath,
                              annotation_paths=(self.annots_path,))


    def _kpts2d(self, index: int, entry: dict) -> np.ndarray:
        """(cameras, J, 3) 2D joints of frame ``index``; DataReadError naming annots.npy when of another shape."""
        expected = f"({self.num_cameras}, 25, 3): per camera x, y, confidence of each joint"
        try:
            kpts = np.asarray(entry["kpts2d"], dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise DataReadError(self.annots_path, f"frame {index}: kpts2d is not an array ({exc}); expected "
                                                  f"{expected}") from None
        if kpts.ndim != 3 or kpts.shape[0] != self.num_cameras or kpts.shape[2] != 3:
            raise DataReadError(self.annots_path, f"frame {index}: kpts2d has shape {kpts.shape}, expected {expected}")
        return kpts


class ZJUMoCapReader(SubjectFolders[ZJUSequence]):
    """A ZJU-MoCap root (folder of ``CoreView_*`` sequences) or a single sequence folder.

    A sub-folder with camera folders but no ``annots.npy`` is skipped with a reason (``skipped``), never silently;
    a single sequence folder without it is an error.
    """

    layout = "zju"

    def __init__(self, root: str | Path):
        root = Path(root)
        skipped = []
        if is_sequence(root):
            dirs = [root]
        elif has_camera_folders(root):
            raise DataReadError(root / ANNOTS, MISSING_ANNOTS)
        else:
            subs = sorted(p for p in root.iterdir() if p.is_dir())
            dirs = [p for p in subs if is_sequence(p)]
            skipped = [skipped_subject(p, p / ANNOTS, MISSING_ANNOTS) for p in subs
                       if not is_sequence(p) and has_camera_folders(p)]
        super().__init__(root, dirs, ZJUSequence, "no ZJU-MoCap sequence here (no annots.npy in it or its sub-folders)",
                         skipped)
