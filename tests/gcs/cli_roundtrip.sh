#!/usr/bin/env bash
# The gcs adapter through the amber CLI against the strict GCS test server
# (tests/gcs/gcs_test_server.py: written from the spec, NOT real GCS), in
# service-account mode (JWT -> token, JSON resumable upload, 256 KiB chunks) and HMAC
# mode (XML multipart, 5 MiB parts): create, list, restore, a signed GET URL fetched with
# plain curl, delete; then the same create/restore with faults injected (a chunk only
# partly stored, a 503, a dropped connection, a dropped download) and a lost session.
# Results are checked independently: the server's stored bytes, sha256sum, tar, curl.
# TAP output; exits 1 on any failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/gcs_server.sh"
AMBER=${AMBER_BIN:?run through ctest}
ADIR=${AMBER_ADAPTER_DIR:?}
TOOL=${AMBER_ADAPTER_TOOL:?}
SO=${AMBER_GCS_ADAPTER:?}

work=$(mktemp -d "${TMPDIR:-/tmp}/amber-gcscli-XXXXXX")
GCS_EXTRA_CLEANUP='rm -rf "$work"'
gcs_server_start

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
no() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else no "$what"; fi; }

chmod go-w "$SO"
printf '%s' "$GCS_HMAC_SECRET" >"$work/hmac_secret"
echo '{"type":"service_account","client_email":"x@y","private_key":"not a key"}' >"$work/badkey.json"
cat >"$work/amber.toml" <<TOML
[adapters.gcs]
type = "gcs"
endpoint = "$GCS_ENDPOINT"
bucket = "amber-test"
credentials_file = "$GCS_KEY"
prefix = "nodes/ü/"
chunk_size = "256KiB"

[adapters.gcshmac]
type = "gcs"
endpoint = "$GCS_ENDPOINT"
bucket = "amber-test"
hmac_access_id = "$GCS_HMAC_ID"
hmac_secret_file = "$work/hmac_secret"
prefix = "hmac/"
part_size = "5MiB"
TOML
cat >"$work/bad.toml" <<TOML
[adapters.badkey]
type = "gcs"
endpoint = "$GCS_ENDPOINT"
bucket = "amber-test"
credentials_file = "$work/badkey.json"
TOML
amber() { "$AMBER" --config "$work/amber.toml" --adapter-dir "$ADIR" "$@"; }
faults() { curl -s -o /dev/null -X POST --data "$1" "$GCS_ENDPOINT/__control/faults"; }
SERVER=0a0b0c0d-0000-4000-8000-000000000001
B1=11111111-2222-4333-8444-555555555555
B2=11111111-2222-4333-8444-666666666666
B3=11111111-2222-4333-8444-777777777777

# ~6 MiB that gzip cannot shrink: 24+ chunks of 256 KiB, two 5 MiB parts.
mkdir -p "$work/server/world/region" "$work/server/plugins/Ünïcødé 日本"
head -c $((6 * 1024 * 1024)) /dev/urandom >"$work/server/world/region/r.0.0.mca"
echo "motd=hello" >"$work/server/server.properties"
echo "plugin" >"$work/server/plugins/Ünïcødé 日本/config ✓.yml"

stored() { # stored NAME -> path of the server's copy of object NAME
  local enc; enc=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1")
  echo "$GCS_DIR/data/objects/amber-test/$enc"
}

for inst in gcs gcshmac; do
  if [ $inst = gcs ]; then pfx="nodes/ü/"; mode="service account, JSON resumable"; else pfx="hmac/"; mode="HMAC, XML multipart"; fi
  out=$(amber backup create --adapter $inst --server "$SERVER" --uuid "$B1" --json "$work/server" 2>"$work/err")
  rc=$?
  check "[$mode] backup create exits 0" test $rc = 0
  [ $rc = 0 ] || cat "$work/err"
  sha=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])' 2>/dev/null)
  obj=$(stored "$pfx$SERVER/$B1.tar.gz")
  check "[$mode] the server stored prefix + <server>/<uuid>.tar.gz with the sha256 amber reported" \
    test "$(sha256sum <"$obj" 2>/dev/null | cut -d' ' -f1)" = "$sha"
  check "[$mode] tar lists the stored archive, unicode names included" \
    bash -c "tar -tzf '$obj' | grep -q 'plugins/Ünïcødé 日本/config ✓.yml'"
  if [ $inst = gcs ]; then
    chunks=$(grep -c '"content_range": "bytes [0-9]*-[0-9]*/\*"' "$GCS_LOG" || true)
    check "[$mode] the upload went in several 256 KiB chunks ($chunks non-final chunk PUTs)" test "$chunks" -ge 10
  else
    parts=$(grep -c 'partNumber' "$GCS_LOG" || true)
    check "[$mode] the upload went as a multipart upload ($parts part requests)" test "$parts" -ge 2
  fi
  list=$(amber backup list --adapter $inst --server "$SERVER" 2>&1)
  if [ $inst = gcs ]; then
    check "[$mode] backup list shows the backup" grep -q "$B1" <<<"$list"
  fi
  rm -rf "$work/restored"; mkdir "$work/restored"
  amber backup restore --adapter $inst --server "$SERVER" --uuid "$B1" "$work/restored" >/dev/null 2>"$work/err"
  check "[$mode] backup restore exits 0" test $? = 0
  check "[$mode] the restored tree equals the original" \
    cmp "$work/server/world/region/r.0.0.mca" "$work/restored/world/region/r.0.0.mca"
  url=$("$TOOL" "$work/amber.toml" $inst "$SO" presign "$SERVER/$B1.tar.gz" 600)
  code=$(curl -s -o "$work/signed.tar.gz" -w '%{http_code}' "$url")
  check "[$mode] a V4 signed GET URL downloads with plain curl (HTTP $code), same bytes" \
    cmp "$work/signed.tar.gz" "$obj"
  code=$(curl -s -o /dev/null -w '%{http_code}' "${url/$B1/$B2}")
  check "[$mode] a tampered signed URL (other object) is refused: HTTP $code" test "$code" = 403
  amber backup delete --adapter $inst --server "$SERVER" --uuid "$B1" >/dev/null 2>"$work/err"
  check "[$mode] backup delete exits 0" test $? = 0
  check "[$mode] the object is gone from the server" test ! -e "$obj"
done

# Faults on the resumable upload: chunk 2 only partly stored (308 with a smaller Range),
# chunk 4 answered 503, chunk 6 dropped mid-body; the download dropped mid-body once.
faults '[{"op":"chunk","n":2,"action":"partial","keep":131072},{"op":"chunk","n":4,"action":"503"},{"op":"chunk","n":6,"action":"drop","keep":0},{"op":"get","n":1,"action":"drop_mid"}]'
out=$(amber backup create --adapter gcs --server "$SERVER" --uuid "$B2" --json "$work/server" 2>"$work/err")
rc=$?
check "[faults] backup create survives a partial chunk, a 503 and a dropped connection" test $rc = 0
[ $rc = 0 ] || cat "$work/err"
sha=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])' 2>/dev/null)
obj=$(stored "nodes/ü/$SERVER/$B2.tar.gz")
check "[faults] the stored object has the sha256 amber reported" \
  test "$(sha256sum <"$obj" 2>/dev/null | cut -d' ' -f1)" = "$sha"
nf=$(grep -c '"fault": {' "$GCS_LOG" || true)
check "[faults] the server logged injected faults as applied ($nf; a connection dropped without an answer may go unlogged)" test "$nf" -ge 3
check "[faults] the adapter queried the session status after the failures" \
  grep -q '"content_range": "bytes \*/\*"' "$GCS_LOG"
rm -rf "$work/restored"; mkdir "$work/restored"
amber backup restore --adapter gcs --server "$SERVER" --uuid "$B2" "$work/restored" >/dev/null 2>"$work/err"
check "[faults] restore survives a dropped download (resumed with Range) and is byte-identical" \
  cmp "$work/server/world/region/r.0.0.mca" "$work/restored/world/region/r.0.0.mca"

# A lost session (404 on a chunk): the backup fails cleanly, nothing appears.
faults '[{"op":"chunk","n":3,"action":"lost"}]'
amber backup create --adapter gcs --server "$SERVER" --uuid "$B3" "$work/server" >/dev/null 2>"$work/err"
rc=$?
check "[faults] a lost upload session fails the backup (exit $rc): $(head -c 200 "$work/err" | tr '\n' ' ')" test $rc != 0
check "[faults] and leaves no object behind" test ! -e "$(stored "nodes/ü/$SERVER/$B3.tar.gz")"
faults '[]'

# A bad key file: a clear error naming the instance, at start-up, no crash.
msg=$("$AMBER" --config "$work/bad.toml" --adapter-dir "$ADIR" backup list --adapter badkey --server "$SERVER" 2>&1)
rc=$?
check "a bad key file is refused with a message naming the instance (exit $rc): $(head -c 200 <<<"$msg" | tr '\n' ' ')" \
  bash -c "[ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -q badkey <<<\"\$1\" && grep -qi 'private_key' <<<\"\$1\"" _ "$msg"

echo "1..$n"
[ $failed = 0 ]
