"""`make generate`: the files derived from the service catalogue.

relayshop names its services in one place, the catalogue (relayshop_platform/catalogue.py), and
every file that must list them is written from it: docker-compose.yml's service blocks and
secrets, the Kubernetes manifests, the PostgreSQL init script, .env.example, and uv.lock (each
service folder is a workspace member). Adding a service is its folder plus its catalogue entry,
then `make generate`; `make new-service` does all three. `make run` writes its Procfile from the
catalogue each time it starts (procfile.py), so nothing needs regenerating for it.

Files written by hand keep their comments and structure: only the regions between
``# >>> make generate: <name>`` and ``# <<< make generate: <name>`` are rewritten (regions.py).
Whole files are written only where a service has a file of its own (deploy/k8s/base/<name>.yaml).

    .venv/bin/python -m relayshop_devtools.generate           # write them
    .venv/bin/python -m relayshop_devtools.generate --check   # list what is out of date, exit 1
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from relayshop_platform.catalogue import CATALOGUE, Service

__all__ = ["leftovers", "outputs", "stale"]


def outputs(root: Path, catalogue: Sequence[Service] = CATALOGUE) -> dict[Path, str]:
    """Every generated file under ``root`` with the whole content it should have."""
    from . import compose, env_example, kubernetes

    files: dict[Path, str] = {}
    for module in (compose, kubernetes, env_example):
        files.update(module.outputs(root, tuple(catalogue)))
    return files


def leftovers(root: Path, catalogue: Sequence[Service] = CATALOGUE) -> list[Path]:
    """Files generated for a service that is no longer in the catalogue: to delete."""
    from . import kubernetes

    return kubernetes.leftovers(root, tuple(catalogue))


def stale(root: Path, catalogue: Sequence[Service] = CATALOGUE) -> list[Path]:
    """The generated files whose content on disk is not what the catalogue gives, and the
    leftovers of a service taken out of it."""
    return [
        path
        for path, text in outputs(root, catalogue).items()
        if not path.is_file() or path.read_text() != text
    ] + leftovers(root, catalogue)
