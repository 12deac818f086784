"""Where the models, the training questions and the evaluation questions live; loading the models (and
loading them again when their files change), installing a new model and rolling back to the previous one."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.understanding.model import ModelError, TopicModel, read_arrays

logger = logging.getLogger(__name__)

# what tells a model file apart from the one it replaced: (st_mtime_ns, st_size, st_ino)
Identity = tuple[int, int, int]


def model_path(content_dir: Path, registry: str) -> Path:
    """The shipped model of ``registry`` (``models/<registry>.npz``)."""
    return content_dir / "models" / f"{registry}.npz"


def previous_path(content_dir: Path, registry: str) -> Path:
    """The model the current one replaced (``models/<registry>.previous.npz``), for ``kb rollback``."""
    return content_dir / "models" / f"{registry}.previous.npz"


def training_files(content_dir: Path) -> list[Path]:
    """The question files the models learn from (``training/*.jsonl``)."""
    return sorted((content_dir / "training").glob("*.jsonl"))


def evaluation_files(content_dir: Path) -> list[Path]:
    """The held-out question files (``eval/*.jsonl``): never trained on."""
    return sorted((content_dir / "eval").glob("*.jsonl"))


def _identity(path: Path) -> Identity | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


# the last model read from each file, shared by every store of the process (an app per test, a bench)
_loaded: dict[Path, tuple[Identity, TopicModel]] = {}


def _load(path: Path, identity: Identity) -> TopicModel:
    known = _loaded.get(path)
    if known is not None and known[0] == identity:
        return known[1]
    model = _read(path)
    _loaded[path] = identity, model
    return model


COPIES = ".cache"  # under models/: an uncompressed copy of each model file read, for the next process


def copy_path(path: Path) -> Path | None:
    """Where the uncompressed copy of the model file ``path`` is kept (None when ``path`` is no zip file).

    The copy is named after what the file holds (each array's CRC-32 and size, which the zip file lists
    without being decompressed), so a model file replaced in any way never reads an old copy.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = sorted((info.filename, info.CRC, info.file_size) for info in archive.infolist())
    except (OSError, zipfile.BadZipFile):
        return None
    digest = hashlib.sha256(repr(members).encode()).hexdigest()[:16]
    return path.parent / COPIES / f"{path.stem}.{digest}.npz"


def _read(path: Path) -> TopicModel:
    """The model in ``path``, read from its uncompressed copy when there is one (a compressed file takes
    most of a model's loading time to inflate); otherwise from the file, keeping a copy for next time."""
    copy = copy_path(path)
    if copy is not None and copy.is_file():
        try:
            return TopicModel.load(copy)
        except (ModelError, zipfile.BadZipFile) as error:
            logger.warning("%s; reading %s itself", error, path)
    arrays = read_arrays(path)
    model = TopicModel.of(arrays, source=path)
    if copy is not None:
        _keep_copy(arrays, copy, path.stem)
    return model


def _keep_copy(arrays: dict[str, Any], copy: Path, stem: str) -> None:
    """Write ``copy`` (through a temporary file: a reader never sees half of one) and remove the copies of
    the file's earlier versions. A folder that cannot be written to keeps no copy."""
    temporary = copy.with_name(f"{copy.stem}.{os.getpid()}.tmp.npz")
    try:
        copy.parent.mkdir(exist_ok=True)
        ignore = copy.parent / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# made when the models are read (bot/understanding/store.py)\n*\n")
        np.savez(temporary, **arrays)
        os.replace(temporary, copy)
        for older in copy.parent.glob(f"{stem}.{'?' * 16}.npz"):
            if older != copy:
                older.unlink(missing_ok=True)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        logger.info("no uncompressed copy of the model kept in %s: %s", copy.parent, error)


class ModelStore(Mapping[str, TopicModel]):
    """The topic model of each registry that has one, read again when its file changes.

    ``refresh`` (the engine calls it at the start of every turn) costs one ``stat`` per registry; a model
    file replaced by ``kb train`` or ``kb rollback`` is read then, so a running process answers with the
    new model from its next turn on, without a restart. A file that cannot be read leaves the model in use.
    A model file is read from its uncompressed copy under ``models/.cache/`` once there is one (see
    ``copy_path``).
    """

    def __init__(self, content_dir: Path, registries: tuple[str, ...]) -> None:
        self._paths = {registry: model_path(content_dir, registry) for registry in registries}
        self._models: dict[str, TopicModel] = {}
        self._seen: dict[str, Identity | None] = {}
        for registry, path in self._paths.items():
            identity = self._seen[registry] = _identity(path)
            if identity is not None:  # a file that is there but unreadable fails the start-up
                self._models[registry] = _load(path, identity)

    def refresh(self) -> bool:
        """Read again each model whose file changed since it was read; whether any model changed."""
        changed = False
        for registry, path in self._paths.items():
            identity = _identity(path)
            if identity == self._seen[registry]:
                continue
            self._seen[registry] = identity  # a bad file is tried once, not on every turn
            if identity is None:
                logger.warning("%s is gone; the model read before stays in use", path)
                continue
            try:
                self._models[registry] = _load(path, identity)
            except ModelError as error:
                logger.warning("%s; the model read before stays in use", error)
                continue
            logger.info("%s read again: %s", path, self._models[registry].inputs_hash[:12])
            changed = True
        return changed

    def __getitem__(self, registry: str) -> TopicModel:
        return self._models[registry]

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)


def load_models(content_dir: Path, registries: tuple[str, ...]) -> ModelStore:
    """The models of ``registries`` (a ``ModelStore``), for tools that read them once."""
    return ModelStore(content_dir, registries)


def install(arrays: Mapping[str, npt.NDArray[Any]], content_dir: Path, registry: str) -> bool:
    """Make ``arrays`` the model of ``registry``; the model it replaces is kept as the previous one.
    Every file is written under a temporary name and renamed, so a reader never sees half a file and
    ``models/<registry>.npz`` always exists. Whether a model was replaced (and kept)."""
    current, previous = model_path(content_dir, registry), previous_path(content_dir, registry)
    current.parent.mkdir(parents=True, exist_ok=True)
    fresh = current.with_name(f"{registry}.new.tmp.npz")
    np.savez_compressed(fresh, **arrays)  # type: ignore[arg-type]
    replaced = current.is_file()
    if replaced:
        _copy(current, previous)
    os.replace(fresh, current)
    return replaced


def rollback(content_dir: Path, registry: str) -> bool:
    """Swap the current and the previous model of ``registry`` (twice puts them back); False when there
    is no previous model."""
    current, previous = model_path(content_dir, registry), previous_path(content_dir, registry)
    if not previous.is_file() or not current.is_file():
        return False
    back = current.with_name(f"{registry}.back.tmp.npz")
    shutil.copyfile(previous, back)
    _copy(current, previous)
    os.replace(back, current)
    return True


def _copy(source: Path, target: Path) -> None:
    """Copy ``source`` over ``target`` through a temporary file (a new file: its own inode and time)."""
    temporary = target.with_name(target.name.removesuffix(".npz") + ".tmp.npz")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)
