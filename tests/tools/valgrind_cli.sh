#!/usr/bin/env bash
# valgrind_cli.sh AMBER ADAPTER_DIR SOURCE_DIR: a backup, list, restore and delete of a
# demo server through the CLI and the dlopen'ed wings adapter, each under valgrind's
# memcheck: any invalid access or leak fails the test.
set -euo pipefail
amber=$1 adapters=$2 src=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/amber-vg-XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 "$src/scripts/make-demo-server.py" "$work/server"
printf '[adapters.wings]\npath = "%s/store"\n' "$work" >"$work/amber.toml"
uuid=3f0e6c7a-8b9d-4e1f-a2b3-c4d5e6f70812
vg() {
  valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --track-fds=no \
    "$amber" --config "$work/amber.toml" --adapter-dir "$adapters" "$@"
}
vg backup create --uuid "$uuid" --threads 2 "$work/server" >/dev/null
echo "ok 1 - backup create is valgrind-clean"
vg backup list >/dev/null
echo "ok 2 - backup list is valgrind-clean"
vg backup restore --uuid "$uuid" "$work/restored" >/dev/null
python3 "$src/tests/tools/compare_trees.py" "$work/server" "$work/restored" >/dev/null
echo "ok 3 - backup restore is valgrind-clean and the tree is identical"
vg backup delete --uuid "$uuid" >/dev/null
vg adapters list >/dev/null
vg config check >/dev/null
echo "ok 4 - delete, adapters list, config check are valgrind-clean"
echo "valgrind: 4 passed, 0 failed"
