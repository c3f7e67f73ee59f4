"""Helpers for the deployment tests: paths, the stack file, and deploy/grafana's modules."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def deploy_module(name: str) -> ModuleType:
    """Import a module of deploy/grafana (generate, panels, queries), which is no package."""
    folder = str(DEPLOY / "grafana")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


def load_stack(name: str = "stack.yml") -> dict[str, Any]:
    """Return a stack file as data (anchors and merge keys resolved), config paths absolute."""
    data: dict[str, Any] = yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))
    for config in (data.get("configs") or {}).values():
        config["file"] = str((DEPLOY / config["file"]).resolve())
    return data
