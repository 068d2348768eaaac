"""python -m relayshop_devtools.generate [--check | --list] [--root DIR]  (make generate)"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import leftovers, outputs, stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make generate", description="Write the files derived from the service catalogue."
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is out of date"
    )
    mode.add_argument("--list", action="store_true", help="print the files it writes, one a line")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.list:
        print(*(path.relative_to(root) for path in outputs(root)), sep="\n")
        return 0
    if args.check:
        out_of_date = stale(root)
        for path in out_of_date:
            print(f"out of date: {path.relative_to(root)}", file=sys.stderr)
        if out_of_date:
            print("run: make generate", file=sys.stderr)
        return 1 if out_of_date else 0
    for path, text in outputs(root).items():
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(root)}")
    for path in leftovers(root):
        path.unlink()
        print(f"removed {path.relative_to(root)} (its service is no longer in the catalogue)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
