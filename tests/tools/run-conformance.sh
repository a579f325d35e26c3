#!/usr/bin/env bash
# run-conformance.sh RUNNER TYPE ADAPTER.so: writes a scratch amber.toml with one
# instance of TYPE and runs the conformance checks against it.
set -euo pipefail
runner=$1 type=$2 file=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/amber-conformance-XXXXXX")
trap 'rm -rf "$work"' EXIT
case $type in
  wings) extra="path = \"$work/store\"" ;;
  s3)
    # A live s3rver (see tests/s3/s3rver.sh); 5MiB parts so the 64 MiB object goes
    # multipart with several parts in flight.
    source "$(dirname "$0")/../s3/s3rver.sh"
    S3_EXTRA_CLEANUP='rm -rf "$work"'
    s3rver_start conformance
    extra="endpoint = \"$S3_ENDPOINT\"
bucket = \"conformance\"
access_key_id = \"S3RVER\"
secret_access_key = \"S3RVER\"
part_size = \"5MiB\"
parallel_parts = 4" ;;
  gcs|gcs-hmac)
    # The strict GCS test server (tests/gcs/gcs_test_server.py, not real GCS). gcs:
    # service-account key -> JWT -> token, JSON resumable upload in 256 KiB chunks;
    # gcs-hmac: HMAC keys, XML multipart upload in 5 MiB parts.
    source "$(dirname "$0")/../gcs/gcs_server.sh"
    GCS_EXTRA_CLEANUP='rm -rf "$work"'
    gcs_server_start
    if [ "$type" = gcs ]; then
      extra="endpoint = \"$GCS_ENDPOINT\"
bucket = \"amber-test\"
credentials_file = \"$GCS_KEY\"
prefix = \"conf/\"
chunk_size = \"256KiB\""
    else
      extra="endpoint = \"$GCS_ENDPOINT\"
bucket = \"amber-test\"
auth = \"hmac\"
hmac_access_id = \"$GCS_HMAC_ID\"
hmac_secret = \"$GCS_HMAC_SECRET\"
part_size = \"5MiB\""
    fi
    type=gcs
    large=${AMBER_GCS_LARGE_MIB:-12} ;;
  *) extra="" ;;
esac
cat >"$work/amber.toml" <<TOML
[adapters.under_test]
type = "$type"
$extra
TOML
# Adapter files must not be group/other-writable; build trees may use umask 002.
chmod go-w "$file"
"$runner" --config "$work/amber.toml" --instance under_test --adapter "$file" --large-mib "${large:-64}"
if [ "$type" = wings ]; then
  # Nothing may be left behind: no temporary or partial files, only empty dirs.
  left=$(find "$work/store" -type f | wc -l)
  if [ "$left" != 0 ]; then
    echo "not ok - files left in the store after the run:"; find "$work/store" -type f
    exit 1
  fi
fi
