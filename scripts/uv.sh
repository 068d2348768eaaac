#!/bin/sh
# Print the path of a uv binary, installing uv first if this machine has none.
# uv comes from PyPI into var/tools (a private venv), so it works on a Python marked
# "externally managed" (PEP 668) and needs nothing but python3 >= 3.11.
set -eu
if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
tools="$(pwd)/var/tools"
if [ ! -x "$tools/bin/uv" ]; then
  echo "installing uv into $tools" >&2
  if python3 -m venv "$tools" >/dev/null 2>&1; then
    "$tools/bin/python" -m pip install --quiet --disable-pip-version-check uv >&2
  else
    # No venv module (Debian without python3-venv): install uv for this user instead.
    rm -rf "$tools"
    python3 -m pip install --quiet --user --break-system-packages uv >&2
    mkdir -p "$tools/bin"
    ln -sf "$(python3 -c 'import site; print(site.USER_BASE)')/bin/uv" "$tools/bin/uv"
  fi
fi
echo "$tools/bin/uv"
