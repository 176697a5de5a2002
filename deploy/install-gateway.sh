#!/usr/bin/env bash
# Install or upgrade the Steward edge agent on a gateway (Raspberry Pi OS bookworm, arm64 or armhf).
#
#   sudo deploy/install-gateway.sh                          # from this clone or unpacked release
#   sudo deploy/install-gateway.sh --from steward_iot-0.2.0-py3-none-any.whl   # an upgrade
#   sudo deploy/install-gateway.sh --rollback               # back to the release before
#
# Each install is a release: a new virtual environment under PREFIX/releases/, never the system
# Python. PREFIX/venv is a symlink to the running release; it is switched only after the new
# release has validated the gateway's own configuration (`edge-agent check`), and switched back
# when the service does not come up on the new release. The configuration (ETC) is installed from
# the example only when there is none: an upgrade never overwrites it. The state directory (the
# outbox, dead letters and rule state) belongs to the service and is never touched, so an upgrade
# or a rollback loses nothing. The last KEEP releases are kept.
#
# Logs go to journald (the unit writes to stdout); a drop-in caps the journal on the SD card.
# After an install, `edge-agent doctor` checks ports, brokers, clock and disk: it is the first step
# of every troubleshooting page (docs/edge-agent.md).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
from="$(dirname "$here")"
prefix=/opt/steward
etc=/etc/steward
state=/var/lib/steward
unit_dir=/etc/systemd/system
user=steward
keep=3
systemd=1
apt=1
create_user=1
udev=0
rollback=0
python=python3

usage() {
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  cat <<EOF

Options:
  --from PATH     a steward-iot wheel or source directory (default: $from)
  --prefix DIR    releases and the venv symlink (default: $prefix)
  --etc DIR       configuration directory (default: $etc)
  --state DIR     the service's state directory, never written here (default: $state)
  --unit-dir DIR  where the systemd unit goes (default: $unit_dir)
  --user NAME     the service's system user (default: $user)
  --python PY     the interpreter the release venv is made with (default: $python, 3.11+)
  --keep N        releases to keep (default: $keep)
  --udev          also install deploy/99-steward-serial.rules (edit it first)
  --no-systemd    install files only: no systemctl, no restart (an image built offline)
  --no-apt        do not apt-get the system packages (already installed)
  --no-user       do not create the system user (it exists, or files only)
  --rollback      switch back to the release before the running one and restart
EOF
}

say() { printf '%s\n' "install-gateway: $*"; }
die() { printf '%s\n' "install-gateway: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --from) from=${2:?--from needs a path}; shift 2 ;;
    --prefix) prefix=${2:?}; shift 2 ;;
    --etc) etc=${2:?}; shift 2 ;;
    --state) state=${2:?}; shift 2 ;;
    --unit-dir) unit_dir=${2:?}; shift 2 ;;
    --user) user=${2:?}; shift 2 ;;
    --python) python=${2:?}; shift 2 ;;
    --keep) keep=${2:?}; shift 2 ;;
    --udev) udev=1; shift ;;
    --no-systemd) systemd=0; shift ;;
    --no-apt) apt=0; shift ;;
    --no-user) create_user=0; shift ;;
    --rollback) rollback=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
case "$keep" in ''|*[!0-9]*|0|1) die "--keep must be a whole number of at least 2, not '$keep'" ;; esac

config="$etc/edge.yaml"
venv="$prefix/venv"

restart_and_verify() {
  # Restart on the release $venv points to; 0 when the service is active after it.
  [ "$systemd" -eq 1 ] || return 0
  systemctl daemon-reload
  systemctl enable edge-agent.service >/dev/null
  systemctl restart edge-agent.service || return 1
  for _ in $(seq 1 30); do
    systemctl is-active --quiet edge-agent.service && return 0
    sleep 1
  done
  return 1
}

switch_to() {
  # Point $venv at release $1 atomically (a new symlink renamed over the old one).
  ln -sfn "$1" "$venv.new"
  mv -T "$venv.new" "$venv"
}

if [ "$rollback" -eq 1 ]; then
  [ -L "$venv" ] || die "no release is installed under $prefix"
  current=$(readlink "$venv")
  previous=$(find "$prefix/releases" -mindepth 1 -maxdepth 1 -type d | sort | grep -v -x -F "$current" | tail -n 1 || true)
  [ -n "$previous" ] || die "no release before $current to roll back to"
  "$previous/bin/edge-agent" check --config "$config" >/dev/null \
    || die "the release before ($previous) refuses $config; not rolled back"
  switch_to "$previous"
  restart_and_verify || die "the service did not come up on $previous: see journalctl -u edge-agent"
  say "rolled back to $previous"
  exit 0
fi

# --- the machine --------------------------------------------------------------------------------
arch=$(uname -m)
system_packages=(python3-venv python3-pip mosquitto)
venv_flags=()
if [ "$arch" = armv7l ] || [ "$arch" = armv6l ]; then
  # PyPI has no armhf wheels of numpy and PyYAML: take Debian's builds instead of compiling them
  # on the Pi (pip on Raspberry Pi OS also finds piwheels.org's).
  system_packages+=(python3-numpy python3-yaml)
  venv_flags+=(--system-site-packages)
fi
if [ "$apt" -eq 1 ]; then
  [ "$(id -u)" -eq 0 ] || die "run as root (sudo) to apt-get ${system_packages[*]}, or pass --no-apt"
  say "system packages: ${system_packages[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${system_packages[@]}" >/dev/null
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$python is older than Python 3.11 (Raspberry Pi OS bookworm has 3.11)"
"$python" -m pip --version >/dev/null 2>&1 || die "$python has no pip: apt-get install python3-pip"
if [ "$create_user" -eq 1 ] && ! id -u "$user" >/dev/null 2>&1; then
  say "system user $user (groups: dialout)"
  useradd --system --home-dir "$state" --shell /usr/sbin/nologin --groups dialout "$user"
fi

# --- the release --------------------------------------------------------------------------------
if [ -f "$from" ]; then
  package="$from[edge]"
elif [ -f "$from/pyproject.toml" ]; then
  package="$from[edge]"
else
  die "--from $from is neither a wheel nor a source directory"
fi
release="$prefix/releases/$(date -u +%Y%m%dT%H%M%SZ)"
[ -e "$release" ] && release="$release-$$"
say "release $release ($arch)"
mkdir -p "$prefix/releases"
# The release gets no pip of its own: the system's installs into it (pip --python).
"$python" -m venv --without-pip "${venv_flags[@]}" "$release"
if ! "$python" -m pip --python "$release/bin/python" install --quiet --disable-pip-version-check \
  "$package"; then
  rm -rf "$release"
  die "pip could not install $package; the running release is unchanged"
fi
version=$("$release/bin/python" -c 'from importlib.metadata import version; print(version("steward-iot"))')
say "steward-iot $version installed"

# --- configuration: installed once, never overwritten --------------------------------------------
install -d -m 0750 "$etc"
if [ ! -e "$config" ]; then
  install -m 0640 "$here/edge.example.yaml" "$config"
  say "installed the example configuration $config: edit it for this gateway"
fi
if [ ! -e "$etc/rules" ]; then
  cp -r "$here/rules" "$etc/rules"
fi
if [ "$create_user" -eq 1 ] || id -u "$user" >/dev/null 2>&1; then
  chgrp -R "$user" "$etc" 2>/dev/null || true
fi

# The new release must accept this gateway's own configuration before it runs it.
if ! check_output=$("$release/bin/edge-agent" check --config "$config" 2>&1); then
  printf '%s\n' "$check_output" >&2
  rm -rf "$release"
  die "steward-iot $version refuses $config (above); the running release is unchanged"
fi

# --- the service --------------------------------------------------------------------------------
mkdir -p "$unit_dir"
# The unit names the default paths; an install elsewhere gets them rewritten.
sed -e "s#/opt/steward/#$prefix/#g" -e "s#/etc/steward/#$etc/#g" "$here/edge-agent.service" \
  >"$unit_dir/edge-agent.service.new"
chmod 0644 "$unit_dir/edge-agent.service.new"
mv "$unit_dir/edge-agent.service.new" "$unit_dir/edge-agent.service"
if [ "$systemd" -eq 1 ]; then
  install -d -m 0755 /etc/systemd/journald.conf.d
  install -m 0644 "$here/journald-steward.conf" /etc/systemd/journald.conf.d/steward.conf
  systemctl restart systemd-journald
fi
if [ "$udev" -eq 1 ]; then
  install -m 0644 "$here/99-steward-serial.rules" /etc/udev/rules.d/99-steward-serial.rules
  [ "$systemd" -eq 0 ] || { udevadm control --reload && udevadm trigger --subsystem-match=tty; }
fi

previous=$(readlink "$venv" 2>/dev/null || true)
switch_to "$release"
if ! restart_and_verify; then
  if [ -n "$previous" ] && [ -d "$previous" ]; then
    switch_to "$previous"
    restart_and_verify || true
    die "the service did not come up on $release; back on $previous (journalctl -u edge-agent)"
  fi
  die "the service did not come up on $release (journalctl -u edge-agent)"
fi

# --- old releases -------------------------------------------------------------------------------
find "$prefix/releases" -mindepth 1 -maxdepth 1 -type d | sort | head -n "-$keep" | while read -r old; do
  [ "$old" = "$release" ] || [ "$old" = "$previous" ] || rm -rf "$old"
done

say "steward-iot $version is running from $release (state in $state is kept)"
if [ "$systemd" -eq 1 ]; then
  "$venv/bin/edge-agent" doctor --config "$config" || say "doctor reports a problem above: see docs/edge-agent.md"
fi
