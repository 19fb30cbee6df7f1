#!/bin/bash
# mkdebsrc.sh OUTDIR: the Debian source package's inputs from this checkout, in OUTDIR:
# virgl-viewer_<upstream>.orig.tar.gz (the tracked files as they are now, committed or
# not) and virgl-viewer-<upstream>/ unpacked from it with packaging/debian as debian/.
# Then `dpkg-buildpackage -us -uc` in that directory builds the source and binary
# packages. The upstream version is debian/changelog's (a test holds it equal to
# pyproject.toml's).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
top=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
out=$(realpath -m "$1")
version=$(sed -n '1s/^virgl-viewer (\([^)]*\)).*/\1/p' "$top/packaging/debian/changelog")
upstream=${version%-*}
[ -n "$upstream" ] || { echo "mkdebsrc: no version in debian/changelog" >&2; exit 1; }
tree=$(git -C "$top" stash create || true)  # a commit of the working tree, refs untouched
mkdir -p "$out"
rm -rf "${out:?}/virgl-viewer-$upstream"
git -C "$top" archive --format=tar --prefix="virgl-viewer-$upstream/" "${tree:-HEAD}" \
    | gzip -n > "$out/virgl-viewer_$upstream.orig.tar.gz"
tar -C "$out" -xzf "$out/virgl-viewer_$upstream.orig.tar.gz"
cp -a "$top/packaging/debian" "$out/virgl-viewer-$upstream/debian"
echo "$out/virgl-viewer-$upstream"
