#!/usr/bin/env bash
# scripts/quickstart --demo end to end, as a user runs it (TAP): it comes
# up (HAProxy, the server, educa 1.0 and 1.1, three targets serving through
# HAProxy), the rolling update it prints works with no failed request, a
# second --demo over what a killed one left starts afresh, and Ctrl-C stops
# everything, leaving nothing running.
#
# It runs in a scratch directory that looks like a checkout
# (tests/support/scratch.sh) with free ports (TENDER_PORT, TENDER_DEMO_PORT,
# TENDER_DEMO_ADMIN_PORT), a port range of its own for the nodes
# (TENDER_LOCAL_PORTS) and this build (TENDER_QUICKSTART_NO_BUILD=1).
# Whatever happens, every process started under it is killed.
set -euo pipefail

case ${1:-} in
-h | --help)
	sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
	echo "Usage: $0 (run by make check from the build directory; srcdir= the source tree)"
	exit 0
	;;
esac

srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=$(pwd -P)
# shellcheck source=../support/scratch.sh
. "$srcdir/tests/support/scratch.sh"

if ! PATH=$PATH:/usr/sbin command -v haproxy >/dev/null; then
	echo "1..0 # SKIP haproxy is not installed (scripts/bootstrap installs it)"
	exit 0
fi
for f in tender-server tender-agent tender distributions/educa-1.0.zip distributions/educa-1.1.zip; do
	[ -e "$builddir/$f" ] || { echo "Bail out! $builddir/$f is missing (make all distributions)"; exit 1; }
done

tmp=$(cd "$(mktemp -d "${TMPDIR:-/tmp}/tender-demo.XXXXXX")" && pwd -P)
qs_pid=
cleanup() {
	local rc=$?
	[ -n "$qs_pid" ] && kill -KILL -- "-$qs_pid" 2>/dev/null
	th_kill_under "$tmp"
	if ((rc)); then
		for f in "$tmp"/quickstart.*.log "$tmp/var/demo/server.log"; do
			[ -f "$f" ] || continue
			echo "# the end of $f:"
			tail -n 25 "$f" | sed 's/^/#   /'
		done
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

th_scratch_make "$tmp"
mkdir "$tmp/home"
for v in $(env | sed -n 's/^\(TENDER_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
read -r server front admin < <(th_free_ports 3)
[ -n "$admin" ] || { echo "Bail out! no free ports"; exit 1; }
local_ports=$(th_local_ports)
export HOME=$tmp/home TENDER_PORT=$server TENDER_DEMO_PORT=$front TENDER_DEMO_ADMIN_PORT=$admin \
	TENDER_LOCAL_PORTS=$local_ports TENDER_QUICKSTART_NO_BUILD=1
echo "# scratch $tmp; server $TENDER_PORT, HAProxy $front (runtime API $TENDER_DEMO_ADMIN_PORT)," \
	"local ports $TENDER_LOCAL_PORTS"

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
fail() {
	n=$((n + 1))
	echo "not ok $n - $1"
	shift
	for line in "$@"; do echo "# $line"; done
	exit 1
}

# start NAME: scripts/quickstart --demo in the background, in a process
# group of its own with SIGINT's default action, as in a terminal
# (without job control a background command would ignore SIGINT); waits
# until it says the demo runs.
start() {
	local log=$tmp/quickstart.$1.log deadline=$((SECONDS + 150))
	set -m
	(cd "$tmp" && exec scripts/quickstart --demo) </dev/null >"$log" 2>&1 &
	qs_pid=$!
	set +m
	until grep -q '^Press Ctrl-C to stop everything' "$log"; do
		kill -0 "$qs_pid" 2>/dev/null || fail "scripts/quickstart --demo ($1) came up" \
			"it exited; its output:" "$(sed 's/^/  /' "$log")"
		((SECONDS < deadline)) || fail "scripts/quickstart --demo ($1) came up within 150 s"
		sleep 0.2
	done
}

echo "1..7"

# ------------------------------------------------------------ 1
start first
log=$tmp/quickstart.first.log
grep -q 'targets running and healthy: 3/3; UP in HAProxy: 3/3' "$log" &&
	grep -q "console: *http://127.0.0.1:$TENDER_PORT/" "$log" &&
	grep -q 'admin token: *tn_' "$log" ||
	fail "the demo says where the console is, the token, and that 3 targets serve" "$(cat "$log")"
ok "scripts/quickstart --demo: three targets run educa 1.0 behind HAProxy ($SECONDS s)"

# ------------------------------------------------------------ 2
seen=$(for _ in 1 2 3 4 5 6; do curl -s --max-time 5 "http://127.0.0.1:$front/"; done |
	sed -n 's/^educa-web 1\.0\.0 on \(t-[a-z0-9]*\): hello from 1\.0$/\1/p' | sort -u | wc -l)
[ "$seen" = 3 ] || fail "HAProxy takes turns over the three targets" "distinct targets seen: $seen"
ok "curl 127.0.0.1:$front/ reaches all three targets, on educa 1.0"

# ------------------------------------------------------------ 3
# The commands it printed, run as printed (in the scratch directory), with
# traffic going on: no request fails, and the cluster ends on 1.1.
export_line=$(sed -n 's/^ *\(export PATH=.*\)$/\1/p' "$log")
create_line=$(sed -n 's/^ *\(tender rollout create .*\)$/\1/p' "$log")
[ -n "$export_line" ] && [ -n "$create_line" ] ||
	fail "the demo prints the export line and the rollout command" "$(cat "$log")"
traffic=$tmp/traffic
(
	end=$((SECONDS + 60))
	while ((SECONDS < end)) && [ ! -e "$tmp/traffic.stop" ]; do
		curl -s --max-time 5 -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$front/" || echo 000
		sleep 0.02
	done >"$traffic"
) &
traffic_pid=$!
out=$(cd "$tmp" && eval "$export_line" && eval "$create_line" 2>&1) ||
	fail "the printed rollout command works" "$out"
id=$(sed -n 's/^created rollout \(r-[a-z0-9]*\) .*/\1/p' <<<"$out")
watch=$(cd "$tmp" && eval "$export_line" && tender rollout approve "$id" &&
	tender rollout show "$id" --watch 2>&1) || fail "rollout $id succeeded" "$watch"
touch "$tmp/traffic.stop"
wait "$traffic_pid"
total=$(grep -c . "$traffic" || true)
bad=$(grep -vc '^200$' "$traffic" || true)
((total > 20)) && ((bad == 0)) ||
	fail "no request failed during the rolling update" "$bad of $total requests failed"
curl -s "http://127.0.0.1:$front/" | grep -q '^educa-web 1\.1\.0 on t-' ||
	fail "HAProxy serves educa 1.1 after the update"
ok "the printed commands roll educa 1.1 out, one node at a time, $total requests, none failed"

# ------------------------------------------------------------ 4
# A demo that was killed rather than stopped leaves its server, nodes and
# HAProxy behind; the next one stops them and starts afresh.
kill -KILL -- "-$qs_pid"
wait "$qs_pid" 2>/dev/null || true
qs_pid=
[ -n "$(th_pids_under "$tmp/var/demo")" ] || fail "a killed demo leaves its processes (test setup)"
start second
log=$tmp/quickstart.second.log
grep -q 'processes an earlier demo left running' "$log" &&
	grep -q 'starting afresh: removing var/demo' "$log" ||
	fail "a second --demo stops what the first left and starts afresh" "$(cat "$log")"
curl -s "http://127.0.0.1:$front/" | grep -q '^educa-web 1\.0\.0 on t-' ||
	fail "the second demo serves educa 1.0 again"
ok "a second --demo stops what a killed one left, starts afresh, and serves educa 1.0"

# ------------------------------------------------------------ 5
kill -INT -- "-$qs_pid"
deadline=$((SECONDS + 60))
while kill -0 "$qs_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
kill -0 "$qs_pid" 2>/dev/null && fail "Ctrl-C stops the demo within 60 s"
rc=0
wait "$qs_pid" || rc=$?
qs_pid=
((rc == 130)) || fail "after Ctrl-C the demo exits 130" "exit status $rc"
grep -q 'nothing of the demo is left running' "$log" ||
	fail "Ctrl-C says what it stopped" "$(tail -n 8 "$log")"
ok "Ctrl-C stops the demo (exit 130): $(grep -c '^quickstart: \(removing\|stopping\)' "$log") steps"

# ------------------------------------------------------------ 6
left=$(th_pids_under "$tmp")
# shellcheck disable=SC2086
[ -z "$left" ] || fail "nothing of the demo is left running" "$(th_describe $left)"
ok "nothing of the demo is left running (no server, agent, bundle or HAProxy)"

# ------------------------------------------------------------ 7
busy=
for p in "$TENDER_PORT" "$front" "$TENDER_DEMO_ADMIN_PORT"; do
	(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && busy="$busy $p"
done
[ -z "$busy" ] || fail "the demo's ports are free again" "in use:$busy"
ok "the demo's ports are free again"
