"""The repository explains itself: every relative link in its Markdown resolves, and nothing in it
points at documents that are not part of it (a fork would inherit dangling references)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Built from pieces, so that this file does not match itself.
OUTSIDE_REFERENCE = re.compile(
    r"\b(?:" + "CONTRACT" + r"|" + "ARCHITECTURE" + r")\.md\b|\b[Ii]ssue #?[0-9]+\b"
)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    files = [ROOT / name for name in listed.split("\0") if name]
    return [path for path in files if path.is_file() and path.suffix not in {".png", ".lock"}]


def markdown_files() -> list[Path]:
    return [path for path in tracked_files() if path.suffix == ".md"]


def test_no_reference_to_documents_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in tracked_files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE_REFERENCE.search(line)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("document", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(document: Path) -> None:
    broken = []
    for target in LINK.findall(document.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL (http:, mailto:) or an anchor in the same page
        path = (document.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{document.relative_to(ROOT)}: {broken}"


def test_the_docs_exist_and_the_readme_links_them() -> None:
    readme = (ROOT / "README.md").read_text()
    for doc in ("docs/architecture.md", "docs/api.md", "docs/console.md"):
        assert (ROOT / doc).is_file()
        assert f"({doc})" in readme, f"README.md does not link {doc}"
