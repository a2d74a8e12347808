#!/usr/bin/env bash
# Builds the oclaw image from scratch with buildah, offline: the given binary, the shared
# libraries it links (as ldd lists them: glibc, libgcc_s, libm, the loader), passwd and group
# entries for uid 65532, an empty /tmp; nothing else (no shell, no package manager).
#
#   deploy/image/build.sh target/release/oclaw registry.example.com/oclaw/oclaw:0.1.0
#
# BUILDAH_OPTS passes storage options (CI: "--root DIR --runroot DIR --storage-driver vfs").
set -euo pipefail
bin=${1:?usage: build.sh BINARY TAG}
tag=${2:?usage: build.sh BINARY TAG}
here=$(cd "$(dirname "$0")" && pwd)
command -v buildah >/dev/null || { echo "build.sh: buildah is not installed (apt-get install buildah)" >&2; exit 2; }
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/bin" "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
install -m 0755 "$bin" "$root/usr/bin/oclaw"
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
cp "$here/Containerfile" "$ctx/Containerfile"
version=$("$bin" version | awk '{print $2}')
# shellcheck disable=SC2086
buildah ${BUILDAH_OPTS:-} bud --quiet --isolation chroot -f "$ctx/Containerfile" \
  --label org.opencontainers.image.title=oclaw \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  -t "$tag" "$ctx" >/dev/null
echo "built $tag (oclaw $version)"
