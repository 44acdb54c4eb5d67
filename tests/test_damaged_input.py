"""Hostile and damaged input (issue 16): one test per case of docs/damaged-input.md.

Every command case asserts the exit code (2), that the message names the file, that no traceback is
printed, that nothing outside the command's own output was created or changed, and for hostile files that
their payload did not run. Data: the project's own synth (`ghnerf data synth ... --subjects 2 --frames 2
--cameras 4 --size 64`; 8 cameras where training needs 3 source views).
"""

import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ghnerf.app.cli import app
from ghnerf.data import open_dataset
from ghnerf.base.errors import UnsafeFileError
from ghnerf.base.safe_numpy import load_npy, load_npz
from ghnerf.synth.generate import SynthConfig, generate_dataset
from storage.catalog import Catalog
from storage.root import StorageRoot
from storage.targets import TargetStore
from ghnerf.app.distill import DistillConfig, distill

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


# -- data and helpers ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """The synth's tiny sets: ZJU and RenderPeople (2 x 2 x 4 at 64 px), and ZJU with 8 cameras for training."""
    base = tmp_path_factory.mktemp("tiny")
    sets = {"zju": dict(layout="zju", cameras=4), "rp": dict(layout="renderpeople", cameras=4),
            "train": dict(layout="zju", cameras=8, distortion=False, zju_naming="b")}
    for name, kw in sets.items():
        generate_dataset(SynthConfig(subjects=2, frames=2, size=64, seed=3, **kw), base / name)
    return {name: base / name for name in sets}


@pytest.fixture
def data(tiny, tmp_path):
    """A private copy of one tiny set (``data("zju")``), so a test can damage it."""
    def copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(tiny[name], dst)
        return dst
    return copy


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root``: (size, mtime) of files, None for folders."""
    return {str(p.relative_to(root)): (None if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns))
            for p in root.rglob("*")}


def changed(before: dict, root: Path, own: tuple[str, ...] = ()) -> list[str]:
    """Paths created, changed or removed under ``root`` since ``before``, outside the command's own outputs."""
    after = snapshot(root)
    diff = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return [k for k in diff if not any(k == o or k.startswith(o + "/") for o in own)]


def one_clean_error(result, *names: str, code: int = 2) -> str:
    """The command exited ``code`` with one ``error:`` line naming every one of ``names`` and no traceback."""
    out = result.output
    assert result.exit_code == code, out
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in out
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, out
    for name in names:
        assert name in errors[0], f"{name!r} not in {errors[0]!r}"
    return errors[0]


def run_ghnerf(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real console entry point in a fresh process (what a user runs)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


class Payload:
    """What a crafted dataset file holds: unpickling it runs ``touch MARKER``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def hostile_annots(path: Path, marker: Path) -> None:
    """An annots.npy as the real ones are (a pickled dict), one value of which runs a command on load."""
    annots = load_npy(path).item()
    annots["cams"]["K"][0] = Payload(marker)
    np.save(path, np.array(annots, dtype=object), allow_pickle=True)


# -- 1. no code runs from a dataset file --------------------------------------------------------------------------


def real_annots(cameras: int = 3, frames: int = 2) -> dict:
    """The structure of a real ZJU-MoCap annots.npy (../shared/reference/formats.md §1)."""
    rng = np.random.default_rng(0)
    cams = {"K": [np.array([[1074.0, 0, 543], [0, 1074, 485], [0, 0, 1]]) for _ in range(cameras)],
            "R": [np.eye(3) for _ in range(cameras)], "T": [rng.normal(size=(3, 1)) * 1000 for _ in range(cameras)],
            "D": [np.array([[-0.22], [0.05], [0.0], [0.0], [0.0]]) for _ in range(cameras)]}
    ims = [{"ims": [f"Camera_B{c + 1}/{f:06d}.jpg" for c in range(cameras)],
            "kpts2d": rng.uniform(size=(cameras, 25, 3))} for f in range(frames)]
    return {"cams": cams, "ims": ims}


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return np.array_equal(a, b)


def test_real_annots_npy_loads_through_the_restricted_unpickler(tmp_path):
    annots = real_annots()
    path = tmp_path / "annots.npy"
    np.save(path, np.array(annots, dtype=object), allow_pickle=True)  # how the real files are written
    assert _same(load_npy(path).item(), annots)
    # a file written by numpy 1.x names its reconstructors under numpy.core (pickle protocol 3)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": ()})
    legacy = pickle.dumps(np.array(annots, dtype=object), protocol=3).replace(b"numpy._core.", b"numpy.core.")
    assert b"numpy.core.multiarray" in legacy
    old = tmp_path / "annots_numpy1.npy"
    old.write_bytes(buf.getvalue() + legacy)
    assert _same(load_npy(old).item(), annots)
    # npz with a pickled dict, as RenderPeople's refit_smpl_2nd.npz
    smpl = {"betas": np.zeros((1, 10)), "global_orient": np.zeros((4, 3)), "body_pose": np.zeros((4, 69)),
            "transl": np.ones((4, 3))}
    np.savez(tmp_path / "refit.npz", smpl=np.array(smpl, dtype=object))
    assert _same(load_npz(tmp_path / "refit.npz")["smpl"].item(), smpl)


def test_no_user_file_is_loaded_with_pickles_allowed():
    """`grep allow_pickle` over the code finds no np.load that would unpickle a user file."""
    hits = []
    for folder in ("ghnerf", "teachers", "storage", "flows"):
        for py in (REPO / folder).rglob("*.py"):
            for n, line in enumerate(py.read_text().splitlines(), 1):
                if re.search(r"allow_pickle\s*=\s*True", line) and "np.save" not in line and "write_npy" not in line:
                    hits.append(f"{py.relative_to(REPO)}:{n}: {line.strip()}")
    assert not hits, hits


@pytest.mark.parametrize("command", ["inspect", "distill"])
def test_hostile_annots_npy_is_refused_and_its_payload_never_runs(data, tmp_path, command):
    root = data("zju")
    annots = root / "CoreView_901" / "annots.npy"
    marker = tmp_path / "PAYLOAD_RAN"
    hostile_annots(annots, marker)
    before = snapshot(tmp_path)
    args = (["data", "inspect", str(root), "--json"] if command == "inspect" else
            ["distill", "--dataset", str(root), "--teacher", "gt-joints", "--out", str(tmp_path / "store")])
    proc = run_ghnerf(*args, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and str(annots) in errors[0] and "posix.system" in errors[0], out
    assert not marker.exists(), "the payload ran"
    assert changed(before, tmp_path) == []  # not even the store folder


def test_hostile_smpl_fit_npz_is_refused(data, tmp_path):
    root = data("rp")
    subject = sorted(p for p in root.iterdir() if p.is_dir())[0]
    shutil.rmtree(subject / "synthetic_gt" / "vertices")  # the reader then bounds the body by the SMPL fit
    marker = tmp_path / "PAYLOAD_RAN"
    fit = subject / "outputs_re_fitting" / "refit_smpl_2nd.npz"
    np.savez(fit, smpl=np.array({"transl": Payload(marker)}, dtype=object))
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["distill", "--dataset", str(root), "--teacher", "gt-joints", "--out",
                                 str(tmp_path / "store")])
    one_clean_error(result, str(fit), "posix.system")
    assert not marker.exists()
    assert changed(before, tmp_path) == []


def test_hostile_vertex_file_is_refused(data, tmp_path):
    root = data("zju")
    seq = open_dataset(root).sequence("CoreView_902")
    vertex = seq.frame(0).vertices_path
    marker = tmp_path / "PAYLOAD_RAN"
    np.save(vertex, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafeFileError, match="posix.system") as info:
        open_dataset(root).sequence("CoreView_902").frame(0)
    assert info.value.path == vertex and not marker.exists()


# -- 2. no silent data loss ---------------------------------------------------------------------------------------


def test_subject_without_annots_is_reported_not_dropped(data, tmp_path):
    root = data("zju")
    gone = root / "CoreView_902" / "annots.npy"
    gone.unlink()
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["data", "inspect", str(root), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [s["name"] for s in summary["subjects"]] == ["CoreView_901"]
    (skipped,) = summary["skipped"]
    assert skipped["name"] == "CoreView_902" and skipped["path"] == str(gone)
    assert "annots.npy is missing" in skipped["reason"]
    assert f"warning: skipped subject CoreView_902: {gone}: annots.npy is missing" in result.stderr
    # distill says it too (and still distills the readable subject)
    result = runner.invoke(app, ["distill", "--dataset", str(root), "--teacher", "gt-joints", "--out",
                                 str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    assert f"skipped subject CoreView_902: {gone}" in result.stderr
    assert changed(before, tmp_path, own=("store",)) == []
    # a subject folder given on its own is an error naming the file
    result = runner.invoke(app, ["data", "inspect", str(root / "CoreView_902")])
    one_clean_error(result, str(gone), "annots.npy is missing")


def test_renderpeople_subjects_that_cannot_be_read_are_reported(data):
    root = data("rp")
    first, second = sorted(p for p in root.iterdir() if p.is_dir())
    (second / "cameras.json").unlink()
    (root / "human_list.txt").write_text(f"{first.name}\n{second.name}\nseq_999999-rp_gone_rigged_001\n")
    result = runner.invoke(app, ["data", "inspect", str(root), "--json"])
    assert result.exit_code == 0, result.output
    skipped = {s["name"]: s for s in json.loads(result.stdout)["skipped"]}
    assert skipped[second.name]["path"] == str(second / "cameras.json")
    assert "human_list.txt" in skipped["seq_999999-rp_gone_rigged_001"]["reason"]
    assert str(second / "cameras.json") in result.stderr


def _distilled(root: Path, store: Path, **kw) -> None:
    distill(root, store, DistillConfig(teacher="gt-joints", frames_per_shard=1, **kw))


def test_missing_shard_file_is_an_error_unless_partial_targets_are_allowed(data, tmp_path):
    root = data("train")
    store = tmp_path / "store"
    _distilled(root, store)
    entry = sorted(Catalog(StorageRoot(store)).current(), key=lambda e: e.shard_path)[0]
    shard = store / entry.shard_path
    shard.unlink()
    before = snapshot(tmp_path)
    run = tmp_path / "run"
    args = ["train", "--config", "enerf-heatmap", "--data", str(root), "--out", str(run), "--targets", str(store),
            "--teacher", "gt-joints", "--steps", "1", "--perceptual-weight", "0", "--image-scale", "1"]
    msg = one_clean_error(runner.invoke(app, args), str(shard), "ghnerf distill", "--allow-partial-targets")
    assert "shard file is missing" in msg
    assert changed(before, tmp_path) == []  # no run folder either
    # explicitly allowed: the remaining shards serve, and what was left out is known
    ts = TargetStore(store, "gt-joints", allow_partial=True)
    assert len(ts.entries) == 3 and str(shard) in ts.left_out[0]
    # `ghnerf distill` with the same arguments rewrites it
    _distilled(root, store)
    assert len(TargetStore(store, "gt-joints").entries) == 4


def _training_view(root: Path, frame: int = 0):
    from ghnerf.student.data import ExampleSet

    ex = ExampleSet(root, "train", image_scale=1.0, heatmaps="none")
    subject, f, cam = next(item for item in ex.items if item[1] == frame)
    return ex.reader.sequence(subject).frame(f).views[cam]


def test_training_validates_every_view_before_step_1(data, tmp_path):
    root = data("train")
    view = _training_view(root)
    image = view.image_path
    image.write_bytes(image.read_bytes()[:-200])  # truncated: only a full decode or the file's end shows it
    mask = view.mask_paths[0]
    from ghnerf.base.fileio import write_image
    write_image(mask, np.zeros((40, 50), np.uint8))
    before = snapshot(tmp_path)
    run = tmp_path / "run"
    args = ["train", "--config", "enerf", "--data", str(root), "--out", str(run), "--steps", "1",
            "--perceptual-weight", "0", "--image-scale", "1", "--pretrained", "none"]
    result = runner.invoke(app, args)
    first = one_clean_error(result, "--exclude-bad-views")
    assert str(image) in result.output and "truncated" in result.output  # every bad file, all at once
    assert str(mask) in result.output and "mask is 50x40" in result.output
    assert "1 view(s)" in first
    assert changed(before, tmp_path) == []
    # excluded on request: training runs and records what it left out
    result = runner.invoke(app, [*args, "--exclude-bad-views"])
    assert result.exit_code == 0, result.output
    assert "excluding view" in result.output and str(image) in result.output
    recorded = json.loads((run / "run.json").read_text())["excluded_views"]
    assert {b["path"] for b in recorded} == {str(image), str(mask)}
    assert changed(before, tmp_path, own=("run",)) == []


# -- 3. damage that used to end in a traceback or a wrong message -------------------------------------------------


def test_truncated_catalog_entry_is_named_and_repaired_by_distill(data, tmp_path):
    root = data("zju")
    store = tmp_path / "store"
    _distilled(root, store)
    cat = Catalog(StorageRoot(store))
    entry = sorted(cat.current(), key=lambda e: e.shard_path)[0]
    damaged = next(p for p in (store / "catalog").iterdir() if p.name.startswith(entry.shard_key))
    damaged.write_bytes(damaged.read_bytes()[:100])
    before = snapshot(tmp_path)
    for args in (["lineage", entry.shard_key, "--store", str(store)],
                 ["train", "--config", "enerf-heatmap", "--data", str(root), "--out", str(tmp_path / "run"),
                  "--targets", str(store), "--teacher", "gt-joints", "--steps", "1", "--perceptual-weight", "0"]):
        msg = one_clean_error(runner.invoke(app, args), str(damaged), "ghnerf distill")
        assert "catalog entry is damaged" in msg and entry.shard_path in msg
    assert changed(before, tmp_path) == []
    # rerunning distill re-registers the intact shard (no recompute) and removes the damaged entry
    result = runner.invoke(app, ["distill", "--dataset", str(root), "--teacher", "gt-joints", "--out", str(store),
                                 "--frames-per-shard", "1"])
    assert result.exit_code == 0, result.output
    assert "restored 1 catalog entry" in result.output
    assert not damaged.exists()
    restored = [e for e in Catalog(StorageRoot(store)).entries() if e.shard_key == entry.shard_key]
    assert [e.shard_path for e in restored] == [entry.shard_path] and restored[0].shard_sha256 == entry.shard_sha256
    assert restored[0].rows == entry.rows and restored[0].inputs == entry.inputs
    assert runner.invoke(app, ["lineage", entry.shard_key, "--store", str(store)]).exit_code == 0


def test_damaged_catalog_entry_with_a_damaged_shard_is_recomputed(data, tmp_path):
    root = data("zju")
    store = tmp_path / "store"
    _distilled(root, store)
    entry = Catalog(StorageRoot(store)).current()[0]
    for p in (store / "catalog").iterdir():
        if p.name.startswith(entry.shard_key):
            p.write_bytes(b"PAR1 not really")
    shard = store / entry.shard_path
    shard.write_bytes(shard.read_bytes()[:-50])
    old = time.time() - 3600
    os.utime(shard, (old, old))  # written an hour ago
    report = distill(root, store, DistillConfig(teacher="gt-joints", frames_per_shard=1))
    assert report.counts() == {"written": 1, "skipped": 3}
    assert not shard.exists()  # the damaged copy of the recomputed shard was removed
    ts = TargetStore(store, "gt-joints")
    assert len(ts.entries) == 4 and not Catalog(StorageRoot(store)).scan()[1]


def test_deleted_catalog_is_restored_from_the_shards_without_orphans(data, tmp_path):
    root = data("zju")
    store = tmp_path / "store"
    _distilled(root, store)
    shards = sorted(p.relative_to(store) for p in (store / "shards").rglob("*.parquet"))
    shutil.rmtree(store / "catalog")
    report = distill(root, store, DistillConfig(teacher="gt-joints", frames_per_shard=1))
    assert report.counts() == {"restored": 4}
    assert sorted(p.relative_to(store) for p in (store / "shards").rglob("*.parquet")) == shards
    assert len(TargetStore(store, "gt-joints").entries) == 4


def test_image_of_another_size_in_frame_0_is_named(data, tmp_path):
    from ghnerf.base.fileio import write_image

    root = data("zju")
    seq = open_dataset(root).sequence("CoreView_902")
    bad = seq.frame(0).views[1].image_path
    write_image(bad, np.full((48, 40, 3), 128, np.uint8))
    reader = open_dataset(root)
    assert reader.sequence("CoreView_902").image_sizes[1] == (64, 64)  # the camera's size is not the odd file's
    result = runner.invoke(app, ["data", "inspect", str(root), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["odd_sized_images"] == [{"path": str(bad), "size": [48, 40],
                                                              "expected": [64, 64]}]
    assert f"{bad}: image is 40x48 (WxH)" in result.stderr
    # distill fails that view alone, naming the image (not its good mask, not the next image)
    result = runner.invoke(app, ["distill", "--dataset", str(root), "--teacher", "gt-joints", "--out",
                                 str(tmp_path / "store")])
    failed = [ln for ln in result.output.splitlines() if ln.startswith("failed ")]
    assert len(failed) == 1 and str(bad) in failed[0] and "40x48" in failed[0], result.output


@pytest.mark.parametrize("command", ["lineage", "train"])
def test_read_only_commands_create_nothing_for_a_missing_store(data, tmp_path, command):
    root = data("train")
    missing = tmp_path / "no" / "store"
    before = snapshot(tmp_path)
    args = (["lineage", "abc", "--store", str(missing)] if command == "lineage" else
            ["train", "--config", "enerf-heatmap", "--data", str(root), "--out", str(tmp_path / "run"),
             "--targets", str(missing), "--teacher", "gt-joints", "--steps", "1", "--perceptual-weight", "0"])
    one_clean_error(runner.invoke(app, args), str(missing), "no such storage root")
    assert not (tmp_path / "no").exists()
    assert changed(before, tmp_path) == []


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    """No AWS credentials anywhere, and never the instance metadata service."""
    for k in list(os.environ):
        if k.startswith("AWS_") and k != "AWS_CA_BUNDLE":
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def test_s3_store_without_credentials_or_endpoint_is_one_line(data, tmp_path, no_aws, monkeypatch):
    pytest.importorskip("s3fs")
    from flows.stack import free_port

    root = data("zju")
    before = snapshot(tmp_path)
    base = ["distill", "--dataset", str(root), "--teacher", "gt-joints", "--out", "s3://bucket/targets"]
    msg = one_clean_error(runner.invoke(app, base), "s3://bucket/targets", "AWS_ACCESS_KEY_ID",
                          "--storage-option")
    assert "no S3 credentials" in msg
    # credentials but nothing listening at the endpoint: says which endpoint and how to give another
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    endpoint = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    result = runner.invoke(app, [*base, "--storage-option", f"endpoint_url={endpoint}"])
    one_clean_error(result, "s3://bucket/targets", endpoint, "--storage-option endpoint_url=")
    assert time.monotonic() - t0 < 10
    result = runner.invoke(app, ["lineage", "abc", "--store", "s3://bucket/targets", "--storage-option",
                                 f"endpoint_url={endpoint}"])
    one_clean_error(result, endpoint)
    assert changed(before, tmp_path) == []


def test_storage_option_reaches_an_s3_endpoint(data, tmp_path, no_aws, moto_endpoint):
    boto3 = pytest.importorskip("boto3")
    endpoint = moto_endpoint
    root = data("zju")
    base = ["distill", "--dataset", str(root), "--teacher", "gt-joints", "--out", "s3://issue16-targets/run"]
    one_clean_error(runner.invoke(app, [*base, "--storage-option", f"endpoint_url={endpoint}"]),
                    "bucket 'issue16-targets' does not exist")
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="issue16-targets")
    result = runner.invoke(app, [*base, "--storage-option", f"endpoint_url={endpoint}"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["lineage", "x", "--store", "s3://issue16-targets/run", "--storage-option",
                                 f"endpoint_url={endpoint}"])
    one_clean_error(result, "is not a shard path")  # reached the catalog


@pytest.mark.parametrize("layout", ["zju", "rp"])
def test_missing_camera_folder_is_named(data, tmp_path, layout):
    root = data(layout)
    subject = sorted(p for p in root.iterdir() if p.is_dir())[1]
    folder = (subject / "Camera_B3") if layout == "zju" else (subject / "img" / "camera0002")
    shutil.rmtree(folder)
    before = snapshot(tmp_path)
    msg = one_clean_error(runner.invoke(app, ["data", "inspect", str(root)]), str(folder))
    assert "camera folder is missing" in msg and "does not belong" not in msg
    assert changed(before, tmp_path) == []


def test_duplicate_shard_of_concurrent_distills_is_removed(data, tmp_path, monkeypatch):
    """Two runs writing the same shard (simulated: the second one does not see the first's entry)."""
    import ghnerf.app.distill as td

    root = data("zju")
    store = tmp_path / "store"
    _distilled(root, store)
    first = {e.shard_key: e.shard_path for e in Catalog(StorageRoot(store)).current()}
    with monkeypatch.context() as m:
        m.setattr(td, "find_done", lambda plan, store: None)
        m.setattr(td, "restore_entry", lambda plan, store, fn=None: None)
        time.sleep(0.01)  # the second writer's rows carry a later time, so its file differs
        report = distill(root, store, DistillConfig(teacher="gt-joints", frames_per_shard=1))
    assert report.counts() == {"written": 4}
    removed = {g["path"] for g in report.garbage.removed}
    assert removed == set(first.values())  # the first writer's files: its entries are superseded duplicates
    files = sorted(str(p.relative_to(store)) for p in (store / "shards").rglob("*.parquet"))
    assert files == sorted(e.shard_path for e in Catalog(StorageRoot(store)).current()) and len(files) == 4
    assert len(TargetStore(store, "gt-joints").entries) == 4


def test_store_gc_removes_orphaned_shards(data, tmp_path):
    root = data("zju")
    store = tmp_path / "store"
    _distilled(root, store)
    served = sorted(e.shard_path for e in Catalog(StorageRoot(store)).current())
    teacher_dir = store / served[0].rsplit("/", 1)[0]
    orphan_old, orphan_new = teacher_dir / ("0" * 32 + "-deadbeef.parquet"), teacher_dir / ("1" * 32 + "-x.parquet")
    for p in (orphan_old, orphan_new):
        p.write_bytes(b"left behind")
    tmp_file = teacher_dir / ".x.parquet.1234.tmp"
    tmp_file.write_bytes(b"interrupted")
    old = time.time() - 3600
    for p in (orphan_old, tmp_file):
        os.utime(p, (old, old))
    result = runner.invoke(app, ["store", "gc", str(store), "--dry-run"])
    assert result.exit_code == 0 and orphan_old.exists() and "would remove 2 file(s)" in result.output
    result = runner.invoke(app, ["store", "gc", str(store)])
    assert result.exit_code == 0, result.output
    assert not orphan_old.exists() and not tmp_file.exists() and orphan_new.exists()  # too young to be sure
    assert "kept 1 unreferenced file(s) younger than 15 min" in result.output
    assert sorted(str(p.relative_to(store)) for p in (store / "shards").rglob("*.parquet")
                  if p != orphan_new) == served
    assert len(TargetStore(store, "gt-joints").entries) == 4
    # a missing store is an error, not an empty folder
    one_clean_error(runner.invoke(app, ["store", "gc", str(tmp_path / "nope")]), str(tmp_path / "nope"))
    assert not (tmp_path / "nope").exists()
