#!/usr/bin/env bash
# Back up the Steward cloud: PostgreSQL, InfluxDB 2 and the configuration, as one set per run.
#
#   steward-backup.sh                       # what steward-backup.timer runs every night
#   steward-backup.sh --keep 30 --dest /srv/backups/steward
#   steward-backup.sh --no-influx           # telemetry stays in PostgreSQL (telemetry_store: sql)
#
# A set is a directory DEST/<UTC time>, e.g. DEST/20261208T033000Z, holding:
#   postgres.dump   pg_dump -Fc of the database: alarms, work orders, registry, users, gateways
#                   (their credential hashes: the broker's password and ACL files are written
#                   from it again), notification channels (their secrets in clear: keep the
#                   backups as private as the secrets; everything here is mode 0600/0700);
#   influx/         `influx backup` of the InfluxDB 2 server (telemetry), with an operator token;
#   files.tar.gz    the configuration: /etc/steward, /etc/mosquitto (settings, secrets, TLS keys);
#   SHA256SUMS      checksums of the above.
# A set is written as DEST/<time>.partial and renamed when complete, so a failed run never counts
# as a backup. Then only the newest KEEP complete sets are kept, and older .partial ones removed.
# Connection settings come from the environment (the timer's unit reads /etc/steward/cloud.env
# and /etc/steward/backup.env): libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD; the influx CLI's
# INFLUX_HOST and INFLUX_TOKEN.
#
# Restore (docs/deploy-server.md, "Restore drill"):
#   sha256sum -c SHA256SUMS                                   # in the set's directory
#   createdb -O steward steward_restore
#   pg_restore --no-owner --role=steward -d steward_restore postgres.dump
#   influx restore --full influx/                            # into an empty InfluxDB 2 server
#   tar -xzf files.tar.gz -C /                               # the configuration, if lost
set -euo pipefail

dest=/var/backups/steward
keep=14
database=${PGDATABASE:-steward}
postgres=1
influx=1
files=(/etc/steward /etc/mosquitto)
files_given=0

usage() {
  sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  cat <<EOF

Options:
  --dest DIR       where the sets go (default: $dest)
  --keep N         complete sets to keep, newest first (default: $keep)
  --database NAME  the PostgreSQL database (default: \$PGDATABASE or steward)
  --files PATH     a file or directory for files.tar.gz; repeat it (default: ${files[*]})
  --no-postgres    no pg_dump
  --no-influx      no influx backup (telemetry_store: sql)
EOF
}

say() { printf '%s\n' "steward-backup: $*"; }
die() { printf '%s\n' "steward-backup: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dest) dest=${2:?--dest needs a directory}; shift 2 ;;
    --keep) keep=${2:?--keep needs a number}; shift 2 ;;
    --database) database=${2:?--database needs a name}; shift 2 ;;
    --files)
      [ "$files_given" -eq 1 ] || files=()
      files_given=1
      files+=("${2:?--files needs a path}"); shift 2 ;;
    --no-postgres) postgres=0; shift ;;
    --no-influx) influx=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
case "$keep" in ''|*[!0-9]*|0) die "--keep must be a whole number of at least 1, not '$keep'" ;; esac
[ "$postgres" -eq 0 ] || command -v pg_dump >/dev/null || die "pg_dump not found (apt-get install postgresql-client)"
[ "$influx" -eq 0 ] || command -v influx >/dev/null || die "influx not found (the influxdb2-cli package)"

umask 077
mkdir -p "$dest"
name=$(date -u +%Y%m%dT%H%M%SZ)
set_dir="$dest/$name"
partial="$set_dir.partial"
[ ! -e "$set_dir" ] || die "$set_dir exists already"
rm -rf "$partial"
mkdir "$partial"

if [ "$postgres" -eq 1 ]; then
  pg_dump --format=custom --compress=6 --file="$partial/postgres.dump" "$database" \
    || die "pg_dump of $database failed; $partial left for inspection"
  say "postgres: $database, $(du -h "$partial/postgres.dump" | cut -f1)"
fi
if [ "$influx" -eq 1 ]; then
  influx backup "$partial/influx" >/dev/null || die "influx backup failed; $partial left for inspection"
  say "influx: $(du -sh "$partial/influx" | cut -f1)"
fi
present=()
for path in "${files[@]}"; do
  case "$path" in /*) ;; *) die "--files needs absolute paths, not '$path'" ;; esac
  if [ -e "$path" ]; then present+=("${path#/}"); else say "skipped $path: not found"; fi
done
if [ "${#present[@]}" -gt 0 ]; then
  tar -czf "$partial/files.tar.gz" -C / "${present[@]}"
  say "files: ${#present[@]} path(s)"
fi
(cd "$partial" && find . -type f ! -name SHA256SUMS -printf '%P\n' | sort | xargs -r -d '\n' sha256sum > SHA256SUMS)
mv -T "$partial" "$set_dir"
say "complete: $set_dir"

# Retention: the newest $keep complete sets stay; older ones and earlier .partial sets go.
mapfile -t sets < <(find "$dest" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
  -regex '.*/[0-9]{8}T[0-9]{6}Z' -printf '%f\n' | sort -r)
for old in "${sets[@]:$keep}"; do
  rm -rf "${dest:?}/$old"
  say "removed $dest/$old (keeping $keep)"
done
find "$dest" -mindepth 1 -maxdepth 1 -type d -name '*.partial' ! -name "$name.partial" \
  -exec rm -rf {} + -exec printf 'steward-backup: removed %s (incomplete)\n' {} \;
