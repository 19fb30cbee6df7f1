#!/bin/bash
# inroot.sh [--no-net] [--bind SRC:DST]... DIR CMD...: run CMD as root inside the root DIR.
#
# Why this shape: the root gets its own mount and PID namespaces, so every mount made
# here (a private tmpfs /dev with its own nodes, devpts, /dev/shm, /proc, /sys, binds)
# is invisible to the host and goes away with the namespace even if this script is
# killed with SIGKILL; the trap unmounts in order on a normal exit. When CMD ends, the
# kernel ends every process it left behind (daemons, Xvfb). The host's /dev is never
# bound in: a chroot can replace a bound /dev/null with a plain file.
# --no-net adds a network namespace with only loopback: X displays and other abstract
# sockets then cannot reach (or collide with) the host's. Without it, CMD shares the
# host's network (apt, pip).
# --bind SRC:DST binds a host directory (never under /dev) at DST inside the root.
set -euo pipefail

usage() { echo "usage: $0 [--no-net] [--bind SRC:DST]... DIR CMD..." >&2; exit 2; }

if [ "${1:-}" != --inside ]; then
    [ "$(id -u)" = 0 ] || exec sudo -- "$0" "$@"
    net=()
    args=()
    while [ $# -gt 0 ]; do
        case $1 in
            --no-net) net=(--net); shift ;;
            --bind) [ $# -ge 2 ] || usage; args+=(--bind "$2"); shift 2 ;;
            --*) usage ;;
            *) break ;;
        esac
    done
    [ $# -ge 2 ] || usage
    dir=$(realpath "$1"); shift
    [ -d "$dir/etc" ] || { echo "inroot: $dir is not a root" >&2; exit 1; }
    # unshare ignores SIGTERM/SIGINT while it waits; --kill-child sends SIGTERM to the
    # root's PID 1 (below) when unshare dies, so a signal to us kills unshare.
    unshare --mount --pid --fork --kill-child=TERM --propagation private "${net[@]}" -- \
        "$0" --inside "${#net[@]}" "${args[@]}" -- "$dir" "$@" <&0 &
    u=$!
    trap 'kill -KILL $u 2>/dev/null; wait $u 2>/dev/null; exit 143' TERM INT HUP
    set +e
    while :; do
        wait $u; rc=$?
        kill -0 $u 2>/dev/null || exit $rc
    done
fi

# Inside the namespaces; this shell is PID 1 there.
shift
isolated=$1; shift
binds=()
while [ "$1" != -- ]; do binds+=("$2"); shift 2; done
shift
dir=$1; shift

mounted=()
mnt() {  # mnt TARGET mount-args...: mount and remember for the unmount trap
    local target=$1; shift
    mkdir -p "$target"
    mount "$@" "$target"
    mounted=("$target" "${mounted[@]}")
}
cleanup() {
    local t
    for t in "${mounted[@]}"; do umount -l "$t" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mnt "$dir/dev" -t tmpfs -o mode=0755,nosuid,size=64m vvdev
mknod -m 0666 "$dir/dev/null" c 1 3
mknod -m 0666 "$dir/dev/zero" c 1 5
mknod -m 0666 "$dir/dev/full" c 1 7
mknod -m 0666 "$dir/dev/random" c 1 8
mknod -m 0666 "$dir/dev/urandom" c 1 9
mknod -m 0666 "$dir/dev/tty" c 5 0
ln -s /proc/self/fd "$dir/dev/fd"
ln -s /proc/self/fd/0 "$dir/dev/stdin"
ln -s /proc/self/fd/1 "$dir/dev/stdout"
ln -s /proc/self/fd/2 "$dir/dev/stderr"
# A devpts instance of our own; /dev/ptmx points at its multiplexer.
mnt "$dir/dev/pts" -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 vvpts
ln -s pts/ptmx "$dir/dev/ptmx"
mnt "$dir/dev/shm" -t tmpfs -o mode=1777,nosuid,nodev vvshm
mnt "$dir/proc" -t proc -o nosuid,nodev,noexec proc
mnt "$dir/sys" -t sysfs -o ro,nosuid,nodev,noexec sysfs
for b in "${binds[@]}"; do
    src=$(realpath "${b%%:*}"); dst=${b#*:}
    case $src/ in /dev/*) echo "inroot: refusing to bind $src" >&2; exit 1 ;; esac
    mnt "$dir/$dst" --bind "$src"
done
if [ "$isolated" = 1 ]; then
    ip link set lo up
else
    cp -L /etc/resolv.conf "$dir/etc/resolv.conf"
    # The host's network may need the host's local CAs (a TLS-inspecting proxy): the
    # root trusts what the host added to its trust store, nothing else of the host's.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null &&
        ! diff -rq /usr/local/share/ca-certificates "$dir/usr/local/share/ca-certificates" \
            >/dev/null 2>&1; then
        rm -rf "$dir/usr/local/share/ca-certificates"
        cp -r /usr/local/share/ca-certificates "$dir/usr/local/share/ca-certificates"
        chroot "$dir" update-ca-certificates >/dev/null
    fi
fi

# CMD runs in the background so that a signal's trap runs at once (bash defers traps
# while it waits for a foreground command); stdin stays the caller's.
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 chroot "$dir" "$@" <&0 &
set +e
wait $!
exit $?
