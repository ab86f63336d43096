#!/usr/bin/env bash
# Archive one UTC day of borgwatch logs from Loki to S3-compatible storage, before the 30-day retention
# of loki-config.yaml deletes them. Run daily from a systemd timer or cron; it is idempotent (a day that
# is already archived is skipped).
#
#   archive-logs.sh [YYYY-MM-DD]      default: the day ARCHIVE_AGE_DAYS (7) ago, so lines that
#                                     borgwatch's spool replays late are included
# Environment:
#   LOKI_ADDR          Loki base URL for logcli (default http://127.0.0.1:3100)
#   ARCHIVE_BUCKET     target, e.g. s3://backup-logs/loki (required)
#   S3_ENDPOINT        endpoint of the S3-compatible store (MinIO, Ceph RGW, ...); empty for AWS S3
#   ARCHIVE_QUERY      LogQL stream selector (default {app="borgwatch"})
#   ARCHIVE_AGE_DAYS   age of the default day (default 7; must stay below the 30-day retention)
#   ARCHIVE_LIMIT      max lines per day (default 5000000); the script fails if the limit is reached
# Needs: logcli, aws (awscli), gzip, sha256sum, GNU date.
set -euo pipefail

export LOKI_ADDR="${LOKI_ADDR:-http://127.0.0.1:3100}"
: "${ARCHIVE_BUCKET:?set ARCHIVE_BUCKET, e.g. s3://backup-logs/loki}"
query="${ARCHIVE_QUERY:-{app=\"borgwatch\"\}}"
age="${ARCHIVE_AGE_DAYS:-7}"
limit="${ARCHIVE_LIMIT:-5000000}"

if (( age >= 30 )); then
    echo "ARCHIVE_AGE_DAYS=$age: Loki keeps 30 days, that day is already gone" >&2
    exit 2
fi
day="${1:-$(date -u -d "today - ${age} days" +%F)}"
if ! [[ "$day" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || ! date -u -d "$day" >/dev/null 2>&1; then
    echo "invalid day: $day (expected YYYY-MM-DD)" >&2
    exit 2
fi
next="$(date -u -d "$day + 1 day" +%F)"

s3=(aws s3)
[[ -n "${S3_ENDPOINT:-}" ]] && s3+=(--endpoint-url "$S3_ENDPOINT")
key="${ARCHIVE_BUCKET%/}/${day:0:4}/${day:5:2}/borgwatch-${day}.jsonl.gz"

if "${s3[@]}" ls "$key" >/dev/null 2>&1; then
    echo "already archived: $key"
    exit 0
fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
out="$workdir/borgwatch-${day}.jsonl"

logcli query --quiet --output=jsonl --forward \
    --from="${day}T00:00:00Z" --to="${next}T00:00:00Z" \
    --limit="$limit" --batch=5000 "$query" > "$out"

lines="$(wc -l < "$out")"
if (( lines >= limit )); then
    echo "limit of $limit lines reached for $day: raise ARCHIVE_LIMIT, the export would be incomplete" >&2
    exit 1
fi
gzip -9 "$out"
sha256sum "$out.gz" | sed "s#  .*#  borgwatch-${day}.jsonl.gz#" > "$out.gz.sha256"

"${s3[@]}" cp --only-show-errors "$out.gz" "$key"
"${s3[@]}" cp --only-show-errors "$out.gz.sha256" "$key.sha256"
echo "archived $lines lines of $day to $key"
