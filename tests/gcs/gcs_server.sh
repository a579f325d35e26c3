# Sourced by the gcs tests: gcs_server_start [EXTRA ARGS...] starts the strict GCS test
# server (tests/gcs/gcs_test_server.py: written from the spec, NOT real GCS) on a free
# 127.0.0.1 port with a scratch data dir, an HMAC key and a fresh service-account key
# file; sets GCS_ENDPOINT, GCS_KEY, GCS_DIR, GCS_HMAC_ID, GCS_HMAC_SECRET, GCS_LOG, and
# stops it on exit.
GCS_REPO=${AMBER_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
GCS_HMAC_ID=GOOG1EXAMPLEHMACACCESSIDFORAMBERTESTS
GCS_HMAC_SECRET=bGoa+V7g/yqDXvKRqq+JTFn4uQZbPiQJo4pf9RzJ
gcs_server_start() {
  GCS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/amber-gcs-XXXXXX")
  GCS_KEY=$GCS_DIR/key.json
  GCS_LOG=$GCS_DIR/requests.log
  /usr/bin/python3 "$GCS_REPO/tests/gcs/gcs_test_server.py" --port 0 --dir "$GCS_DIR/data" \
    --key-out "$GCS_KEY" --bucket amber-test --hmac-id "$GCS_HMAC_ID" \
    --hmac-secret "$GCS_HMAC_SECRET" --log "$GCS_LOG" "$@" \
    >"$GCS_DIR/ready" 2>"$GCS_DIR/stderr" &
  GCS_PID=$!
  trap 'gcs_server_stop' EXIT
  for _ in $(seq 100); do
    if grep -q '^ready ' "$GCS_DIR/ready" 2>/dev/null; then
      GCS_PORT=$(awk '/^ready /{print $2}' "$GCS_DIR/ready")
      GCS_ENDPOINT="http://127.0.0.1:$GCS_PORT"
      return 0
    fi
    kill -0 "$GCS_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "not ok - the GCS test server did not start:"; cat "$GCS_DIR/stderr"
  exit 1
}
gcs_server_stop() {
  if [ -n "${GCS_PID:-}" ]; then kill "$GCS_PID" 2>/dev/null || true; wait "$GCS_PID" 2>/dev/null || true; fi
  GCS_PID=
  [ -n "${GCS_DIR:-}" ] && rm -rf "$GCS_DIR"
  [ -n "${GCS_EXTRA_CLEANUP:-}" ] && eval "$GCS_EXTRA_CLEANUP"
  return 0
}
