"""``ghnerf doctor``: what works on this machine, and how to fix what does not.

Each check is a small function returning :class:`Check` values. The Prefect
server is asked over its REST API with httpx (this module never imports Prefect;
routes as in Prefect 3.8.8: ``GET /health``, ``GET /ready``, ``GET /admin/version``,
``GET /admin/settings``, ``POST /work_pools/filter``,
``POST /work_pools/{name}/workers/filter``). A check with status ``fail`` and
``blocks_main_job`` makes ``ghnerf doctor`` exit 1: the main job (``make demo``)
cannot run until it is fixed. Missing optional pieces (ImageNet / DINO / VGG
weights, optional teachers, a server that ``make demo`` would start itself) are
warnings with the exact fix.
"""

import base64
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

Status = Literal["ok", "warn", "fail"]
DEFAULT_API = "http://127.0.0.1:4200/api"
POOLS = ("cpu", "gpu")
POOL_CONCURRENCY = {"gpu": 1}
"""Concurrency limit each pool is created with by ``make demo`` / ``ghnerf deploy`` (none when absent)."""
OPTIONAL_TEACHERS = frozenset({"openpifpaf", "densepose-cse"})
MAIN_JOB_TEACHER = "mediapipe"
FASTAPI_BELOW = (0, 151)
MIN_FREE_GB, WARN_FREE_GB = 2.0, 10.0
SERVER_FIX = "make demo starts one, or: prefect server start --host 127.0.0.1 (and set PREFECT_API_URL)"


@dataclass
class Check:
    """One finding: what was checked, its status, what was seen, and how to fix it."""

    name: str
    """What was checked, e.g. ``work pool gpu``."""
    status: Status
    """``ok``, ``warn`` (works with less) or ``fail`` (broken)."""
    detail: str
    """What was seen: versions, paths, counts, the error."""
    fix: str | None = None
    """The command or step that fixes a ``warn`` / ``fail`` (None when ok)."""
    blocks_main_job: bool = False
    """True when ``make demo`` cannot run while this check fails."""

    def to_dict(self) -> dict:
        return asdict(self)


# -- packages ---------------------------------------------------------------------------------------------------


def check_fastapi(installed: str) -> Check:
    """Prefect 3.8.8's server answers its own list calls with 422 on fastapi 0.151-0.154.

    Args:
        installed: the installed fastapi version string.

    Returns:
        ok below 0.151, else a blocking failure with the pip fix.
    """
    try:
        major, minor = (int(x) for x in installed.split(".")[:2])
    except ValueError:
        return Check("package fastapi", "warn", f"{installed} (version not understood)", "pip install 'fastapi<0.151'")
    if (major, minor) < FASTAPI_BELOW:
        return Check("package fastapi", "ok", installed)
    return Check("package fastapi", "fail", f"{installed}: Prefect 3.8.8's server answers its own list calls with 422 "
                 "on fastapi 0.151-0.154", "pip install 'fastapi<0.151'", True)


def check_packages() -> list[Check]:
    """Versions of the packages the main job needs, and the fastapi pin.

    Returns:
        One check per package; a missing package fails and blocks the main job.
    """
    out = []
    for pkg in ("torch", "torchvision", "prefect", "mediapipe", "pyarrow", "fastapi"):
        try:
            installed = version(pkg)
        except PackageNotFoundError:
            out.append(Check(f"package {pkg}", "fail", "not installed", "make install (installs requirements.lock)",
                             True))
            continue
        out.append(check_fastapi(installed) if pkg == "fastapi" else Check(f"package {pkg}", "ok", installed))
    return out


# -- Prefect server ---------------------------------------------------------------------------------------------


def _auth_headers() -> dict[str, str]:
    """The same credentials a Prefect client would send (API key, or the server's basic auth string)."""
    if key := os.environ.get("PREFECT_API_KEY"):
        return {"Authorization": f"Bearer {key}"}
    if auth := os.environ.get("PREFECT_API_AUTH_STRING"):
        return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    return {}


def _json(response: httpx.Response) -> Any:
    response.raise_for_status()
    return response.json()


def hide_password(url: str) -> str:
    """``url`` with the password (if any) replaced by ``***``.

    Args:
        url: a database URL such as ``postgresql+asyncpg://user:secret@host:5432/db``.

    Returns:
        The same URL, e.g. ``postgresql+asyncpg://user:***@host:5432/db``.
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def database_backend(settings: dict) -> str:
    """The server's database as far as ``GET /admin/settings`` reveals it (never a password).

    Prefect 3.8.8 obfuscates ``server.database.connection_url`` completely (``**********``), so the
    backend is read from ``driver`` / ``host`` when those are set; otherwise this says what the URL
    defaults to, and what this shell's ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` would give a
    server started from here.

    Args:
        settings: the JSON of ``GET /admin/settings``.

    Returns:
        One line, e.g. ``postgresql (postgresql+asyncpg, dbhost:5432/prefect, user prefect)``.
    """
    db = settings.get("server", {}).get("database", {}) or {}
    url = db.get("connection_url")
    if isinstance(url, str) and "://" in url:  # a server that does not obfuscate it
        return f"{url.split('://')[0].split('+')[0]} ({hide_password(url)})"
    if db.get("driver") or db.get("host"):
        kind = "postgresql" if db.get("host") or "postgres" in (db.get("driver") or "") else "sqlite"
        where = f"{db.get('host')}:{db.get('port') or 5432}/{db.get('name') or 'prefect'}" if db.get("host") else ""
        parts = [p for p in (db.get("driver"), where, f"user {db['user']}" if db.get("user") else "") if p]
        return f"{kind} ({', '.join(parts)})"
    home = settings.get("home") or "PREFECT_HOME"
    line = (f"connection URL hidden by the server: SQLite at {home}/prefect.db unless the server was started with "
            "PREFECT_SERVER_DATABASE_CONNECTION_URL")
    if local := os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL"):
        line += f"; this shell sets it to {hide_password(local)}"
    return line


def check_server(client: httpx.Client, api: str) -> list[Check]:
    """The server answers ``/health``; its version; its database reachable (``/ready``) and which backend.

    Args:
        client: httpx client (timeouts and auth set).
        api: the API URL, e.g. ``http://127.0.0.1:4200/api``.

    Returns:
        One warning when no server answers (``make demo`` starts one), else the server check and the
        database check (a blocking failure when ``/ready`` reports the database unreachable).
    """
    try:
        _json(client.get(f"{api}/health"))
    except (httpx.HTTPError, ValueError) as exc:
        return [Check("Prefect server", "warn", f"no server answers at {api} ({type(exc).__name__}: {exc})",
                      SERVER_FIX)]
    try:
        server_version = _json(client.get(f"{api}/admin/version"))
    except (httpx.HTTPError, ValueError) as exc:
        server_version = f"version unknown: {exc}"
    out = [Check("Prefect server", "ok", f"{api} answers (server {server_version})")]
    try:
        backend = database_backend(_json(client.get(f"{api}/admin/settings")))
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        backend = f"backend not reported ({type(exc).__name__})"
    ready = client.get(f"{api}/ready")
    if ready.status_code == 200:
        out.append(Check("Prefect database", "ok", f"reachable; {backend}"))
    else:
        out.append(Check("Prefect database", "fail", f"/ready answered {ready.status_code} "
                         f"({ready.text[:200]}); {backend}",
                         "start the database, or check PREFECT_SERVER_DATABASE_CONNECTION_URL where the server was "
                         "started (docs/scaling.md), then restart the server", True))
    return out


def _heartbeat_age(worker: dict, now: datetime) -> str:
    stamp = worker.get("last_heartbeat_time")
    if not stamp:
        return "no heartbeat"
    seconds = (now - datetime.fromisoformat(stamp)).total_seconds()
    return f"heartbeat {seconds:.0f} s ago"


def check_pool(client: httpx.Client, api: str, name: str, pool: dict | None) -> Check:
    """One work pool: type, status, concurrency limit, and its workers.

    Args:
        client: httpx client.
        api: the API URL.
        name: the pool's name.
        pool: its entry from ``POST /work_pools/filter`` (None when missing).

    Returns:
        ok with at least one ONLINE worker; warn when missing, paused, without the expected
        concurrency limit, or without an online worker (each with the command that fixes it).
    """
    limit = POOL_CONCURRENCY.get(name)
    if pool is None:
        fix = f"ghnerf deploy, or: prefect work-pool create {name} --type process" + (
            f" && prefect work-pool set-concurrency-limit {name} {limit}" if limit else "")
        return Check(f"work pool {name}", "warn", "missing (make demo and ghnerf deploy create it)", fix)
    try:
        workers = _json(client.post(f"{api}/work_pools/{name}/workers/filter", json={}))
    except (httpx.HTTPError, ValueError) as exc:
        workers, error = [], f"; workers not listed ({type(exc).__name__}: {exc})"
    else:
        error = ""
    now = datetime.now(timezone.utc)
    online = [f"{w['name']} ({_heartbeat_age(w, now)})" for w in workers if w.get("status") == "ONLINE"]
    offline = [w["name"] for w in workers if w.get("status") != "ONLINE"]
    detail = (f"type {pool.get('type')}, status {pool.get('status')}, concurrency limit "
              f"{pool.get('concurrency_limit') or 'none'}, {len(online)} online worker(s)"
              + (f": {', '.join(online)}" if online else "")
              + (f"; offline: {', '.join(offline)}" if offline else "") + error)
    env = f"PREFECT_API_URL={api} "
    if pool.get("is_paused") or pool.get("status") == "PAUSED":
        return Check(f"work pool {name}", "warn", detail, f"{env}prefect work-pool resume {name}")
    if limit is not None and pool.get("concurrency_limit") != limit:
        return Check(f"work pool {name}", "warn", detail,
                     f"{env}prefect work-pool set-concurrency-limit {name} {limit}")
    if not online:
        return Check(f"work pool {name}", "warn", detail, f"{env}prefect worker start --pool {name}")
    return Check(f"work pool {name}", "ok", detail)


def check_pools(client: httpx.Client, api: str, pools: tuple[str, ...] = POOLS) -> list[Check]:
    """Every expected work pool (``POST /work_pools/filter``) with its workers.

    Args:
        client: httpx client.
        api: the API URL.
        pools: names of the pools the deployments use.

    Returns:
        One check per pool, or one blocking failure when the server cannot list pools.
    """
    try:
        listed = _json(client.post(f"{api}/work_pools/filter", json={}))
        found = {p["name"]: p for p in listed}
    except (httpx.HTTPError, ValueError, TypeError, KeyError) as exc:
        fix = ("set PREFECT_API_KEY / PREFECT_API_AUTH_STRING as the server expects"
               if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in (401, 403)
               else "pip install 'fastapi<0.151' where the server runs, and restart it")
        return [Check("work pools", "fail", f"the server could not list work pools: {exc}", fix, True)]
    return [check_pool(client, api, name, found.get(name)) for name in pools]


def check_prefect(api_url: str, pools: tuple[str, ...] = POOLS, timeout: float = 3.0) -> list[Check]:
    """Server health and database, then the work pools and their workers when a server answers.

    Args:
        api_url: Prefect API URL.
        pools: names of the expected work pools.
        timeout: seconds per HTTP request.

    Returns:
        The server, database and pool checks (only the server warning when none answers).
    """
    api = api_url.rstrip("/")
    with httpx.Client(timeout=timeout, headers=_auth_headers()) as client:
        out = check_server(client, api)
        if out[0].status != "ok":
            return out
        return out + check_pools(client, api, pools)


# -- compute, teachers, weights ---------------------------------------------------------------------------------


def check_cuda() -> list[Check]:
    """CUDA devices (none is fine: everything runs on CPU).

    Returns:
        One ok check naming the devices, or saying that training runs on CPU.
    """
    import torch

    if not torch.cuda.is_available():
        return [Check("CUDA", "ok", "no CUDA device: training runs on CPU")]
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return [Check("CUDA", "ok", f"{len(names)} device(s): {', '.join(names)}")]


def check_cpu_training() -> list[Check]:
    """What CPU training computes in by default (``--cpu-precision auto``) and where the frozen pose encoder keeps
    the keypoints of photographs it has seen (:mod:`ghnerf.base.keypoint_cache`)."""
    import torch

    from ghnerf.base.keypoint_cache import CACHE_DIR_VAR, cache_directory
    from ghnerf.student.precision import training_precision

    precision = training_precision("auto", torch.device("cpu"))
    out = [Check("CPU training precision", "ok", f"{precision.autocast}: {precision.reason}")]
    folder = cache_directory()
    if folder is None:
        out.append(Check("keypoint cache", "ok", f"memory only ({CACHE_DIR_VAR}=none)"))
        return out
    files = sorted(folder.glob("keypoints-*.sqlite")) if folder.is_dir() else []
    size = sum(f.stat().st_size for f in files) / 2**20
    out.append(Check("keypoint cache", "ok", f"{folder}: {len(files)} file(s), {size:.1f} MB (safe to delete; "
                                             f"{CACHE_DIR_VAR} moves it, =none turns it off)"))
    return out


def check_teachers() -> list[Check]:
    """Every registered teacher built once (as ``ghnerf teachers list`` does); the main job needs mediapipe.

    Returns:
        ok with version and weights digest; else the registry's reason (it names the missing package
        or file): a warning for optional teachers, a failure otherwise (blocking for mediapipe).
    """
    from ghnerf.app.teacher_registry import REGISTRY, availability

    out = []
    for name in REGISTRY:
        ok, reason = availability(name)
        if ok:
            out.append(Check(f"teacher {name}", "ok", reason))
        elif name in OPTIONAL_TEACHERS:
            out.append(Check(f"teacher {name}", "warn", reason, "optional: docs/optional-teachers.md"))
        else:
            out.append(Check(f"teacher {name}", "fail", reason, "make install (reinstalls the pinned set, including "
                             "mediapipe and its bundled pose model)", name == MAIN_JOB_TEACHER))
    return out


def _weights_file(name: str, path: Path, url: str, without: str) -> Check:
    if path.is_file():
        return Check(name, "ok", str(path))
    return Check(name, "warn", f"missing {path}",
                 f"download {url} on a machine with network and copy it to {path.parent}/ ({without})")


def check_weights() -> list[Check]:
    """Encoder and LPIPS weights, looked up exactly where training and evaluation look.

    Returns:
        ok with the path, or a warning naming the exact missing file and the folder it goes in
        (without them training goes on with ``--pretrained auto`` / ``--perceptual-weight auto``, the defaults:
        a random init and no perceptual loss, said and recorded).
    """
    from ghnerf.base.errors import WeightsNotFoundError
    from ghnerf.student.weights import VGG16_FILE, dino_cache_file, resnet_weights_file, torch_hub_checkpoint

    out = []
    for arch in ("resnet18", "resnet34"):
        path, url = resnet_weights_file(arch)
        out.append(_weights_file(f"weights {arch} (ImageNet)", path, url,
                                 "until then --pretrained auto (the default) starts the encoder from a random init"))
    try:
        out.append(Check("weights DINO ViT-S/8", "ok", str(dino_cache_file())))
    except WeightsNotFoundError as exc:
        out.append(Check("weights DINO ViT-S/8", "warn", "missing model.safetensors in the Hugging Face cache",
                         str(exc)))
    out.append(_weights_file("weights VGG16 (LPIPS)", torch_hub_checkpoint(VGG16_FILE),
                             f"https://download.pytorch.org/models/{VGG16_FILE}",
                             "until then LPIPS is reported as unavailable and --perceptual-weight auto (the "
                             "default) trains without it"))
    return out


# -- storage ----------------------------------------------------------------------------------------------------


def check_storage(storage_root: str) -> list[Check]:
    """The storage root is writable (a probe written and removed); free disk for a local root.

    Args:
        storage_root: local folder or fsspec URL.

    Returns:
        The storage check (blocking failure when not writable) and, for a local root, the free-disk
        check (blocking under ``MIN_FREE_GB``, warning under ``WARN_FREE_GB``).
    """
    from storage.root import StorageRoot

    try:
        root = StorageRoot(storage_root)
        probe = ".ghnerf-doctor-probe"
        root.write_bytes(probe, b"ok")
        root.delete(probe)
    except Exception as exc:  # noqa: BLE001 -- any failure to write is the finding
        return [Check("storage root", "fail", f"{storage_root} is not writable: {type(exc).__name__}: {exc}",
                      "choose a writable folder or URL (--store), or fix its permissions / credentials", True)]
    out = [Check("storage root", "ok", f"{storage_root} is writable")]
    if root.is_local:
        out.append(check_free_disk(Path(root.full(""))))
    return out


def check_free_disk(path: Path) -> Check:
    """Free space on the file system holding ``path``.

    Args:
        path: a local folder (its nearest existing parent is measured).

    Returns:
        fail (blocking) under ``MIN_FREE_GB``, warn under ``WARN_FREE_GB``, else ok.
    """
    while not path.exists():
        path = path.parent
    free_gb = shutil.disk_usage(path).free / 1e9
    status: Status = "fail" if free_gb < MIN_FREE_GB else ("warn" if free_gb < WARN_FREE_GB else "ok")
    fix = (None if status == "ok" else f"free space or choose another --store: the main job needs "
           f"{MIN_FREE_GB:.0f} GB, real datasets far more (warning under {WARN_FREE_GB:.0f} GB)")
    return Check("free disk", status, f"{free_gb:.1f} GB free at {path}", fix, status == "fail")


# -- all of it --------------------------------------------------------------------------------------------------


def _guarded(name: str, blocks: bool, fn: Callable[..., list[Check]], *args: Any) -> list[Check]:
    """Run one check group; an unexpected exception becomes a failed check instead of ending the doctor."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 -- the doctor reports every failure rather than stopping at one
        return [Check(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}",
                      "make install (reinstalls the pinned set)", blocks)]


def resolve_api_url(api_url: str | None = None) -> str:
    """The Prefect API to talk to: ``api_url``, else ``PREFECT_API_URL``, else the local default."""
    return api_url or os.environ.get("PREFECT_API_URL") or DEFAULT_API


def run_checks(api_url: str | None, storage_root: str, pools: tuple[str, ...] = POOLS) -> list[Check]:
    """Every check, in the order a new user should read them.

    Args:
        api_url: Prefect API (default: ``PREFECT_API_URL``, else http://127.0.0.1:4200/api).
        storage_root: where targets go (folder or fsspec URL).
        pools: work pools the deployments use.

    Returns:
        All checks: packages, Prefect server/database/pools, CUDA, CPU training, teachers, weights, storage.
    """
    api = resolve_api_url(api_url)
    return [*_guarded("packages", True, check_packages),
            *_guarded("Prefect server", False, check_prefect, api, pools),
            *_guarded("CUDA", False, check_cuda),
            *_guarded("CPU training", False, check_cpu_training),
            *_guarded("teachers", True, check_teachers),
            *_guarded("weights", False, check_weights),
            *_guarded("storage root", True, check_storage, storage_root)]


def main_job_blocked(checks: list[Check]) -> bool:
    """True when any check failed in a way that stops ``make demo``.

    Args:
        checks: the result of :func:`run_checks`.
    """
    return any(c.status == "fail" and c.blocks_main_job for c in checks)
