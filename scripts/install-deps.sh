#!/usr/bin/env bash
# Installs everything sipscope needs to build, run and test on Debian 12, then builds the
# CHECKHOOK-enabled LuaJIT from Debian's source package into build/deps/luajit (DESIGN.md §9).
# Idempotent: a second run only checks. Needs root (apt-get).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
deps="$top/build/deps"
export DEBIAN_FRONTEND=noninteractive

packages=(
    build-essential cmake pkg-config clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool
    libpcap-dev libmicrohttpd-dev libcap-dev lua-cjson lua-busted lua-check sip-tester
    tshark tcpdump tcpreplay sngrep libclang-rt-14-dev iproute2 valgrind dpkg-dev
    procps curl python3 time
)

need_apt=0
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_apt=1
done
if [ "$need_apt" = 1 ]; then
    apt-get update -q
    # wireshark-common asks whether non-root users may capture; the default answer is fine.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

mkdir -p "$deps"

# promtool: only the binary, taken out of Debian's prometheus package without installing the
# server and its service.
if [ ! -x "$deps/bin/promtool" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -q prometheus >/dev/null && dpkg-deb -x prometheus_*.deb root)
    mkdir -p "$deps/bin"
    cp "$tmp/root/usr/bin/promtool" "$deps/bin/promtool"
    rm -rf "$tmp"
fi

# LuaJIT with LUAJIT_ENABLE_CHECKHOOK so that the rule budget can stop a loop inside compiled
# code. The machine has no deb-src line: derive one from its own Debian source, in a private
# apt configuration that leaves the system's untouched.
if [ ! -f "$deps/luajit/lib/libluajit-5.1.a" ]; then
    srcdir="$deps/luajit-src"
    rm -rf "$srcdir"
    mkdir -p "$srcdir/lists/partial"
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    keyring=$(awk '/^Signed-By:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    echo "deb-src [signed-by=$keyring] $uri bookworm main" >"$srcdir/sources.list"
    aptopt=(-o "Dir::Etc::SourceList=$srcdir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$srcdir/lists")
    apt-get "${aptopt[@]}" update -q >/dev/null
    (cd "$srcdir" && apt-get "${aptopt[@]}" source --download-only -q luajit >/dev/null)
    (cd "$srcdir" && dpkg-source -x --no-check luajit_*.dsc tree >/dev/null)
    make -C "$srcdir/tree" -j"$(nproc)" PREFIX="$deps/luajit" \
        XCFLAGS="-DLUAJIT_ENABLE_CHECKHOOK" CFLAGS="-O2 -fPIC" >/dev/null
    make -C "$srcdir/tree" install PREFIX="$deps/luajit" >/dev/null
    ln -sf "$(ls "$deps"/luajit/bin/luajit-2* | head -n1)" "$deps/luajit/bin/luajit" 2>/dev/null || true
    rm -rf "$srcdir"
fi

echo "install-deps: all dependencies present (LuaJIT in $deps/luajit, promtool in $deps/bin)"
