#!/usr/bin/env bash
# Fault injection for the s3 adapter: the amber CLI talks to s3rver through
# fault_proxy.py, which drops a part's connection mid-body, answers 500 and 503 to
# others and cuts a download short (deterministic schedule, see the proxy). The backup
# must still complete byte-identical (checked with aws s3api straight from s3rver), the
# restore must resume with a Range request, and a permanent failure must abort the
# upload with a clear, non-zero exit. TAP output.
#
# s3rver answers AbortMultipartUpload with 405, so "aborted" is asserted as: the abort
# request was sent, the CLI failed, and no object exists under the key.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/s3rver.sh"
AMBER=${AMBER_BIN:?run through ctest}
ADIR=${AMBER_ADAPTER_DIR:?}
SO=${AMBER_S3_ADAPTER:?}
AWS=/usr/bin/aws
[ -x "$AWS" ] || { echo "not ok - /usr/bin/aws missing: run scripts/setup (apt awscli)"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/amber-s3fault-XXXXXX")
PROXY_PID=
S3_EXTRA_CLEANUP='[ -n "$PROXY_PID" ] && kill $PROXY_PID 2>/dev/null; rm -rf "$work"'
s3rver_start backups
export HOME=$work AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=""
s3api() { "$AWS" --endpoint-url "$S3_ENDPOINT" s3api "$@"; }
chmod go-w "$SO"

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
no() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else no "$what"; fi; }

proxy_start() { # MODE
  [ -n "$PROXY_PID" ] && { kill "$PROXY_PID" 2>/dev/null; wait "$PROXY_PID" 2>/dev/null; }
  PPORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  : >"$work/log.$1"
  /usr/bin/python3 "$here/fault_proxy.py" "$PPORT" "$S3_PORT" "$work/log.$1" "$1" &
  PROXY_PID=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PPORT/" && break; sleep 0.1; done
  cat >"$work/amber.toml" <<TOML
[adapters.s3]
type = "s3"
endpoint = "http://127.0.0.1:$PPORT"
bucket = "backups"
access_key_id = "S3RVER"
secret_access_key = "S3RVER"
part_size = "5MiB"
parallel_parts = 3
TOML
}
amber() { "$AMBER" --config "$work/amber.toml" --adapter-dir "$ADIR" "$@"; }
q() { /usr/bin/python3 -c "import json,sys
recs=[json.loads(l) for l in open(sys.argv[1])]
$2" "$1"; }

SERVER=0a0b0c0d-0000-4000-8000-000000000002
U1=aaaaaaaa-0000-4000-8000-000000000001
U2=aaaaaaaa-0000-4000-8000-000000000002
U3=aaaaaaaa-0000-4000-8000-000000000003
mkdir -p "$work/server"
head -c $((22 * 1024 * 1024)) /dev/urandom >"$work/server/world.dat" # 5 parts of 5 MiB

proxy_start flaky
out=$(amber backup create --adapter s3 --server "$SERVER" --uuid "$U1" --json "$work/server" 2>"$work/err")
rc=$?
check "backup create through drops, 500 and 503 on parts exits 0" test $rc = 0
[ $rc = 0 ] || cat "$work/err"
sha=$(printf '%s' "$out" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])' 2>/dev/null)
L=$work/log.flaky
check "part 1 lost its connection mid-body, then was re-sent and stored" \
  q "$L" 'p=[r for r in recs if r["part"]==1]; sys.exit(not(p[0]["fault"]=="drop" and p[-1].get("status")==200))'
check "part 2 got 500, then was re-sent and stored" \
  q "$L" 'p=[r for r in recs if r["part"]==2]; sys.exit(not(p[0]["fault"]=="500" and p[-1].get("status")==200))'
check "part 3 got 503 SlowDown twice, then was re-sent and stored" \
  q "$L" 'p=[r for r in recs if r["part"]==3]; sys.exit(not([x["fault"] for x in p[:2]]==["503","503"] and p[-1].get("status")==200))'
check "5 parts were stored, every one but the last exactly 5 MiB" \
  q "$L" 'ok={r["part"]:r["len"] for r in recs if r["part"] and r.get("status")==200}; sys.exit(not(sorted(ok)==[1,2,3,4,5] and all(ok[i]==5<<20 for i in range(1,5)) and 0<ok[5]<=5<<20))'
maxin=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["max_inflight_parts"])' "$L.state")
check "parts were in flight together (at most $maxin at once, parallel_parts = 3)" \
  test "$maxin" -ge 2 -a "$maxin" -le 3
check "CompleteMultipartUpload was sent once (s3rver does not verify the ETags it lists)" \
  q "$L" 'sys.exit(sum(1 for r in recs if r["method"]=="POST" and "uploadId" in r["query"])!=1)'
s3api get-object --bucket backups --key "$SERVER/$U1.tar.gz" "$work/got.tar.gz" >/dev/null 2>&1
check "the object aws get-object reads from s3rver is byte-identical to what amber wrote (sha256)" \
  test -n "$sha" -a "$(sha256sum <"$work/got.tar.gz" | cut -d' ' -f1)" = "$sha"

mkdir "$work/restored"
amber backup restore --adapter s3 --server "$SERVER" --uuid "$U1" "$work/restored" >/dev/null 2>"$work/err"
check "backup restore through a download cut off mid-body exits 0" test $? = 0
check "... the download was cut once and resumed with a Range request" \
  q "$L" 'g=[r for r in recs if r["method"]=="GET" and "/'"$U1"'" in r["path"]]; sys.exit(not(any(r.get("cut") for r in g) and any((r["range"] or "").startswith("bytes=") for r in g)))'
check "... and the restored file is identical" cmp "$work/server/world.dat" "$work/restored/world.dat"

mkdir -p "$work/small"
echo tiny >"$work/small/a.txt"
amber backup create --adapter s3 --server "$SERVER" --uuid "$U3" "$work/small" >/dev/null 2>"$work/err"
check "a small archive (under one part) is one PutObject, no multipart upload" \
  q "$L" 'r=[x for x in recs if "/'"$U3"'" in x["path"]]; sys.exit(not(len(r)==1 and r[0]["method"]=="PUT" and r[0]["part"] is None and r[0].get("status")==200))'

proxy_start permanent
t0=$(date +%s)
amber backup create --adapter s3 --server "$SERVER" --uuid "$U2" "$work/server" >/dev/null 2>"$work/err"
rc=$?
msg=$(cat "$work/err")
check "a part failing on every attempt fails the backup (exit $rc) after $(( $(date +%s) - t0 )) s" \
  test $rc != 0
check "... with a clear message: $msg" grep -q "UploadPart 2: HTTP 500 InternalError.*gave up" <<<"$msg"
check "... the upload was aborted (AbortMultipartUpload sent; s3rver answers it 405)" \
  q "$work/log.permanent" 'sys.exit(not any(r["method"]=="DELETE" and "uploadId" in r["query"] for r in recs))'
s3api head-object --bucket backups --key "$SERVER/$U2.tar.gz" >/dev/null 2>&1
check "... and no object exists under the key" test $? != 0

echo "1..$n"
[ $failed = 0 ]
