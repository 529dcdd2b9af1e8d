#!/bin/bash
# threads.sh PID SECONDS: each thread of PID with its context switches (its
# wake-ups) a second over SECONDS, and the system calls it was found in
# most, sampled every 10 ms from /proc (202 futex, 35 nanosleep, 281
# epoll_pwait on amd64; "running" when in none). A Go process's monitor
# thread (sysmon) is the one that wakes most while found in futex: it naps
# between looks too briefly to be caught in nanosleep.
set -eu
pid=$1 secs=$2
switches() { awk '/ctxt_switches/ { s += $2 } END { print s + 0 }' "$1/status" 2>/dev/null || echo 0; }
declare -A before seen
for t in /proc/"$pid"/task/*; do before[${t##*/}]=$(switches "$t"); done
end=$(( $(date +%s) + secs ))
while [ "$(date +%s)" -lt "$end" ]; do
	for t in /proc/"$pid"/task/*; do
		nr=$(cut -d' ' -f1 "$t/syscall" 2>/dev/null) || continue
		key="${t##*/} $nr"
		seen[$key]=$(( ${seen[$key]:-0} + 1 ))
	done
	sleep 0.01
done
total=0
for t in /proc/"$pid"/task/*; do
	tid=${t##*/}
	n=$(( ($(switches "$t") - ${before[$tid]:-0}) / secs ))
	total=$(( total + n ))
	top=$(for k in "${!seen[@]}"; do [ "${k% *}" = "$tid" ] && echo "${seen[$k]}x${k#* }"; done | sort -rn | head -2 | tr '\n' ' ')
	printf 'thread %s: %d wake-ups/s, in syscall (samples x nr): %s\n' "$tid" "$n" "$top"
done
printf 'all threads: %d wake-ups/s\n' "$total"
