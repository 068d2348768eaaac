"""Generated regions inside hand-written files.

A file that is mostly written by hand (docker-compose.yml, a Kubernetes manifest, a shell script)
holds the parts that list the services between two marker comments:

    # >>> make generate: gateway-urls
    ...one block per service, written by `make generate`...
    # <<< make generate: gateway-urls

`fill` replaces what lies between each pair with the lines a generator wrote for it and keeps
the markers, so the rest of the file, comments included, stays the author's. Edits inside a
region are overwritten; the test of the generated files says so when they drift.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

BEGIN = ">>> make generate:"
END = "<<< make generate:"


class RegionError(ValueError):
    """A region is missing, unclosed, or has no body to go in it."""


def _marker(kind: str, name: str) -> re.Pattern[str]:
    return re.compile(rf"^[ \t]*#[ \t]*{re.escape(kind)}[ \t]*{re.escape(name)}[ \t]*$", re.M)


def names(text: str) -> list[str]:
    """The regions a file holds, in order."""
    return re.findall(rf"^[ \t]*#[ \t]*{re.escape(BEGIN)}[ \t]*([\w.-]+)[ \t]*$", text, re.M)


def fill(text: str, bodies: Mapping[str, str], where: str) -> str:
    """``text`` with each region's lines replaced by ``bodies[name]`` (whole lines, each ending
    in a newline, already indented). Every region in the file needs a body, and every body a
    region: a renamed marker fails loudly instead of silently keeping stale lines."""
    found = names(text)
    if sorted(found) != sorted(bodies) or len(set(found)) != len(found):
        raise RegionError(f"{where}: regions {found} in the file, but bodies for {sorted(bodies)}")
    for name, body in bodies.items():
        begin = _marker(BEGIN, name).search(text)
        end = _marker(END, name).search(text, begin.end()) if begin else None
        if begin is None or end is None:
            raise RegionError(f"{where}: region {name!r} is not closed by '# {END} {name}'")
        if body and not body.endswith("\n"):
            body += "\n"
        text = text[: begin.end() + 1] + body + text[end.start() :]
    return text
