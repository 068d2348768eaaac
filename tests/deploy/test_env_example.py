""".env.example is generated from the settings classes; this fails when it is out of date."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_matches_the_settings_classes() -> None:
    spec = importlib.util.spec_from_file_location("env_example", ROOT / "tools/env_example.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.build()
    actual = (ROOT / ".env.example").read_text()
    assert actual == expected, "run: .venv/bin/python tools/env_example.py > .env.example"
