#!/usr/bin/env bash
# client_flow_curl.sh - the backup flow a user runs from the seed documentation (seed 004,
# "Backup Management"), written the way its curl examples are: bash + curl, with python3
# standing in for jq (which is not guaranteed to be installed).
#
# Environment:
#   PANEL_URL   e.g. http://127.0.0.1:18555
#   API_KEY     a ptlc_ key with backup.read/create/download/delete/restore on the server
#   SERVER_ID   the server's 8-character short id
#   SERVER_DIR  absolute path of the server's directory on its node (it is modified and restored)
#   COMPARE     path of tests/tools/compare_trees.py
#   WORK        a scratch directory
#
# Prints one "ok - ..." / "not ok - ..." line per step and exits 1 on the first failure.
set -u -o pipefail

for v in PANEL_URL API_KEY SERVER_ID SERVER_DIR COMPARE WORK; do
	if [ -z "${!v:-}" ]; then
		echo "not ok - environment: $v is not set"
		exit 2
	fi
done
for t in curl tar sha1sum cp; do
	command -v "$t" >/dev/null 2>&1 || { echo "not ok - environment: $t is not installed"; exit 2; }
done
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || PY=/usr/bin/python3
[ -d "$SERVER_DIR" ] || { echo "not ok - environment: SERVER_DIR $SERVER_DIR is not a directory"; exit 2; }
[ -f "$COMPARE" ] || { echo "not ok - environment: COMPARE $COMPARE does not exist"; exit 2; }
mkdir -p "$WORK" || exit 2

PANEL_URL=${PANEL_URL%/}
BASE="$PANEL_URL/api/client/servers/$SERVER_ID"
RESP="$WORK/response.json"
BEFORE="$WORK/before"
ARCHIVE="$WORK/b.tar.gz"
EXTRACTED="$WORK/extracted"
EXCLUDES=(--exclude '*.log' --exclude cache)
export FLOW_NAME="client flow (curl) $(date -u +%Y-%m-%dT%H:%M:%SZ) $$"
BACKUP=""       # uuid of the backup this run created, for cleanup on failure
DELETED=0
STEP=0
CODE=""
LAST=""

# ---------------------------------------------------------------- helpers

cleanup_on_failure() {
	# Best effort: do not leave a locked backup behind that would hold a backup slot.
	if [ -n "$BACKUP" ] && [ "$DELETED" = 0 ]; then
		echo "# cleanup: unlocking and deleting backup $BACKUP"
		api POST "/backups/$BACKUP/unlock" >/dev/null 2>&1 || true
		api DELETE "/backups/$BACKUP" >/dev/null 2>&1 || true
	fi
}

ok() {
	STEP=$((STEP + 1))
	echo "ok - $*"
}

fail() {
	STEP=$((STEP + 1))
	echo "not ok - $1"
	shift
	local line
	for line in "$@"; do
		printf '#   %s\n' "$line"
	done
	cleanup_on_failure
	exit 1
}

body_excerpt() {
	if [ -s "$RESP" ]; then
		head -c 600 "$RESP" | tr '\n' ' '
	else
		echo "(empty body)"
	fi
}

# api METHOD PATH [JSON]: a request to the client API as in seed 004's curl examples.
# Sets CODE to the HTTP status ("000" if the request did not complete); the body is in $RESP.
api() {
	local method=$1 path=$2 data=${3-}
	local args=(-sS -o "$RESP" -w '%{http_code}' --connect-timeout 10 --max-time 30 -X "$method"
		-H "Authorization: Bearer $API_KEY"
		-H "Accept: Application/vnd.pterodactyl.v1+json"
		-H "Content-Type: application/json")
	[ -n "$data" ] && args+=(--data-binary "$data")
	: >"$RESP"
	LAST="$method $BASE$path"
	CODE=$(curl "${args[@]}" "$BASE$path" 2>"$WORK/curl.err") || true
	[ -n "$CODE" ] || CODE=000
	if [ "$CODE" = 000 ]; then
		CODE="000 ($(tr '\n' ' ' <"$WORK/curl.err"))"
	fi
}

# expect_status WANT WHAT: fail the step unless the last response had status WANT.
expect_status() {
	[ "$CODE" = "$1" ] || fail "$2" "$LAST -> HTTP $CODE, want $1" "body: $(body_excerpt)"
}

# jq-like helpers on $RESP: jget EXPR prints EXPR (a Python expression over d, the parsed body);
# jtrue EXPR succeeds when EXPR is truthy. Both see the environment as env.
jget() {
	"$PY" -c '
import json, os, sys
d = json.load(open(sys.argv[1]))
env = os.environ
r = eval("(" + sys.argv[2] + "\n)")
print(r if isinstance(r, str) else json.dumps(r))' "$RESP" "$1" 2>/dev/null
}

jtrue() {
	"$PY" -c '
import json, os, re, sys
d = json.load(open(sys.argv[1]))
env = os.environ
sys.exit(0 if eval("(" + sys.argv[2] + "\n)") else 1)' "$RESP" "$1" 2>/dev/null
}

now_ms() { "$PY" -c 'import time; print(int(time.time() * 1000))'; }

# ---------------------------------------------------------------- 1. list
api GET /backups
expect_status 200 "list backups: GET /backups"
jtrue 'd["object"] == "list" and isinstance(d["data"], list) and
       all(b["object"] == "backup" and "uuid" in b["attributes"] for b in d["data"]) and
       isinstance(d["meta"]["pagination"], dict) and
       all(k in d["meta"]["pagination"] for k in ("total", "count", "per_page", "current_page", "total_pages")) and
       isinstance(d["meta"]["backup_count"], int) and not isinstance(d["meta"]["backup_count"], bool)' ||
	fail "list backups: a list with data, pagination and backup_count" "body: $(body_excerpt)"
ok "list backups: 200, $(jget 'len(d["data"])') on the page, backup_count $(jget 'd["meta"]["backup_count"]')"

# ---------------------------------------------------------------- 2. copy of the server
# A leftover from an interrupted run would end up in the backup and spoil step 8's check.
rm -f "$SERVER_DIR/added-after-backup.txt"
# Give the ignore rules something to ignore: a file under cache/ (the demo server has *.log files).
mkdir -p "$SERVER_DIR/cache" && printf 'cached bytes\n' >"$SERVER_DIR/cache/flow-cache.bin" ||
	fail "prepare the server directory" "could not write $SERVER_DIR/cache/flow-cache.bin"
rm -rf "$BEFORE" "$EXTRACTED" "$ARCHIVE"
cp -a "$SERVER_DIR" "$BEFORE" 2>"$WORK/cp.err" || fail "copy the server directory to $BEFORE" "$(cat "$WORK/cp.err")"
ok "copied $SERVER_DIR to $BEFORE ($(find "$BEFORE" | wc -l) entries)"

# ---------------------------------------------------------------- 3. create
CREATE_BODY=$("$PY" -c 'import json, sys; print(json.dumps({"name": sys.argv[1], "ignored": "*.log\ncache/*", "is_locked": False}))' "$FLOW_NAME")
api POST /backups "$CREATE_BODY"
expect_status 200 "create a backup: POST /backups"
BACKUP=$(jget 'd["attributes"]["uuid"]') || BACKUP=""
jtrue 'd["object"] == "backup" and
       re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", d["attributes"]["uuid"])' ||
	fail "create a backup: the body is a backup with a uuid" "body: $(body_excerpt)"
jtrue "(lambda a: a['name'] == env['FLOW_NAME'] and
       a['ignored_files'] == ['*.log', 'cache/*'] and
       'checksum' in a and a['checksum'] is None and
       'sha256_hash' in a and a['sha256_hash'] is None and
       a['bytes'] == 0 and not isinstance(a['bytes'], bool) and
       re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)', a['created_at']) and
       'completed_at' in a and a['completed_at'] is None and
       'is_successful' in a and a['is_successful'] is None and
       a['is_locked'] is False)(d['attributes'])" ||
	fail "create a backup: the attributes of a new backup" "body: $(body_excerpt)"
ok "create a backup: 200, backup $BACKUP, created_at $(jget 'd["attributes"]["created_at"]')"

# ---------------------------------------------------------------- 4. poll until complete
start=$(now_ms)
while :; do
	api GET "/backups/$BACKUP"
	if [ "$CODE" = 200 ] && jtrue 'd["attributes"]["completed_at"] is not None'; then
		break
	fi
	case "$CODE" in
	200 | 429) ;;
	*) fail "poll the backup: GET /backups/$BACKUP" "HTTP $CODE" "body: $(body_excerpt)" ;;
	esac
	if [ $(($(now_ms) - start)) -gt 60000 ]; then
		fail "poll the backup: completed within 60 s" "last: HTTP $CODE" "body: $(body_excerpt)"
	fi
	sleep 0.2
done
jtrue '(lambda a: a["is_successful"] is True and
        re.fullmatch(r"sha1:[0-9a-f]{40}", a["checksum"] or "") and
        isinstance(a["bytes"], int) and a["bytes"] > 0 and
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", a["completed_at"]))(d["attributes"])' ||
	fail "poll the backup: successful, sha1 checksum, bytes > 0" "body: $(body_excerpt)"
CHECKSUM=$(jget 'd["attributes"]["checksum"]')
export BACKUP CHECKSUM
SHA1=${CHECKSUM#sha1:}
BYTES=$(jget 'd["attributes"]["bytes"]')
ok "backup completed after $(($(now_ms) - start)) ms: successful, $CHECKSUM, $BYTES bytes"

# ---------------------------------------------------------------- 5. pagination, and the backup is listed
api GET "/backups?per_page=1&page=1"
expect_status 200 "list one per page: GET /backups?per_page=1&page=1"
jtrue 'd["object"] == "list" and len(d["data"]) == 1 and
       d["meta"]["pagination"]["per_page"] == 1 and d["meta"]["pagination"]["current_page"] == 1 and
       d["meta"]["pagination"]["count"] == 1 and d["meta"]["pagination"]["total"] >= 1 and
       d["meta"]["pagination"]["total_pages"] == d["meta"]["pagination"]["total"]' ||
	fail "list one per page: pagination with per_page 1" "body: $(body_excerpt)"
ok "list one per page: per_page 1, total $(jget 'd["meta"]["pagination"]["total"]')"

found=0
page=1
while :; do
	api GET "/backups?page=$page"
	expect_status 200 "full list, page $page"
	if jtrue 'any(b["attributes"]["uuid"] == env["BACKUP"] for b in d["data"])'; then
		jtrue '[b["attributes"] for b in d["data"] if b["attributes"]["uuid"] == env["BACKUP"]][0]["checksum"] == env["CHECKSUM"]' ||
			fail "full list: the entry for $BACKUP shows its checksum" "body: $(body_excerpt)"
		found=1
		break
	fi
	pages=$(jget 'd["meta"]["pagination"]["total_pages"]') || pages=0
	[ "$page" -lt "${pages:-0}" ] 2>/dev/null || break
	page=$((page + 1))
	[ "$page" -le 200 ] || break
done
[ "$found" = 1 ] || fail "full list: backup $BACKUP is listed" "searched $page page(s); last body: $(body_excerpt)"
ok "full list: backup $BACKUP is listed (page $page)"

# ---------------------------------------------------------------- 6. download
api GET "/backups/$BACKUP/download"
expect_status 200 "download link: GET /backups/$BACKUP/download"
jtrue 'd["object"] == "signed_url" and re.match(r"https?://", d["attributes"]["url"])' ||
	fail "download link: a signed_url object with a URL" "body: $(body_excerpt)"
URL=$(jget 'd["attributes"]["url"]')
ok "download link: signed URL $(printf '%s' "$URL" | sed -E 's/(token=.{8}).*/\1.../')"

# The signed URL needs no Authorization header.
dl_code=$(curl -sS -f -o "$ARCHIVE" -w '%{http_code}' --connect-timeout 10 --max-time 300 "$URL" 2>"$WORK/curl.err")
dl_rc=$?
[ "$dl_rc" = 0 ] || fail "download the archive without Authorization" "curl exit $dl_rc, HTTP $dl_code: $(tr '\n' ' ' <"$WORK/curl.err")"
size=$(wc -c <"$ARCHIVE" | tr -d ' ')
got_sha1=$(sha1sum "$ARCHIVE" | cut -d' ' -f1)
[ "$got_sha1" = "$SHA1" ] || fail "the archive's sha1 matches the checksum" "sha1 $got_sha1, checksum $CHECKSUM"
[ "$size" = "$BYTES" ] || fail "the archive's size matches bytes" "$size bytes downloaded, attributes say $BYTES"
ok "downloaded $size bytes to $ARCHIVE; sha1 $got_sha1 matches the checksum"

tar -tzf "$ARCHIVE" >"$WORK/listing.txt" 2>"$WORK/tar.err" ||
	fail "tar -tzf lists the archive" "$(head -c 600 "$WORK/tar.err")"
bad=$(sed 's#^\./##' "$WORK/listing.txt" | grep -E '\.log$|(^|/)cache/.+' | head -5 || true)
[ -z "$bad" ] || fail "the archive leaves out the ignored files (*.log, cache/*)" "listed: $(echo "$bad" | tr '\n' ' ')"
ok "tar -tzf lists $(wc -l <"$WORK/listing.txt") entries, none of them ignored (*.log, cache/*)"

mkdir -p "$EXTRACTED"
tar -xpzf "$ARCHIVE" -C "$EXTRACTED" 2>"$WORK/tar.err" || fail "extract the archive" "$(head -c 600 "$WORK/tar.err")"
"$PY" "$COMPARE" "$BEFORE" "$EXTRACTED" "${EXCLUDES[@]}" >"$WORK/compare.out" 2>&1 ||
	fail "the extracted archive is the server's tree (excluding *.log, cache)" "$(head -20 "$WORK/compare.out")"
ok "the extracted archive equals the copy: $(head -1 "$WORK/compare.out")"

dl2_code=$(curl -sS -o /dev/null -w '%{http_code}' --connect-timeout 10 --max-time 30 "$URL" 2>"$WORK/curl.err") || true
[ "$dl2_code" = 404 ] || fail "the signed URL is one-time: a second download is 404" "HTTP ${dl2_code:-000} $(tr '\n' ' ' <"$WORK/curl.err")"
ok "the signed URL is one-time: a second download gets 404"

# ---------------------------------------------------------------- 7. lock
api POST "/backups/$BACKUP/lock"
expect_status 204 "lock: POST /backups/$BACKUP/lock"
api GET "/backups/$BACKUP"
expect_status 200 "lock: GET the backup"
jtrue 'd["attributes"]["is_locked"] is True' || fail "lock: the backup shows is_locked true" "body: $(body_excerpt)"
ok "lock: 204, is_locked true"

api DELETE "/backups/$BACKUP"
expect_status 400 "delete a locked backup: DELETE /backups/$BACKUP"
jtrue 'd["errors"][0]["code"] == "BackupIsLockedException"' ||
	fail "delete a locked backup: errors[0].code is BackupIsLockedException" "body: $(body_excerpt)"
ok "delete a locked backup: 400 BackupIsLockedException"

api POST "/backups/$BACKUP/unlock"
expect_status 204 "unlock: POST /backups/$BACKUP/unlock"
api GET "/backups/$BACKUP"
expect_status 200 "unlock: GET the backup"
jtrue 'd["attributes"]["is_locked"] is False' || fail "unlock: the backup shows is_locked false" "body: $(body_excerpt)"
ok "unlock: 204, is_locked false"

# ---------------------------------------------------------------- 8. restore
printf 'this file did not exist when the backup was taken\n' >"$SERVER_DIR/added-after-backup.txt" ||
	fail "change the server: add added-after-backup.txt"
# A regular file the archive has (not an ignored one), preferring a top-level one.
VICTIM=$("$PY" - "$BEFORE" "$WORK/listing.txt" <<'EOF'
import os, sys
before, listing = sys.argv[1], sys.argv[2]
names = [l.rstrip("\n") for l in open(listing, encoding="utf-8", errors="surrogateescape")]
names = [n[2:] if n.startswith("./") else n for n in names]
cands = [n for n in names if not n.endswith("/") and not n.endswith(".log") and not n.startswith("cache/")
         and os.path.isfile(os.path.join(before, n)) and not os.path.islink(os.path.join(before, n))]
cands.sort(key=lambda n: (n.count("/"), n))
print(cands[0] if cands else "")
EOF
)
[ -n "$VICTIM" ] && [ -f "$SERVER_DIR/$VICTIM" ] || fail "change the server: pick a backed-up regular file to delete" "none found"
rm -f "$SERVER_DIR/$VICTIM" || fail "change the server: delete $VICTIM"
ok "changed the server: added added-after-backup.txt, deleted $VICTIM"

api POST "/backups/$BACKUP/restore" '{"truncate":true}'
expect_status 202 "restore: POST /backups/$BACKUP/restore {\"truncate\":true}"
ok "restore: 202"

start=$(now_ms)
while :; do
	: >"$RESP"
	CODE=$(curl -sS -o "$RESP" -w '%{http_code}' --connect-timeout 10 --max-time 30 \
		-H "Authorization: Bearer $API_KEY" \
		-H "Accept: Application/vnd.pterodactyl.v1+json" \
		-H "Content-Type: application/json" \
		"$BASE" 2>"$WORK/curl.err") || true
	if [ "$CODE" = 200 ] && jtrue 'd["object"] == "server" and d["attributes"]["status"] is None'; then
		break
	fi
	case "$CODE" in
	200 | 429) ;;
	*) fail "poll the server: GET /api/client/servers/$SERVER_ID" "HTTP ${CODE:-000} $(tr '\n' ' ' <"$WORK/curl.err")" "body: $(body_excerpt)" ;;
	esac
	if [ $(($(now_ms) - start)) -gt 60000 ]; then
		fail "poll the server: status back to null within 60 s" "last: HTTP $CODE" "body: $(body_excerpt)"
	fi
	sleep 0.2
done
jtrue '(lambda a: "identifier" in a and "uuid" in a and "status" in a)(d["attributes"])' ||
	fail "poll the server: a server object with identifier, uuid, status" "body: $(body_excerpt)"
ok "the server's status is null again after $(($(now_ms) - start)) ms (identifier $(jget 'd["attributes"]["identifier"]'))"

[ ! -e "$SERVER_DIR/added-after-backup.txt" ] || fail "restore: added-after-backup.txt is gone (truncate)"
[ -f "$SERVER_DIR/$VICTIM" ] || fail "restore: $VICTIM is back"
"$PY" "$COMPARE" "$BEFORE" "$SERVER_DIR" "${EXCLUDES[@]}" >"$WORK/compare.out" 2>&1 ||
	fail "restore: the server's tree equals the copy (excluding *.log, cache)" "$(head -20 "$WORK/compare.out")"
ok "restore: added file gone, $VICTIM back, tree equals the copy: $(head -1 "$WORK/compare.out")"

# ---------------------------------------------------------------- 9. delete
api DELETE "/backups/$BACKUP"
expect_status 204 "delete: DELETE /backups/$BACKUP"
DELETED=1
ok "delete: 204"

api GET "/backups/$BACKUP"
expect_status 404 "deleted: GET /backups/$BACKUP"
jtrue 'd["errors"][0]["code"] == "NotFoundHttpException"' ||
	fail "deleted: errors[0].code is NotFoundHttpException" "body: $(body_excerpt)"
ok "deleted: GET the backup gives 404 NotFoundHttpException"

echo "# all $STEP steps passed"
exit 0
