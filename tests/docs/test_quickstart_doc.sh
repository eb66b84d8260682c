#!/usr/bin/env bash
# Runs the commands of docs/quickstart.md as written (tests/docs/doctest),
# against the real tender-server, agents and HAProxy of this build, and
# checks what they print (TAP).
#
# What differs from the page, and why (nothing else does):
# - the ports: the server's 8080, HAProxy's 8000 and 9999 become free ports
#   (in the commands, in what they print, and in the copy of
#   contrib/haproxy-educa.cfg the page starts HAProxy with), since other
#   programs and tests may hold those;
# - the directory: the commands run in a scratch directory that looks like
#   a checkout (scripts/, docs/ and contrib/ of the source tree, build/ this
#   build tree; tests/support/scratch.sh), so var/ is made there;
# - the environment: TENDER_PORT (the same port), TENDER_LOCAL_PORTS (a
#   range of its own) and TENDER_QUICKSTART_NO_BUILD=1 (the build is this
#   one: no apt-get, no make) for scripts/quickstart; HOME is the scratch
#   directory, and no TENDER_* variable of the caller's is seen.
# Whatever happens, every process started under the scratch directory is
# killed, and the test fails if one was still running after the page's own
# stop (Ctrl-C to scripts/quickstart, kill of HAProxy).
set -euo pipefail

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
	echo "Usage: $0 (run by make check from the build directory; srcdir= the source tree)"
}
case ${1:-} in -h | --help) usage; exit 0 ;; esac

srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=$(pwd -P)
# shellcheck source=../support/scratch.sh
. "$srcdir/tests/support/scratch.sh"

if ! PATH=$PATH:/usr/sbin command -v haproxy >/dev/null; then
	echo "1..0 # SKIP haproxy is not installed (scripts/bootstrap installs it)"
	exit 0
fi
for f in tender-server tender-agent tender distributions/educa-1.0.zip \
	distributions/educa-1.1.zip distributions/educa-1.2-broken.zip; do
	[ -e "$builddir/$f" ] || { echo "Bail out! $builddir/$f is missing (make all distributions)"; exit 1; }
done

tmp=$(cd "$(mktemp -d "${TMPDIR:-/tmp}/tender-doc.XXXXXX")" && pwd -P)
cleanup() {
	local rc=$?
	[ -s "$tmp/var/haproxy.pid" ] && kill -KILL "$(cat "$tmp/var/haproxy.pid")" 2>/dev/null
	th_kill_under "$tmp"
	if ((rc)) && [ -f "$tmp/var/server.log" ]; then
		echo "# the end of the server's log:"
		tail -n 30 "$tmp/var/server.log" | sed 's/^/#   /'
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

read -r server front admin < <(th_free_ports 3)
[ -n "$admin" ] || { echo "Bail out! no free ports"; exit 1; }
th_scratch_make "$tmp"
rm "$tmp/contrib"
mkdir "$tmp/contrib"
sed -e "s/127\.0\.0\.1:8000/127.0.0.1:$front/g" -e "s/127\.0\.0\.1:9999/127.0.0.1:$admin/g" \
	"$srcdir/contrib/haproxy-educa.cfg" >"$tmp/contrib/haproxy-educa.cfg"
mkdir "$tmp/home"

for v in $(env | sed -n 's/^\(TENDER_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
local_ports=$(th_local_ports)
export HOME=$tmp/home TENDER_PORT=$server TENDER_LOCAL_PORTS=$local_ports \
	TENDER_QUICKSTART_NO_BUILD=1 PATH=$PATH:/usr/sbin
echo "# scratch $tmp; server 127.0.0.1:$server, HAProxy 127.0.0.1:$front (runtime API $admin)," \
	"local ports $TENDER_LOCAL_PORTS"

# The page's test points, and one of ours after them: nothing left running.
set +e
(cd "$tmp" && "$srcdir/tests/docs/doctest" -s "127.0.0.1:8080=127.0.0.1:$server" \
	-s "127.0.0.1:8000=127.0.0.1:$front" -s "127.0.0.1:9999=127.0.0.1:$admin" \
	docs/quickstart.md) |
	awk '/^1\.\.[0-9]+$/ { n = substr($0, 4) + 1; print "1.." n; fflush(); next }
	     { print; fflush() }
	     END { if (!n) print "1..1" }'
rc=${PIPESTATUS[0]}
set -e
left=$(th_pids_under "$tmp")
count=$( (cd "$tmp" && "$srcdir/tests/docs/doctest" --list docs/quickstart.md) | grep -c .)
if ((rc)); then
	echo "ok $((count + 1)) - nothing the page started is left running # SKIP the page did not run to its end"
elif [ -z "$left" ]; then
	echo "ok $((count + 1)) - nothing the page started is left running"
else
	echo "not ok $((count + 1)) - nothing the page started is left running"
	# shellcheck disable=SC2086
	th_describe $left | sed 's/^/#   /'
	rc=1
fi
exit "$rc"
