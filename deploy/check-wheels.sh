#!/usr/bin/env bash
# Check that every dependency of the edge agent installs on the gateways' CPUs without compiling:
# Raspberry Pi OS bookworm, Python 3.11, arm64 (aarch64) and armhf (armv7l). Run on any machine
# with pip and network access to PyPI, before a release:   deploy/check-wheels.sh
# armhf: PyPI has no numpy or PyYAML wheels; install-gateway.sh takes Debian's python3-numpy and
# python3-yaml there (a venv with --system-site-packages), so they are expected as "from Debian".
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}
deps=$("$python" - "$here/../pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["edge"]))
PY
)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
check() {  # check ARCH DEBIAN_PROVIDED PLATFORM...
  local arch=$1 debian=$2; shift 2
  local platforms=()
  for p in "$@"; do platforms+=(--platform "$p"); done
  while IFS= read -r dep; do
    [ -n "$dep" ] || continue
    name=${dep%%[<>=!~ ;[]*}
    if "$python" -m pip download --quiet --no-deps --only-binary=:all: "${platforms[@]}" \
      --python-version 3.11 --implementation cp -d "$work/$arch" "$dep" >/dev/null 2>&1; then
      printf '%-8s %-24s %s\n' "$arch" "$name" "wheel"
    elif [[ " $debian " == *" $name "* ]]; then
      printf '%-8s %-24s %s\n' "$arch" "$name" "from Debian"
    else
      printf '%-8s %-24s %s\n' "$arch" "$name" "NO WHEEL"
      status=1
    fi
  done <<<"$deps"$'\npydantic-core'
}
check arm64 "" manylinux2014_aarch64 manylinux_2_17_aarch64 manylinux_2_28_aarch64
check armhf "numpy pyyaml" manylinux2014_armv7l manylinux_2_17_armv7l manylinux_2_31_armv7l linux_armv7l
exit "$status"
