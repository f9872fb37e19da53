#!/usr/bin/env bash
# scripts/install-deps.sh builds LuaJIT from Debian's source package, fetched through a private
# apt source list made from the machine's own Debian mirror. That mirror is read from apt's
# sources whatever their form: deb822 (.sources, Debian 12 images) or one-line (sources.list,
# a Debian 12 installed with the installer or upgraded from 11, which has no debian.sources).
# The script runs in a fake tree with stubs of apt-config (pointing at a fake /etc/apt),
# apt-get (which records the private source list), dpkg-query, dpkg-source, patch and make;
# the expected source lines are written out by hand.
#
# Usage: install_deps_sh.sh SOURCE_DIR
set -uo pipefail
src=$1
. "$(dirname "$0")/lib.sh"

tree=$work/repo bin=$work/bin etc=$work/etc/apt
mkdir -p "$tree/scripts" "$tree/build/deps/bin" "$bin" "$etc/sources.list.d"
cp "$src/scripts/install-deps.sh" "$tree/scripts/"
touch "$tree/scripts/luajit-checkhook-itern.patch" "$tree/scripts/luajit-cfunc-hook.patch" \
    "$tree/scripts/luajit-unwind-search.patch" "$tree/scripts/luajit-ontrace-error-frame.patch"
printf '#!/bin/sh\n' >"$tree/build/deps/bin/promtool" # present: not fetched again
chmod +x "$tree/build/deps/bin/promtool"
stub() { # NAME BODY
    printf '#!/bin/sh\n%s\n' "$2" >"$bin/$1"
    chmod +x "$bin/$1"
}
stub dpkg-query "printf 'install ok installed'"
stub apt-config "echo \"apt_list='$etc/sources.list'\"; echo \"apt_parts='$etc/sources.list.d/'\""
# apt-get -o Dir::Etc::SourceList=FILE ... update: keep FILE's content.
stub apt-get "for a; do case \$a in Dir::Etc::SourceList=*) cp \"\${a#*=}\" '$work/srclist';; esac; done"
stub dpkg-source 'mkdir -p tree'
stub patch ':'
# make ... install PREFIX=DIR: the library whose presence means LuaJIT is built.
# shellcheck disable=SC2016 # expanded by the stub
stub make 'for a; do case $a in PREFIX=*) p=${a#PREFIX=} ;; esac; done
case " $* " in *" install "*) mkdir -p "$p/lib" && touch "$p/lib/libluajit-5.1.a" ;; esac'
chmod +x "$tree/scripts/install-deps.sh"

run() { # expected source line, or "" for a refusal; the fake /etc/apt is already written
    rm -f "$work/srclist"
    PATH="$bin:$PATH" "$tree/scripts/install-deps.sh" >"$work/out" 2>"$work/err"
    echo $? >"$work/rc"
}

# Debian 12 image: deb822, the archive first, then security.
cat >"$etc/sources.list.d/debian.sources" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
run
check "deb822: status 0" test "$(cat "$work/rc")" = 0
check "deb822: the archive's mirror and keyring" test "$(cat "$work/srclist" 2>/dev/null)" = \
    "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main"

# Installed with the installer: one-line sources.list, security first, no debian.sources.
rm "$etc/sources.list.d/debian.sources"
rm -rf "$tree/build/deps/luajit"
cat >"$etc/sources.list" <<'SRC'
#deb cdrom:[Debian GNU/Linux 12.5.0 _Bookworm_ - Official amd64 NETINST]/ bookworm main
deb http://security.debian.org/debian-security bookworm-security main non-free-firmware
deb http://ftp.fr.debian.org/debian/ bookworm main non-free-firmware
deb-src http://ftp.fr.debian.org/debian/ bookworm main non-free-firmware
SRC
run
check "sources.list: status 0" test "$(cat "$work/rc")" = 0
check "sources.list: the archive's mirror, no keyring" \
    test "$(cat "$work/srclist" 2>/dev/null)" = "deb-src http://ftp.fr.debian.org/debian/ bookworm main"

# One-line with options, in sources.list.d.
rm "$etc/sources.list"
rm -rf "$tree/build/deps/luajit"
echo "deb [arch=amd64 signed-by=/usr/share/keyrings/m.gpg] http://m.example/debian bookworm main" \
    >"$etc/sources.list.d/mirror.list"
run
check "options: the keyring of signed-by" test "$(cat "$work/srclist" 2>/dev/null)" = \
    "deb-src [signed-by=/usr/share/keyrings/m.gpg] http://m.example/debian bookworm main"

# No bookworm source: a refusal that says why.
rm "$etc/sources.list.d/mirror.list"
rm -rf "$tree/build/deps/luajit"
run
check "no mirror: status 1" test "$(cat "$work/rc")" = 1
check "no mirror: says so" grep -q "apt has no Debian bookworm mirror" "$work/err"

finish "$work/err"
