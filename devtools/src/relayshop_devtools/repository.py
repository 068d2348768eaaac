"""The repository this harness is installed from (editable, by `make sync`), and its tools.

The scripts in tools/ are programs, not a package; a test or another tool that needs one of
their functions loads the file by its path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]


def load_tool(name: str) -> ModuleType:
    """tools/<name>.py as a module named relayshop_tool_<name> (so tools/trace.py does not meet
    the standard library's trace), registered in sys.modules, where dataclasses look it up."""
    spec = importlib.util.spec_from_file_location(
        f"relayshop_tool_{name}", ROOT / f"tools/{name}.py"
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"no tool tools/{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
