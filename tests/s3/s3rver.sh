# Sourced by the s3 tests: s3rver_start BUCKET starts @20minutes/s3rver on a free
# 127.0.0.1 port with a scratch data dir (sets S3_PORT, S3_ENDPOINT, S3_PID) and stops
# it on exit. Fails loudly when the peer is not installed: never a silent skip.
S3_REPO=${AMBER_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
s3rver_start() {
  local bucket=$1 dir
  if [ ! -f "$S3_REPO/.peers/node_modules/@20minutes/s3rver/lib/cli.js" ]; then
    echo "not ok - the S3 test peer is missing: run scripts/setup (installs @20minutes/s3rver into $S3_REPO/.peers)" >&2
    exit 1
  fi
  if ! command -v node >/dev/null; then
    echo "not ok - node is not installed; the S3 tests need it (do not apt-get install nodejs, see ../shared/docs/test-peers.md)" >&2
    exit 1
  fi
  dir=$(mktemp -d "${TMPDIR:-/tmp}/amber-s3rver-XXXXXX")
  S3_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  node --openssl-legacy-provider "$S3_REPO/tests/tools/s3rver.js" -d "$dir/data" -a 127.0.0.1 \
    -p "$S3_PORT" --silent --configure-bucket "$bucket" >"$dir/log" 2>&1 &
  S3_PID=$!
  S3_DIR=$dir
  trap 's3rver_stop' EXIT
  for _ in $(seq 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/"; then
      S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
      return 0
    fi
    kill -0 "$S3_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "not ok - s3rver did not start:"; cat "$dir/log"
  exit 1
}
s3rver_stop() {
  if [ -n "${S3_PID:-}" ]; then kill "$S3_PID" 2>/dev/null || true; wait "$S3_PID" 2>/dev/null || true; fi
  S3_PID=
  [ -n "${S3_DIR:-}" ] && rm -rf "$S3_DIR"
  [ -n "${S3_EXTRA_CLEANUP:-}" ] && eval "$S3_EXTRA_CLEANUP"
  return 0
}
