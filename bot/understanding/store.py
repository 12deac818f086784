"""Where the models, the training questions and the evaluation questions live, and loading the models."""

from __future__ import annotations

import functools
from pathlib import Path

from bot.understanding.model import TopicModel


def model_path(content_dir: Path, registry: str) -> Path:
    """The shipped model of ``registry`` (``models/<registry>.npz``)."""
    return content_dir / "models" / f"{registry}.npz"


def training_files(content_dir: Path) -> list[Path]:
    """The question files the models learn from (``training/*.jsonl``)."""
    return sorted((content_dir / "training").glob("*.jsonl"))


def evaluation_files(content_dir: Path) -> list[Path]:
    """The held-out question files (``eval/*.jsonl``): never trained on."""
    return sorted((content_dir / "eval").glob("*.jsonl"))


@functools.cache
def load_models(content_dir: Path, registries: tuple[str, ...]) -> dict[str, TopicModel]:
    """The shipped model of each registry that has one, loaded once per process."""
    return {
        registry: TopicModel.load(model_path(content_dir, registry))
        for registry in registries
        if model_path(content_dir, registry).is_file()
    }
