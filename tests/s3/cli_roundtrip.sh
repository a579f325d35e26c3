#!/usr/bin/env bash
# The s3 adapter through the amber CLI against a live @20minutes/s3rver, every result
# checked independently: /usr/bin/aws s3api (head-object, get-object), tar, sha256sum,
# plain curl for presigned URLs. TAP output; exits 1 on any failure.
#
# What s3rver cannot check is said in the test names: it does not verify part ETags at
# Complete, and answers 405 to AbortMultipartUpload and ListParts.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/s3rver.sh"
AMBER=${AMBER_BIN:?run through ctest}
ADIR=${AMBER_ADAPTER_DIR:?}
TOOL=${AMBER_S3_TOOL:?}
SO=${AMBER_S3_ADAPTER:?}
AWS=/usr/bin/aws
[ -x "$AWS" ] || { echo "not ok - /usr/bin/aws missing: run scripts/setup (apt awscli)"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/amber-s3cli-XXXXXX")
S3_EXTRA_CLEANUP='rm -rf "$work"'
s3rver_start backups
export HOME=$work AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=eu-west-3
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=""
s3api() { "$AWS" --endpoint-url "$S3_ENDPOINT" s3api "$@"; }

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
no() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else no "$what"; fi; }

chmod go-w "$SO"
printf '%s' S3RVER >"$work/secret"
cat >"$work/amber.toml" <<TOML
[adapters.s3]
type = "s3"
endpoint = "$S3_ENDPOINT"
region = "eu-west-3"
bucket = "backups"
access_key_id = "S3RVER"
secret_access_key_file = "$work/secret"
prefix = "nodes/ü/"
part_size = "5MiB"
parallel_parts = 3

[adapters.bad]
type = "s3"
endpoint = "$S3_ENDPOINT"
bucket = "backups"
access_key_id = "S3RVER"
secret_access_key = "not-the-secret"
part_size = "5MiB"
TOML
amber() { "$AMBER" --config "$work/amber.toml" --adapter-dir "$ADIR" "$@"; }
SERVER=0a0b0c0d-0000-4000-8000-000000000001
BIG=11111111-2222-4333-8444-555555555555
SMALL=11111111-2222-4333-8444-666666666666

# A server directory of ~17 MiB that gzip cannot shrink: at 5 MiB parts, 4 parts.
mkdir -p "$work/server/world/region" "$work/server/plugins/Ünïcødé 日本"
head -c $((17 * 1024 * 1024)) /dev/urandom >"$work/server/world/region/r.0.0.mca"
echo "motd=hello" >"$work/server/server.properties"
echo "plugin" >"$work/server/plugins/Ünïcødé 日本/config ✓.yml"

t0=$(date +%s.%N)
out=$(amber backup create --adapter s3 --server "$SERVER" --uuid "$BIG" --json "$work/server" 2>"$work/err")
rc=$?
check "backup create of a 17 MiB archive through s3 (5 MiB parts, 3 in flight) exits 0" test $rc = 0
[ $rc = 0 ] || cat "$work/err"
sha=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])' 2>/dev/null)
key="nodes/ü/$SERVER/$BIG.tar.gz"

head=$(s3api head-object --bucket backups --key "$key" 2>&1)
check "aws s3api head-object finds the object under prefix + <server>/<uuid>.tar.gz (UTF-8 prefix)" \
  test -n "$(printf '%s' "$head" | grep ContentLength)"
# s3rver gives a completed multipart object a plain MD5 ETag (real S3 adds "-<parts>"),
# so the part count and parts in flight are asserted in fault_injection.sh, whose proxy
# sees every request.
s3api get-object --bucket backups --key "$key" "$work/got.tar.gz" >/dev/null 2>&1
check "the object aws get-object downloads has the sha256 amber reported" \
  test "$(sha256sum <"$work/got.tar.gz" | cut -d' ' -f1)" = "$sha"
check "tar -tzf lists the archive aws downloaded, unicode names included" \
  bash -c "tar -tzf '$work/got.tar.gz' | grep -q 'plugins/Ünïcødé 日本/config ✓.yml'"

list=$(amber backup list --adapter s3 --server "$SERVER" 2>&1)
check "backup list shows the backup" grep -q "$BIG" <<<"$list"

mkdir "$work/restored"
amber backup restore --adapter s3 --server "$SERVER" --uuid "$BIG" "$work/restored" >/dev/null 2>"$work/err"
check "backup restore exits 0" test $? = 0
check "the restored tree equals the original" \
  cmp "$work/server/world/region/r.0.0.mca" "$work/restored/world/region/r.0.0.mca"

# A small archive (under one part): that it goes as one PutObject is asserted in
# fault_injection.sh (s3rver's ETags cannot tell); here, that it lands whole.
mkdir -p "$work/small"
echo tiny >"$work/small/a.txt"
amber backup create --adapter s3 --server "$SERVER" --uuid "$SMALL" "$work/small" >/dev/null 2>"$work/err"
check "backup create of a small archive exits 0" test $? = 0
s3api get-object --bucket backups --key "nodes/ü/$SERVER/$SMALL.tar.gz" "$work/small.tar.gz" >/dev/null 2>&1
check "the small archive downloaded with aws lists with tar" \
  bash -c "tar -tzf '$work/small.tar.gz' | grep -q a.txt"

# Presigned GET: plain curl downloads it; tampered or expired, s3rver refuses it (403).
url=$("$TOOL" "$work/amber.toml" s3 "$SO" presign "$SERVER/$BIG.tar.gz" 600)
code=$(curl -s -o "$work/presigned.tar.gz" -w '%{http_code}' "$url")
check "a presigned GET downloads with plain curl (HTTP $code), same bytes" \
  cmp "$work/presigned.tar.gz" "$work/got.tar.gz"
tampered=${url/$BIG/$SMALL}
code=$(curl -s -o /dev/null -w '%{http_code}' "$tampered")
check "a tampered presigned URL (other key) is refused: HTTP $code" test "$code" = 403
short=$("$TOOL" "$work/amber.toml" s3 "$SO" presign "$SERVER/$BIG.tar.gz" 1)
sleep 2.2
code=$(curl -s -o /dev/null -w '%{http_code}' "$short")
check "an expired presigned URL is refused: HTTP $code" test "$code" = 403

# The multipart group (panel-presigned uploads): create, presign parts, PUT them with
# curl, complete with the ETags curl saw.
head -c $((5 * 1024 * 1024)) /dev/urandom >"$work/p1"
head -c 1000 /dev/urandom >"$work/p2"
MK="$SERVER/33333333-2222-4333-8444-555555555555.tar.gz"
id=$("$TOOL" "$work/amber.toml" s3 "$SO" mpu-create "$MK")
check "multipart_create returns an upload id" test -n "$id"
etags=()
for i in 1 2; do
  purl=$("$TOOL" "$work/amber.toml" s3 "$SO" presign-part "$MK" "$id" $i 600)
  e=$(curl -s -D - -o /dev/null -X PUT --upload-file "$work/p$i" "$purl" | tr -d '\r' |
    sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
  etags+=("$i:$e")
done
check "parts PUT with curl to presign_part URLs are accepted (ETags ${etags[*]})" \
  test -n "${etags[1]#2:}"
"$TOOL" "$work/amber.toml" s3 "$SO" mpu-complete "$MK" "$id" "${etags[@]}" >"$work/err"
check "multipart_complete with the reported parts succeeds" test $? = 0
cat "$work/p1" "$work/p2" >"$work/p12"
s3api get-object --bucket backups --key "nodes/ü/$MK" "$work/mk" >/dev/null 2>&1
check "the completed object is the parts in order (aws get-object)" cmp "$work/p12" "$work/mk"
out=$("$TOOL" "$work/amber.toml" s3 "$SO" mpu-complete "$MK" "$id")
check "multipart_complete with n=0 needs ListParts, which s3rver answers 405: a clear error ($out)" \
  grep -q "ListParts" <<<"$out"
id2=$("$TOOL" "$work/amber.toml" s3 "$SO" mpu-create "$MK.2")
out=$("$TOOL" "$work/amber.toml" s3 "$SO" mpu-abort "$MK.2" "$id2")
check "multipart_abort: s3rver answers 405, reported as not supported ($out)" \
  grep -q "not supported.*AbortMultipartUpload" <<<"$out"

# A wrong secret: a clear, quick failure naming the 403 and S3's code, not a hang.
t0=$(date +%s)
timeout 60 "$AMBER" --config "$work/amber.toml" --adapter-dir "$ADIR" backup create \
  --adapter bad --server "$SERVER" --uuid "$SMALL" "$work/server" >/dev/null 2>"$work/err"
rc=$?
t1=$(date +%s)
msg=$(cat "$work/err")
check "a wrong secret fails (exit $rc) within 15 s ($((t1 - t0)) s)" \
  test $rc != 0 -a $rc != 124 -a $((t1 - t0)) -le 15
check "... with a message naming the 403 and SignatureDoesNotMatch: $msg" \
  grep -q "403.*SignatureDoesNotMatch" <<<"$msg"

amber backup delete --adapter s3 --server "$SERVER" --uuid "$BIG" >/dev/null 2>&1
check "backup delete exits 0" test $? = 0
s3api head-object --bucket backups --key "$key" >/dev/null 2>&1
check "after delete, aws head-object no longer finds the object" test $? != 0

echo "1..$n"
[ $failed = 0 ]
