#!/usr/bin/env bash
# Builds the example plugins with real toolchains and writes installable plugin folders
# (manifest with its module's SHA-256 filled in) to $OUT (default target/example-plugins):
#   text-tools  C, Debian's clang + lld for wasm32 (sdk/c/oclaw_plugin.h)
#   link-check  AssemblyScript from npm
# Needs: clang, wasm-ld (Debian packages clang and lld), node + npm.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${OUT:-$root/target/example-plugins}"
mkdir -p "$out"
stage="$(mktemp -d "$out/.build.XXXXXX")"
trap 'rm -rf "$stage"' EXIT

package() { # name folder module-file
  local name=$1 src=$2 module=$3
  local digest
  digest=$(sha256sum "$stage/$name/$(basename "$module")" | cut -d' ' -f1)
  sed -E "s/^sha256: .*/sha256: \"$digest\"/" "$src/plugin.yaml" > "$stage/$name/plugin.yaml"
  rm -rf "$out/$name.old"
  [ -d "$out/$name" ] && mv "$out/$name" "$out/$name.old"
  mv "$stage/$name" "$out/$name"
  rm -rf "$out/$name.old"
  echo "built $out/$name ($digest)"
}

# C: freestanding wasm32, no libc, no WASI.
mkdir -p "$stage/text-tools"
clang --target=wasm32 -O2 -nostdlib -Wl,--no-entry -Wl,--export-dynamic \
  -Wl,-z,stack-size=65536 -Wl,--initial-memory=131072 \
  -I "$root/sdk/c" -o "$stage/text-tools/text_tools.wasm" "$here/text-tools/text_tools.c"
package text-tools "$here/text-tools" text_tools.wasm

# AssemblyScript: the compiler comes from npm (pinned in package.json).
mkdir -p "$stage/link-check"
(
  cd "$here/link-check"
  [ -x node_modules/.bin/asc ] || npm install --no-audit --no-fund --silent >/dev/null
  node_modules/.bin/asc assembly/index.ts --outFile "$stage/link-check/link_check.wasm" \
    --runtime stub --optimize --noAssert --use abort=assembly/index/abort >/dev/null
)
package link-check "$here/link-check" link_check.wasm
