# scratch.sh - sourced by the shell tests that run Tender as a user would
# (tests/docs, tests/integration/test_quickstart_demo.sh): a scratch
# directory that looks like a checkout, free ports, and the removal of
# every process started under it, whatever happens.
#
# A checkout-like directory: scripts/, docs/ and contrib/ are the source
# tree's (symlinks), build/ is this build tree, var/ is made there.  So the
# commands of the docs and scripts/quickstart run as written, and nothing is
# written into the source or build trees.

# shellcheck disable=SC2154 # srcdir and builddir are the caller's
# th_scratch_make DIR: fills DIR (which exists) as above.
th_scratch_make() {
	local dir=$1
	ln -s "$srcdir/scripts" "$dir/scripts"
	ln -s "$srcdir/docs" "$dir/docs"
	ln -s "$srcdir/contrib" "$dir/contrib"
	ln -s "$builddir" "$dir/build"
}

# th_free_ports N: N different loopback ports nothing listens on, on one
# line, from 32000-32699: above the blocks the C tests and the local
# provider take (20000-31999), below the kernel's ephemeral range (32768
# and up).
th_free_ports() {
	local want=$1 p got=" "
	for _ in $(seq 1 1000); do
		p=$((32000 + RANDOM % 700))
		[[ $got == *" $p "* ]] && continue
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
		got+="$p "
		want=$((want - 1))
		((want > 0)) || { echo $got; return 0; }
	done
	echo "th_free_ports: not enough free ports in 32000-32699" >&2
	return 1
}

# th_local_ports: a range of 100 ports for the local provider's nodes
# (it steps over ports in use, so sharing one with a C test is slow, not
# wrong).
th_local_ports() {
	local base=$((20000 + (RANDOM % 110) * 100))
	echo "$base-$((base + 99))"
}

# th_pids_under DIR: processes (other than this shell and its parents)
# whose command line names DIR/ or whose working directory is in DIR.
th_pids_under() {
	local dir=$1 p pid cwd args
	local -a skip=($$ "$BASHPID" "$PPID")
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[[ " ${skip[*]} " == *" $pid "* ]] && continue
		{ mapfile -d '' -t args <"$p/cmdline"; } 2>/dev/null || continue
		((${#args[@]})) || continue
		if [[ "${args[*]}" == *"$dir/"* ]]; then
			echo "$pid"
			continue
		fi
		cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
		[[ $cwd == "$dir" || $cwd == "$dir"/* ]] && echo "$pid"
	done
	return 0
}

# th_describe PIDS...: one line per process, for a failure message.
th_describe() {
	local pid
	for pid in "$@"; do
		printf '%s %s\n' "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
	done
}

# th_kill_under DIR: SIGKILL to every process th_pids_under finds, until
# none is left (bounded).
th_kill_under() {
	local dir=$1 pids
	for _ in $(seq 1 50); do
		pids=$(th_pids_under "$dir")
		[ -n "$pids" ] || return 0
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null
		sleep 0.1
	done
}
