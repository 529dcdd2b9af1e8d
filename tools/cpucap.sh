#!/bin/sh
# cpucap.sh COMMAND [ARG...]: runs COMMAND in a cpu cgroup of its own that
# may use CAP (default 0.25) of one CPU, then removes the cgroup. Every
# process COMMAND starts (an agent binary an end-to-end test runs, a Python
# peer) is in the cgroup too and shares the cap.
#
# Made for `go test -exec`, which calls it with a test binary and its flags
# in the package's directory (make test-capped): only the test binaries are
# capped, not the compiler. The exit status is COMMAND's.
#
# It needs to create a cgroup: root, with cgroup v1's cpu controller
# mounted (cpu.cfs_quota_us) or cgroup v2 with the cpu controller enabled
# for the children of this process's cgroup (cpu.max). It changes no
# machine-wide setting; without either it fails and says why.
set -eu

if [ $# -eq 0 ]; then
	echo "usage: CAP=0.25 $0 COMMAND [ARG...]" >&2
	exit 2
fi
cap=${CAP:-0.25}
period=100000
quota=$(awk -v c="$cap" -v p="$period" 'BEGIN {
	if (c !~ /^[0-9]*\.?[0-9]+$/ || c <= 0) exit 1
	q = int(c * p + 0.5); if (q < 1000) q = 1000; print q }') || {
	echo "cpucap: CAP=$cap is not a positive number of CPUs" >&2
	exit 2
}

# parent prints the directory under which to create the cgroup and its
# version (1 or 2), or nothing: this process's own cgroup, so that a cap
# nests inside any limit this process already has.
parent() {
	# cgroup v1: a hierarchy with the cpu controller.
	awk '$3 == "cgroup" { n = split($4, o, ","); for (i = 1; i <= n; i++) if (o[i] == "cpu") { print $2; exit } }' /proc/mounts |
		while read -r mnt; do
			rel=$(awk -F: '{ n = split($2, c, ","); for (i = 1; i <= n; i++) if (c[i] == "cpu") { print $3; exit } }' /proc/self/cgroup)
			if [ -w "$mnt$rel" ] && [ -f "$mnt$rel/cpu.cfs_quota_us" ]; then
				echo "1 $mnt$rel"
			elif [ -w "$mnt" ] && [ -f "$mnt/cpu.cfs_quota_us" ]; then
				echo "1 $mnt"
			fi
			exit 0
		done
	# cgroup v2: the cpu controller enabled for this cgroup's children.
	mnt=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	[ -n "$mnt" ] || return 0
	rel=$(awk -F: '$1 == "0" { print $3; exit }' /proc/self/cgroup)
	for dir in "$mnt$rel" "$mnt"; do
		if [ -w "$dir" ] && grep -qw cpu "$dir/cgroup.subtree_control" 2>/dev/null; then
			echo "2 $dir"
			return 0
		fi
	done
}

where=$(parent | head -n 1)
if [ -z "$where" ]; then
	cat >&2 <<-EOF
	cpucap: cannot cap the CPU of the tests: no writable cgroup with the cpu controller.
	  cgroup v1 needs a cpu hierarchy (cpu.cfs_quota_us) writable by this user (root);
	  cgroup v2 needs "cpu" in cgroup.subtree_control of this process's cgroup
	  (or of the root cgroup) and write access to it.
	  mounts: $(awk '$3 ~ /^cgroup/ { printf "%s %s; ", $3, $2 }' /proc/mounts)
	EOF
	exit 1
fi
version=${where%% *}
name=$(basename "$1")
dir=${where#* }/logagent-cap-$$-$name

# This process joins the cgroup and becomes COMMAND (exec), so that
# COMMAND gets go test's signals and exit status untouched. A reaper,
# started before the join and so outside the cgroup, waits for COMMAND
# to exit, ends what it left running (its processes, by PID: they would
# keep the cgroup alive), and removes the cgroup. It keeps stderr, for its
# messages; go test sees the output end once it has exited. It starts
# right after the mkdir, so that the cgroup is removed too when setting
# its limit or joining it fails (set -e exits before the exec).
pid=$$
mkdir "$dir"
(
	# It must outlive go test: a message to a closed stderr fails, no more.
	trap '' HUP INT TERM QUIT PIPE
	member() { grep -qx "$pid" "$dir/cgroup.procs" 2>/dev/null; }
	# Joined, or failed before it could.
	while ! member && kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	while member; do sleep 0.1; done
	left=$(cat "$dir/cgroup.procs" 2>/dev/null || true)
	if [ -n "$left" ]; then
		kill -KILL $left 2>/dev/null || true
		echo "cpucap: processes left running by $name: $(echo $left); killed" >&2 || true
	fi
	i=0
	while ! rmdir "$dir" 2>/dev/null; do
		# What they started meanwhile.
		kill -KILL $(cat "$dir/cgroup.procs" 2>/dev/null) 2>/dev/null || true
		i=$((i + 1))
		if [ $i -ge 100 ]; then
			echo "cpucap: could not remove $dir" >&2 || true
			break
		fi
		sleep 0.1
	done
) </dev/null >/dev/null &
if [ "$version" = 1 ]; then
	echo "$period" >"$dir/cpu.cfs_period_us"
	echo "$quota" >"$dir/cpu.cfs_quota_us"
else
	echo "$quota $period" >"$dir/cpu.max"
fi
echo $$ >"$dir/cgroup.procs"
exec "$@"
