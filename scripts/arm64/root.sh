#!/bin/sh
# An arm64 Debian root with Python, numpy and onnxruntime (aarch64 wheels), run under qemu-user.
#
#   scripts/arm64/root.sh ensure REQS     build the root once (cached) and install the pip requirements in
#                                         REQS as aarch64 wheels (again when REQS changes); print its path
#   scripts/arm64/root.sh install WHEEL   (re)install edgekd's wheel in it, without dependencies
#   scripts/arm64/root.sh run DIR CMD...  copy DIR into the root as /check, run CMD there (cwd /check),
#                                         copy /check back to DIR; /proc, /sys and /dev are mounted for
#                                         the command and unmounted afterwards, whatever happens
#   scripts/arm64/root.sh status          say whether the root is built and qemu can run it (exit 0 if so)
#
# The root lives outside the repository: $EDGEKD_ARM64_ROOT, default ~/.cache/edgekd/arm64-root, with the
# downloaded wheels beside it. The first build downloads ~40 MB of Debian packages and ~45 MB of wheels and
# takes a few minutes; afterwards each step checks a stamp and returns at once.
#
# Why a Debian root and not only the wheels: onnxruntime's aarch64 wheel needs an aarch64 CPython and glibc;
# bookworm's python3 is 3.11, the version the wheels are chosen for. Needs root (chroot, mount), and
# Debian's qemu-user-static, binfmt-support and debootstrap (the Makefile's arm64-tools target installs them).
set -eu

ROOT=${EDGEKD_ARM64_ROOT:-$HOME/.cache/edgekd/arm64-root}
WHEELS=${EDGEKD_ARM64_WHEELS:-$ROOT.wheels}
MIRROR=${EDGEKD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
SITE=/opt/edgekd/site   # the device's site-packages: aarch64 wheels, then edgekd's

say() { echo "arm64-root: $*" >&2; }
die() { echo "arm64-root: error: $*" >&2; exit 2; }

binfmt_ready() {
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || return 1
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && command -v update-binfmts >/dev/null; then
        update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    fi
    grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null
}

require_tools() {
    [ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mount); run it as root or with sudo"
    command -v qemu-aarch64-static >/dev/null || die "qemu-aarch64-static missing: apt-get install qemu-user-static (or: make arm64-tools)"
    command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install debootstrap (or: make arm64-tools)"
    binfmt_ready || die "the kernel cannot run aarch64 programs: no binfmt_misc handler for qemu-aarch64 (update-binfmts --enable qemu-aarch64)"
}

# debootstrap --foreign downloads bookworm's arm64 packages (minbase + python3) and unpacks the essential ones.
# Its second stage would configure them with dpkg, perl and maintainer scripts under emulation: over half an
# hour on a 2-core machine. Python and onnxruntime need only the files and the dynamic loader's cache, so the
# host's dpkg-deb unpacks the remaining packages (an archive extraction, nothing emulated) and the root's own
# ldconfig, under qemu, writes the cache. Everything happens in ROOT.tmp, renamed to ROOT when complete, so a
# killed build is never taken for a root.
build_base() {
    [ -f "$ROOT/.edgekd-base" ] && return 0
    say "building $ROOT: debootstrap --foreign ($SUITE, arm64), then unpacking the packages"
    rm -rf "$ROOT.tmp"
    debootstrap --arch=arm64 --foreign --variant=minbase --include=python3 "$SUITE" "$ROOT.tmp" "$MIRROR" >&2
    for deb in "$ROOT.tmp"/var/cache/apt/archives/*.deb; do
        # merged /usr: /bin, /lib and /sbin are symlinks into /usr and must stay so
        dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$ROOT.tmp" --keep-directory-symlink
    done
    rm -f "$ROOT.tmp"/var/cache/apt/archives/*.deb
    # The binfmt handler is registered with the F flag (interpreter opened at registration), so the chroot needs
    # no copy of qemu; copy it anyway for kernels whose handler lacks F.
    cp /usr/bin/qemu-aarch64-static "$ROOT.tmp/usr/bin/"
    chroot "$ROOT.tmp" /sbin/ldconfig
    chroot "$ROOT.tmp" /usr/bin/python3 -c "import platform, ctypes; assert platform.machine() == 'aarch64'"
    touch "$ROOT.tmp/.edgekd-base"
    rm -rf "$ROOT"
    mv "$ROOT.tmp" "$ROOT"
}

# aarch64 wheels for CPython 3.11 (bookworm's python3), installed by the host's pip into the root's site folder:
# pip picks and unpacks wheels for the platform it is told, so nothing runs under emulation.
# benchmarks/arm64_emulated.py pins the versions the build machine's .venv runs, so that x86 and aarch64
# differ only in architecture.
pip_for_aarch64() {
    ${PIP:-pip} "$@" --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
        --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux_2_17_aarch64 \
        --platform manylinux2014_aarch64
}

install_wheels() {
    requirements=$1 stamp="$ROOT/.edgekd-wheels"
    [ -f "$requirements" ] || die "$requirements: no such requirements file"
    want=$(sha256sum "$requirements" | cut -c1-64)
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
    say "installing aarch64 wheels ($(tr '\n' ' ' < "$requirements")) into $ROOT$SITE"
    mkdir -p "$WHEELS"
    pip_for_aarch64 download --quiet --dest "$WHEELS" -r "$requirements" >&2
    rm -rf "$ROOT$SITE"
    pip_for_aarch64 install --quiet --no-index --find-links "$WHEELS" --target "$ROOT$SITE" -r "$requirements" >&2
    echo "$want" > "$stamp"
}

install_edgekd() {
    wheel=$1
    [ -f "$wheel" ] || die "$wheel: no such wheel; build it with: pip wheel --no-deps -w DIR ."
    rm -rf "$ROOT$SITE"/edgekd "$ROOT$SITE"/edgekd-*.dist-info
    pip_for_aarch64 install --quiet --upgrade --no-deps --no-index --target "$ROOT$SITE" "$wheel" >&2
}

MOUNTED=""
unmount_all() {
    for point in $MOUNTED; do umount -R "$point" 2>/dev/null || umount -R -l "$point" 2>/dev/null || true; done
    MOUNTED=""
}

mount_into_root() {
    # proc: platform, cpu counts and peak memory; sys: onnxruntime's CPU topology probe; dev: /dev/null, urandom.
    for what in proc sys dev; do
        mountpoint -q "$ROOT/$what" && continue
        case $what in
            proc) mount -t proc proc "$ROOT/proc" ;;
            *) mount --rbind "/$what" "$ROOT/$what" && mount --make-rslave "$ROOT/$what" ;;
        esac
        MOUNTED="$ROOT/$what $MOUNTED"
    done
}

run_in_root() {
    dir=$1; shift
    [ -d "$dir" ] || die "$dir: no such folder to copy into the root"
    # One check at a time: they share /check and the mounts.
    exec 9>"$ROOT.lock"
    flock 9
    rm -rf "$ROOT/check"
    cp -r "$dir" "$ROOT/check"
    trap 'unmount_all; rm -rf "$ROOT/check"' EXIT INT TERM
    mount_into_root
    status=0
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 PYTHONPATH="$SITE" \
        ${QEMU_CPU:+QEMU_CPU=$QEMU_CPU} /bin/sh -c 'cd /check && exec "$@"' sh "$@" || status=$?
    unmount_all
    # The results come back whatever the command's exit status, so a failure can be read.
    cp -r "$ROOT/check/." "$dir/"
    rm -rf "$ROOT/check"
    trap - EXIT INT TERM
    return $status
}

case ${1:-} in
    ensure) [ $# = 2 ] || die "usage: $0 ensure REQUIREMENTS"; require_tools; build_base; install_wheels "$2"; echo "$ROOT" ;;
    install) [ $# = 2 ] || die "usage: $0 install WHEEL"; require_tools
             [ -f "$ROOT/.edgekd-base" ] || die "no root at $ROOT: run '$0 ensure REQUIREMENTS' first"; install_edgekd "$2" ;;
    run) require_tools; [ -f "$ROOT/.edgekd-wheels" ] || die "no root at $ROOT: run '$0 ensure REQUIREMENTS' first"
         shift; run_in_root "$@" ;;
    status)
        command -v qemu-aarch64-static >/dev/null || { echo "qemu-aarch64-static is not installed (apt-get install qemu-user-static)"; exit 1; }
        grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || { echo "no binfmt_misc handler for qemu-aarch64 (update-binfmts --enable qemu-aarch64)"; exit 1; }
        [ -f "$ROOT/.edgekd-wheels" ] || { echo "no arm64 root at $ROOT (make arm64-check builds it)"; exit 1; }
        echo "arm64 root ready at $ROOT" ;;
    *) echo "usage: $0 ensure REQUIREMENTS | install WHEEL | run DIR CMD... | status" >&2; exit 2 ;;
esac
