#!/usr/bin/env bash
# sdk_out_of_tree.sh BUILD_DIR SOURCE_DIR: installs Amber into a scratch prefix, builds
# the example adapter from a copy of plugin-sdk/examples/memory using only the
# installed header and `pkg-config amber-adapter` (Makefile and CMake), and runs the
# installed amber-conformance and amber against what it built.
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/amber-sdk-XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
pcdir=$(dirname "$(find "$prefix" -name amber-adapter.pc | head -1)")
export PKG_CONFIG_PATH=$pcdir
echo "# installed: $(pkg-config --modversion amber-adapter), adapterdir $(pkg-config --variable=adapterdir amber-adapter)"

cp -r "$src/plugin-sdk/examples/memory" "$work/make"
# Nothing from the source tree may be needed: build with the installed SDK only.
make -C "$work/make" >/dev/null
test -f "$work/make/memory.so"
exports=$(nm -D --defined-only "$work/make/memory.so" | awk '{print $3}' | grep -v '^_' || true)
if [ "$exports" != "amber_adapter_entry_v1" ]; then
  echo "not ok - example exports more than its entry symbol: $exports"; exit 1
fi
echo "ok - Makefile build with pkg-config exports only amber_adapter_entry_v1"

cp -r "$src/plugin-sdk/examples/memory" "$work/cm"
cmake -S "$work/cm" -B "$work/cm/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cm/build" >/dev/null
find "$work/cm/build" -name memory.so | grep -q . && echo "ok - standalone CMake build"

# Install it where the installed amber looks, and use it.
make -C "$work/make" install >/dev/null
ls "$(pkg-config --variable=adapterdir amber-adapter)/memory.so" >/dev/null
cat >"$work/amber.toml" <<TOML
[adapters.mem]
type = "memory"
TOML
"$prefix/bin/amber-conformance" --config "$work/amber.toml" --instance mem \
  --adapter-dir "$(pkg-config --variable=adapterdir amber-adapter)" --large-mib 16
# Captured first: grep -q stops reading at its match, and with pipefail the listing's
# SIGPIPE would fail the step once the list outgrows one stdio buffer.
listed=$("$prefix/bin/amber" --config "$work/amber.toml" \
  --adapter-dir "$(pkg-config --variable=adapterdir amber-adapter)" adapters list)
grep -q "^memory " <<<"$listed" && echo "ok - installed amber lists the out-of-tree adapter"
