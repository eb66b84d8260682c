#!/usr/bin/env bash
# `make install DESTDIR=...` installs what docs/operations.md says (TAP):
# the programs, the systemd units (KillMode=process for the server, an
# EnvironmentFile for the agent), the sysusers.d file, the man pages made
# from --help, the docs and the examples; `make uninstall` takes them away.
# Run by make check from the build directory.
set -euo pipefail

case ${1:-} in
-h | --help)
	sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
	exit 0
	;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tender-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/root
# A make of our own, not a job of the make that runs this test.
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory "$@"; }
# The value of a make variable of this build's Makefile.
var() { printf 'print-%%:\n\t@echo $($*)\n' >"$tmp/print.mk"; mk -s -f Makefile -f "$tmp/print.mk" "print-$1"; }

bindir=$(var bindir)
unitdir=$(var systemdsystemunitdir)
sysusersdir=$(var sysusersdir)
mandir=$(var mandir)
docdir=$(var docdir)
help2man=$(var HELP2MAN)

echo "1..8"
n=0
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	n=$((n + 1))
	if "$@" >"$tmp/out" 2>&1; then
		echo "ok $n - $what"
	else
		echo "not ok $n - $what"
		sed 's/^/# /' "$tmp/out" | tail -n 20
	fi
}
has() { for f in "$@"; do [ -s "$dest$f" ] || { echo "missing: $dest$f"; return 1; }; done; }

check "make install DESTDIR=... succeeds" mk install DESTDIR="$dest"
check "the programs, runnable from where they are installed" sh -c "
	for p in tender-server tender-agent tender; do
		'$dest$bindir/'\$p --version | grep -q \"^\$p \" || { echo \"\$p --version failed\"; exit 1; }
	done"
if [ "$unitdir" = no ]; then
	n=$((n + 1))
	echo "ok $n - the systemd units # SKIP configured --without-systemdsystemunitdir"
else
	check "the systemd units and their users" has "$unitdir/tender-server.service" \
		"$unitdir/tender-agent.service" "$sysusersdir/tender.conf"
fi
server_unit=$dest$unitdir/tender-server.service
agent_unit=$dest$unitdir/tender-agent.service
check "tender-server.service: KillMode=process, its own user and state directory, the installed binary" \
	sh -c "[ '$unitdir' = no ] || { grep -qx 'KillMode=process' '$server_unit' &&
		grep -qx 'User=tender' '$server_unit' && grep -qx 'StateDirectory=tender' '$server_unit' &&
		grep -q '^ExecStart=$bindir/tender-server ' '$server_unit' &&
		grep -q '^u tender ' '$dest$sysusersdir/tender.conf'; }"
check "tender-agent.service: an EnvironmentFile for the server and token, KillMode=process" \
	sh -c "[ '$unitdir' = no ] || { grep -q '^EnvironmentFile=-.*/default/tender-agent\$' '$agent_unit' &&
		grep -qx 'KillMode=process' '$agent_unit' && grep -q '$bindir/tender-agent' '$agent_unit' &&
		! grep -q '@[a-z]*@' '$agent_unit' '$server_unit'; }"
if [ -z "$help2man" ]; then
	n=$((n + 1))
	echo "ok $n - man pages # SKIP help2man was not found by configure"
else
	check "man pages made from --help" sh -c "
		for p in tender-server tender-agent tender; do
			f='$dest$mandir/man1/'\$p.1
			[ -s \"\$f\" ] || { echo \"missing: \$f\"; exit 1; }
			grep -q '^\\.SH OPTIONS\\|^\\.SH DESCRIPTION' \"\$f\" || { echo \"\$f has no body\"; exit 1; }
		done"
fi
check "the docs and the examples" has "$docdir/quickstart.md" "$docdir/operations.md" \
	"$docdir/troubleshooting.md" "$docdir/examples/haproxy-educa.cfg" \
	"$docdir/examples/tender-server.default.example" "$docdir/examples/tender-agent.default.example"
check "make uninstall takes them away" sh -c "
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory uninstall DESTDIR='$dest' >/dev/null &&
	left=\$(find '$dest' -type f) && { [ -z \"\$left\" ] || { echo \"left: \$left\"; exit 1; }; }"
