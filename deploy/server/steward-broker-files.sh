#!/usr/bin/env bash
# Write the broker's password and ACL files from the database and make Mosquitto reload them.
#
#   sudo /opt/steward/bin/steward-broker-files.sh     # after every `cloud-ingest gateways add`
#
# Runs `cloud-ingest gateways passwd` and `cloud-ingest gateways acl` with the instances' settings
# (cloud.yaml) and secrets (cloud.env, read here as root), each file written atomically with mode
# 0600; gives both to the broker's user (Mosquitto reads them after dropping root) and sends it
# SIGHUP (`systemctl reload mosquitto`): connected clients stay connected, a rotated or removed
# password stops working at the next CONNECT. The ingest's MQTT user is steward-ingest, its
# password the first line of the ingest password file (the same as in STEWARD_MQTT_URL).
set -euo pipefail

cloud_ingest=/opt/steward/venv/bin/cloud-ingest
config=/etc/steward/cloud.yaml
env_file=/etc/steward/cloud.env
dir=/etc/mosquitto/steward
ingest_user=steward-ingest
ingest_password=/etc/steward/mqtt-ingest.password
owner=mosquitto
reload=1

usage() {
  sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  cat <<EOF

Options:
  --cloud-ingest PATH     the command (default: $cloud_ingest)
  --config FILE           settings (default: $config)
  --env FILE              secrets, sourced before running it (default: $env_file)
  --dir DIR               where passwd and acl are written (default: $dir)
  --ingest-user NAME      the ingest's MQTT user (default: $ingest_user)
  --ingest-password FILE  its password, first line (default: $ingest_password)
  --owner USER            the user the broker runs as (default: $owner)
  --no-reload             do not reload Mosquitto
EOF
}

say() { printf '%s\n' "steward-broker-files: $*"; }
die() { printf '%s\n' "steward-broker-files: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --cloud-ingest) cloud_ingest=${2:?}; shift 2 ;;
    --config) config=${2:?}; shift 2 ;;
    --env) env_file=${2:?}; shift 2 ;;
    --dir) dir=${2:?}; shift 2 ;;
    --ingest-user) ingest_user=${2:?}; shift 2 ;;
    --ingest-password) ingest_password=${2:?}; shift 2 ;;
    --owner) owner=${2:?}; shift 2 ;;
    --no-reload) reload=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
[ -r "$ingest_password" ] || die "no ingest password in $ingest_password (its first line is the password)"
[ -d "$dir" ] || die "no directory $dir (install -d -m 0750 -o $owner $dir)"

if [ -r "$env_file" ]; then
  set -a
  # shellcheck disable=SC1090
  . "$env_file"
  set +a
fi
"$cloud_ingest" gateways passwd "$dir/passwd" --config "$config" \
  --ingest-user "$ingest_user" --ingest-password-file "$ingest_password"
"$cloud_ingest" gateways acl "$dir/acl" --config "$config" --ingest-user "$ingest_user"
chown "$owner" "$dir/passwd" "$dir/acl"
say "wrote $dir/passwd and $dir/acl"
if [ "$reload" -eq 1 ]; then
  systemctl reload mosquitto
  say "mosquitto reloaded"
fi
