"""``ghnerf doctor``: what works on this machine, and how to fix what does not.

Each check is a small function returning a :class:`Check`. The Prefect server is
asked over its REST API with httpx (this library never imports Prefect). A check
with status ``fail`` and ``blocks_main_job`` makes ``ghnerf doctor`` exit 1: the
main job (``make demo``) cannot run until it is fixed. Missing optional pieces
(ImageNet / DINO / VGG weights, optional teachers, a server that ``make demo``
would start itself) are warnings with the exact fix.
"""

import shutil
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

import httpx

Status = Literal["ok", "warn", "fail"]
DEFAULT_API = "http://127.0.0.1:4200/api"
POOLS = ("cpu", "gpu")
MIN_FREE_GB, WARN_FREE_GB = 2.0, 10.0


@dataclass
class Check:
    """One finding: what was checked, its status, what was seen, and how to fix it."""

    name: str
    status: Status
    detail: str
    fix: str | None = None
    blocks_main_job: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def check_packages() -> list[Check]:
    """torch, prefect, and the fastapi pin Prefect 3.8.8 needs."""
    out = []
    for pkg in ("torch", "prefect", "mediapipe", "pyarrow"):
        try:
            out.append(Check(f"package {pkg}", "ok", version(pkg)))
        except PackageNotFoundError:
            out.append(Check(f"package {pkg}", "fail", "not installed", "make install", True))
    try:
        fastapi = version("fastapi")
        major, minor = (int(x) for x in fastapi.split(".")[:2])
        ok = (major, minor) < (0, 151)
        out.append(Check("package fastapi", "ok" if ok else "fail", fastapi,
                         None if ok else "pip install 'fastapi<0.151' (Prefect 3.8.8's server answers its own list "
                                         "calls with 422 on 0.151-0.154)", not ok))
    except PackageNotFoundError:
        out.append(Check("package fastapi", "fail", "not installed", "make install", True))
    return out


def _get(client: httpx.Client, url: str):
    r = client.get(url)
    r.raise_for_status()
    return r.json()


def check_prefect(api_url: str, pools: tuple[str, ...] = POOLS, timeout: float = 3.0) -> list[Check]:
    """Server health, its database, the work pools and their online workers."""
    api = api_url.rstrip("/")
    with httpx.Client(timeout=timeout) as client:
        try:
            _get(client, f"{api}/health")
        except (httpx.HTTPError, ValueError) as exc:
            return [Check("Prefect server", "warn", f"no server answers at {api} ({type(exc).__name__})",
                          "make demo starts one; or: prefect server start --host 127.0.0.1 "
                          "(and set PREFECT_API_URL)")]
        try:
            server_version = _get(client, f"{api}/admin/version")
        except (httpx.HTTPError, ValueError):
            server_version = "unknown version"
        out = [Check("Prefect server", "ok", f"{api} answers (server {server_version})")]
        ready = client.get(f"{api}/ready")
        driver = "unknown"
        try:
            driver = (_get(client, f"{api}/admin/settings").get("server", {}).get("database", {}).get("driver")
                      or "sqlite+aiosqlite (default)")
        except (httpx.HTTPError, ValueError, AttributeError):
            pass
        if ready.status_code == 200:
            out.append(Check("Prefect database", "ok", f"reachable; driver {driver}"))
        else:
            out.append(Check("Prefect database", "fail", f"/ready answered {ready.status_code}: {ready.text[:200]}",
                             "check PREFECT_SERVER_DATABASE_CONNECTION_URL on the server and that the database "
                             "runs (docs/scaling.md)", True))
        try:
            found = {p["name"]: p for p in client.post(f"{api}/work_pools/filter", json={}).json()}
        except (httpx.HTTPError, ValueError) as exc:
            return out + [Check("work pools", "fail", f"could not list pools: {exc}", "upgrade/restart the server",
                                True)]
        for name in pools:
            pool = found.get(name)
            if pool is None:
                fix = f"ghnerf deploy (or: prefect work-pool create {name} --type process" + (
                    "; prefect work-pool set-concurrency-limit gpu 1)" if name == "gpu" else ")")
                out.append(Check(f"work pool {name}", "warn", "missing (make demo creates it)", fix))
                continue
            workers = client.post(f"{api}/work_pools/{name}/workers/filter", json={}).json()
            online = [w["name"] for w in workers if w.get("status") == "ONLINE"]
            detail = (f"type {pool['type']}, concurrency limit {pool.get('concurrency_limit') or 'none'}, "
                      f"{len(online)} online worker(s)" + (f": {', '.join(online)}" if online else ""))
            out.append(Check(f"work pool {name}", "ok" if online else "warn", detail,
                             None if online else f"prefect worker start --pool {name}"))
    return out


def check_cuda() -> list[Check]:
    import torch

    if not torch.cuda.is_available():
        return [Check("CUDA", "ok", "no CUDA device: training and evaluation run on CPU")]
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return [Check("CUDA", "ok", f"{len(names)} device(s): {', '.join(names)}")]


def check_teachers() -> list[Check]:
    """Every registered teacher; the main job needs mediapipe."""
    from teachers.registry import REGISTRY, availability

    optional = {"openpifpaf", "densepose-cse"}
    out = []
    for name in REGISTRY:
        ok, reason = availability(name)
        if ok:
            out.append(Check(f"teacher {name}", "ok", reason))
        elif name in optional:
            out.append(Check(f"teacher {name}", "warn", reason, "optional: docs/optional-teachers.md"))
        else:
            out.append(Check(f"teacher {name}", "fail", reason, "make install (reinstall the pinned set)",
                             name == "mediapipe"))
    return out


def check_weights() -> list[Check]:
    """Encoder and LPIPS weights: found, or the exact file and where it goes."""
    from ghnerf.errors import WeightsNotFoundError
    from ghnerf.student.encoders import dino_cache_file, resnet_weights_file, torch_hub_checkpoint
    from ghnerf.student.losses import VGG16_FILE

    out = []
    for arch in ("resnet18", "resnet34"):
        path, url = resnet_weights_file(arch)
        out.append(Check(f"weights {arch} (ImageNet)", "ok", str(path)) if path.is_file() else
                   Check(f"weights {arch} (ImageNet)", "warn", f"missing {path}",
                         f"download {url} elsewhere and copy it to {path.parent}/ (until then: --pretrained none)"))
    try:
        out.append(Check("weights DINO ViT-S/8", "ok", str(dino_cache_file())))
    except WeightsNotFoundError as exc:
        out.append(Check("weights DINO ViT-S/8", "warn", "missing from the Hugging Face cache", str(exc)))
    vgg = torch_hub_checkpoint(VGG16_FILE)
    out.append(Check("weights VGG16 (LPIPS)", "ok", str(vgg)) if vgg.is_file() else
               Check("weights VGG16 (LPIPS)", "warn", f"missing {vgg}",
                     f"download https://download.pytorch.org/models/{VGG16_FILE} elsewhere and copy it to "
                     f"{vgg.parent}/ (until then LPIPS is reported as unavailable and --perceptual-weight 0)"))
    return out


def check_storage(storage_root: str) -> list[Check]:
    """The storage root is writable (a temp object written and removed); free disk for a local root."""
    from storage.root import StorageRoot

    try:
        root = StorageRoot(storage_root)
        probe = ".ghnerf-doctor-probe"
        root.write_bytes(probe, b"ok")
        root.delete(probe)
    except Exception as exc:  # noqa: BLE001 -- any failure to write is the finding
        return [Check("storage root", "fail", f"{storage_root} is not writable: {exc}",
                      "choose a writable folder or URL (--store), or fix its permissions / credentials", True)]
    out = [Check("storage root", "ok", f"{storage_root} is writable")]
    if root.is_local:
        path = Path(root.full(""))
        while not path.exists():
            path = path.parent
        free_gb = shutil.disk_usage(path).free / 1e9
        status: Status = "fail" if free_gb < MIN_FREE_GB else ("warn" if free_gb < WARN_FREE_GB else "ok")
        out.append(Check("free disk", status, f"{free_gb:.1f} GB free at {path}",
                         None if status == "ok" else f"free space: the main job needs {MIN_FREE_GB:.0f} GB, "
                                                     f"real datasets far more", status == "fail"))
    return out


def run_checks(api_url: str | None = None, storage_root: str = "demo_out", pools: tuple[str, ...] = POOLS,
               ) -> list[Check]:
    """Every check, in the order a new user should read them.

    Args:
        api_url: Prefect API (default: PREFECT_API_URL, else http://127.0.0.1:4200/api).
        storage_root: where targets go (folder or fsspec URL).
        pools: work pools the deployments use.
    """
    import os

    api = api_url or os.environ.get("PREFECT_API_URL") or DEFAULT_API
    return [*check_packages(), *check_prefect(api, pools), *check_cuda(), *check_teachers(), *check_weights(),
            *check_storage(storage_root)]


def main_job_blocked(checks: list[Check]) -> bool:
    return any(c.status == "fail" and c.blocks_main_job for c in checks)
