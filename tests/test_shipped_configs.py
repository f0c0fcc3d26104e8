"""Every config the project ships loads: its `_base_` chain resolves and, where it names a `_schema_`, it passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p for pattern in ("apps/*/config/*.yaml", "core/*/config/*.yaml") for p in ROOT.glob(pattern))


def test_the_configs_are_found() -> None:
    assert len(SHIPPED) > 20 and any(p.name == "spider.yaml" for p in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_shipped_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert len(cfg) > 0
