"""What ``ghnerf lineage`` shows: the chain from an evaluation report, a checkpoint, a target or a shard back to its
input images and the teacher's weights, as a rich tree or a dict (for ``--json``). Errors are
:class:`~ghnerf.base.errors.GHNeRFError` with one line each; the command prints them."""

import json
from pathlib import Path

from rich.tree import Tree

from ghnerf.base.errors import GHNeRFError
from ghnerf.base.fileio import file_sha256

IMAGES_SHOWN = 4  # input images listed in a target's tree (the rest: --json)


def target_tree(ref: str, info: dict) -> Tree:
    """A target or shard (``storage.lineage.resolve``'s ``info``): shard, teacher, dataset and input files."""
    tree = Tree(f"[bold]{info['kind']}[/] {ref}")
    if "target" in info:
        t = info["target"]
        tree.add(f"target {t['subject']}/{t['frame_id']}/{t['camera']} {t['kind']} "
                 f"(image sha256 {t['image_sha256'][:16]}..)")
    sh = info["shard"]
    node = tree.add(f"shard {sh['path']} sha256 {sh['sha256'][:16]}.. rows {sh['rows']} "
                    f"created {sh['created_at']} flow-run {sh['flow_run_id']} code {sh['code_version'][:12]}")
    te = info["teacher"]
    node.add(f"teacher {te['name']} {te['version']} weights sha256 {te['weights_sha256'][:16]}.. "
             f"config {te['config_hash']} {te['config']}")
    ds = info["dataset"]
    inp = node.add(f"dataset {ds['id']} ({ds['layout']}) {ds['root']} subject {ds['subject']} frames "
                   f"{ds['frame_ids'][0]}-{ds['frame_ids'][-1]}: {len(info['inputs'])} input files")
    images = [i for i in info["inputs"] if i["path"].lower().endswith((".jpg", ".jpeg", ".png", ".npz"))]
    others = [i for i in info["inputs"] if i not in images]
    for item in others + images[:IMAGES_SHOWN]:
        inp.add(f"{item['path']} sha256 {item['sha256'][:16]}..")
    if len(images) > IMAGES_SHOWN:
        inp.add(f"... {len(images) - IMAGES_SHOWN} more images/masks (use --json)")
    return tree


def report_head(path: Path) -> tuple[Path, dict, Tree]:
    """An evaluation report's checkpoint (checked unchanged since the report), its summary and its tree root.

    Raises:
        GHNeRFError: not a report of ``ghnerf evaluate``, its checkpoint missing or changed.
    """
    try:
        report = json.loads(path.read_text())
        ck_path = Path(report["checkpoint"])
    except (OSError, ValueError, KeyError) as exc:
        raise GHNeRFError(f"{path}: not an evaluation report written by `ghnerf evaluate` ({exc})") from None
    if not ck_path.is_file():
        raise GHNeRFError(f"{path} names checkpoint {ck_path}, which is missing")
    if report.get("checkpoint_sha256") and file_sha256(ck_path) != report["checkpoint_sha256"]:
        raise GHNeRFError(f"{ck_path} changed since {path} was written (sha256 differs): the report no longer "
                          "describes this file; re-run `ghnerf evaluate`")
    metrics = report.get("metrics", {})
    head = {"report": str(path), "split": report.get("split"), "views": report.get("views"),
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))}}
    tree = Tree(f"[bold]report[/] {path}: {report.get('config')} on {report.get('views')} {report.get('split')} views, "
                f"PCK {metrics.get('pck')} PSNR {metrics.get('psnr')}")
    return ck_path, head, tree


def checkpoint_info(path: Path, storage_options: dict | None = None) -> tuple[dict, list[str]]:
    """A checkpoint's lineage (its shards resolved in their stores) and the warnings about damaged catalogs.

    Raises:
        GHNeRFError: the checkpoint or a shard's store cannot be read.
    """
    from ghnerf.student.checkpoints import load_checkpoint
    from storage.lineage import lineage_warnings, resolve

    ck = load_checkpoint(path)
    shards = [resolve(s["store"], s["shard_path"], storage_options) for s in ck["meta"]["shards"]]
    warnings = sorted({d for sh in shards for d in sh.get("damaged_catalog_entries", []) + lineage_warnings(sh)})
    info = {"checkpoint": str(path), "step": ck["step"], "config": ck["student_config"].name,
            "code_version": ck["code_version"], "dataset": ck["meta"]["dataset"],
            "pretrained_weights": ck["meta"]["pretrained_weights"], "init_from": ck["meta"].get("init_from"),
            "imported_from": ck["meta"].get("imported_from"),
            "perceptual_loss": ck["meta"].get("perceptual_loss", "not recorded (older checkpoint)"),
            "shards": shards}
    return info, warnings


def checkpoint_tree(info: dict, parent: Tree | None = None) -> Tree:
    """:func:`checkpoint_info` as a tree (under ``parent``, a report's root, when given); returns the root."""
    label = f"[bold]checkpoint[/] {info['checkpoint']} step {info['step']} config {info['config']} " \
            f"code {info['code_version'][:12]}"
    tree = parent.add(label) if parent is not None else Tree(label)
    if info["init_from"]:
        tree.add(f"fine-tuned from {info['init_from']}")
    if info["imported_from"]:
        src = info["imported_from"]
        tree.add(f"imported from {src['format']} checkpoint {src['file']} sha256 {src['sha256'][:16]}.. "
                 f"(epoch {src['epoch']})")
    tree.add(f"encoder weights: {info['pretrained_weights']}")
    tree.add(f"perceptual loss: {info['perceptual_loss']}")
    shards = info["shards"]
    node = tree.add(f"dataset {info['dataset']}: targets from {len(shards)} shard(s)"
                    + ("" if shards else " (heatmaps drawn from the dataset's own 2D joints)"))
    for sh in shards:
        n = node.add(f"shard {sh['shard']['path']} sha256 {sh['shard']['sha256'][:16]}..")
        n.add(f"teacher {sh['teacher']['name']} {sh['teacher']['version']} weights sha256 "
              f"{sh['teacher']['weights_sha256'][:16]}..; {len(sh['inputs'])} input files hashed")
    return parent if parent is not None else tree
