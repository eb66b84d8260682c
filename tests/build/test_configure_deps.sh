#!/bin/sh
# Removing any one dependency makes ./configure stop with the name of the
# Debian package to install (TAP).  Each dependency's .pc file is hidden by
# pointing pkg-config at a copy of its search path without that one file.
set -u
srcdir=${srcdir:-.}
deps="libcurl:libcurl4-openssl-dev libcrypto:libssl-dev sqlite3:libsqlite3-dev
libmicrohttpd:libmicrohttpd-dev libzip:libzip-dev jansson:libjansson-dev
cmocka:libcmocka-dev zlib:zlib1g-dev"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

pcpath=$(pkg-config --variable pc_path pkg-config)
set -- $deps
echo "1..$#"
n=0
for dep in $deps; do
	n=$((n + 1))
	module=${dep%%:*}
	package=${dep#*:}
	rm -rf "$work/pc" "$work/build"
	mkdir -p "$work/pc" "$work/build"
	for dir in $(echo "$pcpath" | tr ':' ' '); do
		[ -d "$dir" ] || continue
		for pc in "$dir"/*.pc; do
			[ -e "$pc" ] || continue
			[ "$(basename "$pc")" = "$module.pc" ] && continue
			[ -e "$work/pc/$(basename "$pc")" ] || ln -s "$pc" "$work/pc/"
		done
	done
	out=$(cd "$work/build" && PKG_CONFIG_LIBDIR="$work/pc" PKG_CONFIG_PATH= \
		"$srcdir/configure" -q 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && echo "$out" | grep -q "install the Debian package $package"; then
		echo "ok $n - without $module, configure names $package"
	else
		echo "not ok $n - without $module, configure names $package"
		echo "$out" | sed 's/^/# /' | tail -n 5
	fi
done
