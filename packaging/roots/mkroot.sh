#!/bin/bash
# mkroot.sh RELEASE DIR: a pristine Debian root (bookworm or trixie) in DIR, made once.
#
# Why: the Debian 12/13 lanes run the README's commands in a root that only
# debootstrap has touched, as a new user would. DIR is reused when its stamp
# says it was finished for RELEASE; it is built in DIR.partial and renamed, so
# an interrupted run never leaves a half root that looks finished. Downloaded
# .debs are kept in DIR.debs for the next build.
# The root gets a user `vv` (sudo without password) to run the commands as.
# Mounts (a private /dev, /proc, /sys) are inroot.sh's job, never this one's.
set -euo pipefail

usage() { echo "usage: $0 bookworm|trixie DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
release=$1
dir=$(realpath -m "$2")
case $release in bookworm|trixie) ;; *) usage ;; esac
[ "$(id -u)" = 0 ] || exec sudo -- "$0" "$@"

stamp=$dir/.mkroot-$release
if [ -e "$stamp" ]; then
    echo "mkroot: $dir is a finished $release root (cached)"
    exit 0
fi
[ ! -e "$dir" ] || { echo "mkroot: $dir exists but has no $stamp; remove it" >&2; exit 1; }

if ! command -v debootstrap >/dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
fi

mirror=${MKROOT_MIRROR:-http://deb.debian.org/debian}
partial=$dir.partial
debs=$dir.debs
rm -rf "$partial"
mkdir -p "$debs" "$(dirname "$dir")"
# minbase + what the README assumes a user has (make, sudo). No git: the lanes copy
# in a `git archive` of the checkout.
debootstrap --variant=minbase --cache-dir="$debs" \
    --include=ca-certificates,make,sudo "$release" "$partial" "$mirror"

cat > "$partial/etc/apt/sources.list" <<SRC
deb $mirror $release main
deb $mirror $release-updates main
deb http://deb.debian.org/debian-security $release-security main
SRC
echo "vv-$release" > "$partial/etc/hostname"
chroot "$partial" useradd --create-home --shell /bin/bash vv
echo 'vv ALL=(ALL) NOPASSWD: ALL' > "$partial/etc/sudoers.d/vv"
chmod 0440 "$partial/etc/sudoers.d/vv"
# debootstrap leaves its own /dev nodes in the tree; inroot.sh mounts a tmpfs over them.
touch "$partial/.mkroot-$release"
mv "$partial" "$dir"
echo "mkroot: made $release root in $dir"
