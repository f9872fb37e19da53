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
    procps curl python3 patch time strace systemd
    qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-s390x-linux-gnu libc6-dev-s390x-cross
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
# Debian's snapshot (git 2022-03-20) miscompiles every pairs() loop under CHECKHOOK into an
# empty endless loop (the ITERN loop detection counts the hook check's IR); our first patch
# fixes that. The second lets the rule budget stop long C library calls, which otherwise run
# to their end (hooks run only between bytecode instructions): the pattern matcher (a
# backtracking pattern takes hours), table.sort (quadratic on adversarial input) and
# table.insert (a position far below 1); and it makes plain string.find linear (memmem). The
# third makes an error's search for its handler linear in the C frames it crosses (a rule whose
# __tostring calls string.format on itself nests thousands, and each error took over a second).
# The fourth backports upstream's fix of the frame an error raised from compiled code starts
# from: a rule whose compiled loop called os.clock and then hit the Lua memory cap took the
# engine down (SIGSEGV in lj_err_mem) instead of being quarantined.
# The stamp file names the patches applied, so a changed set rebuilds.
# The mirror (and the keyring it names, if any) of this machine's first 'deb' source for the
# suite bookworm: "URI [KEYRING]". Debian 12 images list their sources in deb822 form
# (sources.list.d/debian.sources); a Debian 12 installed with the installer, or upgraded from
# 11, in one-line form in sources.list. The paths are apt's own (apt-config).
apt_list=/etc/apt/sources.list apt_parts=/etc/apt/sources.list.d
eval "$(apt-config shell apt_list Dir::Etc::sourcelist/f apt_parts Dir::Etc::sourceparts/d)"
debian_mirror() {
    local f
    {
        for f in "$apt_parts"/*.sources; do
            [ -f "$f" ] || continue
            awk 'function flush() {
                     if (deb && suite && uri != "" && !off && !done) { print uri, key; done = 1 }
                     deb = suite = off = 0; uri = key = ""
                 }
                 /^[ \t]*$/ { flush(); next }
                 tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
                 tolower($1) == "uris:" { uri = $2 }
                 tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite = 1 }
                 tolower($1) == "signed-by:" { key = $2 }
                 tolower($1) == "enabled:" && tolower($2) == "no" { off = 1 }
                 END { flush() }' "$f"
        done
        for f in "$apt_list" "$apt_parts"/*.list; do
            [ -f "$f" ] || continue
            awk '$1 == "deb" {
                     line = $0; key = ""
                     sub(/^[ \t]*deb[ \t]+/, "", line)
                     if (substr(line, 1, 1) == "[") {
                         n = split(substr(line, 2, index(line, "]") - 2), o, /[ \t]+/)
                         for (i = 1; i <= n; i++) if (o[i] ~ /^signed-by=/) key = substr(o[i], 11)
                         line = substr(line, index(line, "]") + 1)
                     }
                     split(line, w, " ")
                     if (w[2] == "bookworm") { print w[1], key; exit }
                 }' "$f"
        done
    } | head -n1
}

luajit_stamp="checkhook itern-fix-1 cfunc-hook-1 unwind-search-1 ontrace-error-frame-1"
if [ ! -f "$deps/luajit/lib/libluajit-5.1.a" ] ||
    [ "$(cat "$deps/luajit/.sipscope-build" 2>/dev/null)" != "$luajit_stamp" ]; then
    srcdir="$deps/luajit-src"
    rm -rf "$srcdir"
    mkdir -p "$srcdir/lists/partial"
    mirror=$(debian_mirror)
    if [ -z "$mirror" ]; then
        echo "install-deps: apt has no Debian bookworm mirror (a 'deb' entry for the suite" \
            "bookworm in $apt_list or $apt_parts) to fetch LuaJIT's source from" >&2
        exit 1
    fi
    uri=${mirror%% *}
    keyring=${mirror#"$uri"}
    keyring=${keyring# }
    echo "deb-src ${keyring:+[signed-by=$keyring] }$uri bookworm main" >"$srcdir/sources.list"
    aptopt=(-o "Dir::Etc::SourceList=$srcdir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$srcdir/lists")
    apt-get "${aptopt[@]}" update -q >/dev/null
    (cd "$srcdir" && apt-get "${aptopt[@]}" source --download-only -q luajit >/dev/null)
    (cd "$srcdir" && dpkg-source -x --no-check luajit_*.dsc tree >/dev/null)
    patch -d "$srcdir/tree" -p1 -s <"$top/scripts/luajit-checkhook-itern.patch"
    patch -d "$srcdir/tree" -p1 -s <"$top/scripts/luajit-cfunc-hook.patch"
    patch -d "$srcdir/tree" -p1 -s <"$top/scripts/luajit-unwind-search.patch"
    patch -d "$srcdir/tree" -p1 -s <"$top/scripts/luajit-ontrace-error-frame.patch"
    # LuaJIT's own build prints compiler warnings; keep them in a log shown only on failure.
    if ! make -C "$srcdir/tree" -j"$(nproc)" PREFIX="$deps/luajit" \
        XCFLAGS="-DLUAJIT_ENABLE_CHECKHOOK" CFLAGS="-O2 -fPIC" >"$deps/luajit-build.log" 2>&1 ||
        ! make -C "$srcdir/tree" install PREFIX="$deps/luajit" >>"$deps/luajit-build.log" 2>&1; then
        tail -n 40 "$deps/luajit-build.log" >&2
        echo "install-deps: building LuaJIT failed (log: $deps/luajit-build.log)" >&2
        exit 1
    fi
    ln -sf "$(ls "$deps"/luajit/bin/luajit-2* | head -n1)" "$deps/luajit/bin/luajit" 2>/dev/null || true
    echo "$luajit_stamp" >"$deps/luajit/.sipscope-build"
    rm -rf "$srcdir"
fi

echo "install-deps: all dependencies present (LuaJIT in $deps/luajit, promtool in $deps/bin)"
