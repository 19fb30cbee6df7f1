#!/bin/bash
# lane.sh RELEASE [TARGET [VAR=VALUE]...]: the README's two commands in a fresh Debian
# RELEASE root, as a new user (vv) with a clean checkout (`git archive $LANE_REV`, default
# HEAD: commit what you test): its setup, then `make TARGET VAR=VALUE...` (default
# `make test`).
#
# build/roots/RELEASE is the pristine root (mkroot.sh, cached); every run copies it to
# build/roots/RELEASE-run, so each lane starts from what debootstrap made. Downloads are
# cached outside the copy (apt's .debs, pip's cache). Setup (`make run ARGS=--help`: apt,
# pip, the binding) uses the network; `make TARGET` then runs with loopback only, so
# its X servers and sockets cannot meet the host's (X's abstract sockets are per network
# namespace). Its output ends in build/roots/RELEASE-TARGET.log. TARGET bench or
# conformance (ours against the release's own virgl_test_server) also gets the house's
# glmark2 scenes and piglit lists: shared/ beside the checkout, copied to /home/vv/shared
# beside the root's checkout (where bench/ and tests/support/ look for them).
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 bookworm|trixie [TARGET [VAR=VALUE]...]" >&2; exit 2; }
release=$1
target=${2:-test}
shift $(($# < 2 ? $# : 2))
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
roots=$repo/build/roots
pristine=$roots/$release
work=$roots/$release-run
cache=$roots/$release-cache
log=$roots/$release-$target.log

"$here/mkroot.sh" "$release" "$pristine"
rm -rf "$work"
cp -a "$pristine" "$work"
src=$work/home/vv/virgl-viewer
mkdir -p "$src" "$cache/apt/partial" "$cache/pip"
git -C "$repo" archive "${LANE_REV:-HEAD}" | tar -x -C "$src"
vv=$(stat -c %u:%g "$work/home/vv")
chown -R "$vv" "$src" "$cache/pip"
mkdir -p "$work/home/vv/.cache/pip"
chown -R "$vv" "$work/home/vv/.cache"
if [ "$target" != test ] && [ -d "$repo/../shared" ]; then
    cp -rL "$repo/../shared" "$work/home/vv/shared"
    chmod -R u+w "$work/home/vv/shared"
    chown -R "$vv" "$work/home/vv/shared"
fi

as_vv() {  # as_vv INROOT_OPTIONS... -- COMMAND: a login shell of vv in the checkout
    local opts=()
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    "$here/inroot.sh" "${opts[@]}" --bind "$cache/apt:/var/cache/apt/archives" \
        --bind "$cache/pip:/home/vv/.cache/pip" "$work" \
        runuser -l vv -c "cd ~/virgl-viewer && $*"
}

echo "lane $release: setup (make run ARGS=--help)"
as_vv -- make run ARGS=--help
make_cmd=$(printf '%q ' make "$target" "$@")
echo "lane $release: $make_cmd"
set +e
as_vv --no-net -- "$make_cmd" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
echo "lane $release: make $target exit status $rc (log: $log)"
exit "$rc"
