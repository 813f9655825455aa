#!/usr/bin/env bash
# idle.sh - the CPU an idle daemon costs (issue 14: "an idle daemon with 100
# endpoints stays under 1% of a core"). Starts a daemon of its own,
# connects N namespaces to one network, publishes a port on a few of them,
# lets it settle, then measures over IDLE_SECS seconds:
#   - CPU: utime+stime of the daemon (/proc/PID/stat, all threads), as % of
#     one core
#   - wake-ups: voluntary + nonvoluntary context switches summed over the
#     daemon's threads (/proc/PID/task/*/status), per second; the voluntary
#     ones are the daemon's own (a thread sleeps and is woken again), the
#     nonvoluntary ones are preemptions and grow with the machine's load
#   - frames the endpoints sent, and frames written to them, in the window
#     (the endpoints' kernels keep sending IPv6 router solicitations, with
#     backoff, and the switch floods them to every endpoint)
#   - RSS and threads at the end (/proc/PID/status), goroutines (pprof over
#     the daemon's --debug-socket)
#
# Usage (as root):  benchmarks/idle.sh
# Environment knobs:
#   N=100          endpoints (namespaces), at most 16000
#   PUBLISHED=5    of which this many (at most N) publish a port (127.0.0.1:16200+i -> 80)
#   IDLE_SECS=30   measuring window (s)
#   SETTLE=5       wait after the last connect before measuring (s)
#   DAEMON_ARGS=   extra daemon flags, e.g. DAEMON_ARGS="--spin=-1ns"
#
# Output: progress on stderr; a one-line summary and a markdown table row on
# stdout.
#
# Isolation and network safety: the daemon runs in a namespace of its own
# (bi_PID_d, only loopback), so its published ports and any egress stay
# there; the endpoints are namespaces bi_PID_1..N. Nothing sends traffic
# on purpose: the only frames are the endpoint kernels' own (IPv6 router
# solicitations, MLD and the like) to the network's gateway. Everything
# this script made (namespaces, the daemon, its temp dir) is removed at
# exit, on Ctrl-C and on failure; only the daemon's own PID is killed.

set -u -o pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PATH=/usr/local/go/bin:/usr/sbin:/sbin:$PATH
N=${N:-100}
PUBLISHED=${PUBLISHED:-$(( ${N//[!0-9]/} + 0 < 5 ? ${N//[!0-9]/} + 0 : 5))}
IDLE_SECS=${IDLE_SECS:-30}
SETTLE=${SETTLE:-5}
DAEMON_ARGS=${DAEMON_ARGS:-}
CLK_TCK=$(getconf CLK_TCK)
PFX=bi_$$_ # namespaces: unique to this run, so parallel runs never meet

log() { printf '[%s] idle: %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "$*"
	exit 1
}

int_arg() { # NAME VALUE MIN MAX
	case $2 in
	'' | *[!0-9]*) die "$1=$2: want a whole number from $3 to $4" ;;
	esac
	[ "$2" -ge "$3" ] && [ "$2" -le "$4" ] || die "$1=$2: want a whole number from $3 to $4"
}

if [ "$(id -u)" != 0 ]; then
	echo "idle.sh: run as root (it creates network namespaces)" >&2
	exit 2
fi
int_arg N "$N" 1 16000
int_arg PUBLISHED "$PUBLISHED" 0 "$N"
int_arg IDLE_SECS "$IDLE_SECS" 1 3600
int_arg SETTLE "$SETTLE" 0 600

# ---------------------------------------------------------------- clean-up
TMP=$(mktemp -d /tmp/switchyard-idle.XXXXXX) || exit 1
DPID= # the daemon's pid, and its start time (so a recycled pid is never killed)
DSTART=

pfield() { # pid field -> field of /proc/pid/stat counted after "comm)" (1=state, 12=utime, 13=stime, 20=starttime)
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	echo "$s" | cut -d' ' -f"$2"
}

cleanup() {
	trap '' INT TERM
	if [ -n "$DPID" ] && [ "$(pfield "$DPID" 20 2>/dev/null)" = "$DSTART" ]; then
		kill -TERM "$DPID" 2>/dev/null
		for _ in $(seq 50); do
			[ "$(pfield "$DPID" 20 2>/dev/null)" = "$DSTART" ] || break
			[ "$(pfield "$DPID" 1 2>/dev/null)" = Z ] && break
			sleep 0.1
		done
		[ "$(pfield "$DPID" 20 2>/dev/null)" = "$DSTART" ] && [ "$(pfield "$DPID" 1)" != Z ] && kill -KILL "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
	fi
	local n
	for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PFX"); do
		ip netns del "$n" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# ---------------------------------------------------------------- daemon
SY=$TMP/switchyard
SOCK=$TMP/sy.sock
DBG=$TMP/debug.sock
sy() { "$SY" --socket "$SOCK" "$@"; }

log "building switchyard and switchyardd"
(cd "$REPO" && go build -o "$TMP/" ./cmd/switchyard ./cmd/switchyardd) || die "go build failed"
commit=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(cd "$REPO" && git status --porcelain 2>/dev/null | grep -qv '^??' && echo "+dirty")

ip netns add "${PFX}d" || die "ip netns add ${PFX}d failed"
ip -n "${PFX}d" link set lo up
# shellcheck disable=SC2086 # DAEMON_ARGS is a list of flags
ip netns exec "${PFX}d" "$SY" --socket "$SOCK" --log-level warn daemon \
	--state-dir "$TMP/state" --debug-socket "$DBG" $DAEMON_ARGS \
	>"$TMP/daemon.log" 2>&1 </dev/null &
DPID=$!
DSTART=$(pfield "$DPID" 20) || die "the daemon exited at once: $(cat "$TMP/daemon.log")"
for _ in $(seq 100); do
	sy network ls >/dev/null 2>&1 && break
	[ -d "/proc/$DPID" ] || break
	sleep 0.1
done
sy network ls >/dev/null 2>&1 || die "the daemon did not come up: $(tail -5 "$TMP/daemon.log")"

# ---------------------------------------------------------------- endpoints
log "connecting $N endpoints ($PUBLISHED with a published port)"
sy network create idle --subnet 10.216.0.0/16 >/dev/null || die "network create failed"
t0=$(date +%s.%N)
for i in $(seq "$N"); do
	ip netns add "$PFX$i" || die "ip netns add $PFX$i failed"
	pub=()
	[ "$i" -le "$PUBLISHED" ] && pub=(-p "127.0.0.1:$((16200 + i)):80")
	sy connect idle --netns "/var/run/netns/$PFX$i" "${pub[@]}" >/dev/null ||
		die "connect $PFX$i failed"
done
t1=$(date +%s.%N)
got=$(sy endpoint ls --network idle | tail -n +2 | grep -c .)
[ "$got" = "$N" ] || die "endpoint ls shows $got endpoints, want $N"
ports=$(sy port ls | grep -c ' -> 127.0.0.1:')
[ "$ports" -ge "$PUBLISHED" ] || die "port ls shows $ports ports, want $PUBLISHED"
log "$N endpoints connected in $(printf "%.1f" "$(echo "$t1 - $t0" | bc -l)") s; settling ${SETTLE}s"
sleep "$SETTLE"

# ---------------------------------------------------------------- measure
cpu_ticks() { # utime+stime of all the daemon's threads
	local u s
	u=$(pfield "$DPID" 12) && s=$(pfield "$DPID" 13) || return 1
	echo $((u + s))
}
ctx_switches() { # "VOLUNTARY NONVOLUNTARY", summed over the daemon's threads
	cat /proc/"$DPID"/task/*/status 2>/dev/null |
		awk '$1 == "voluntary_ctxt_switches:" { v += $2 } $1 == "nonvoluntary_ctxt_switches:" { n += $2 } END { print v + 0, n + 0 }'
}
goroutines() {
	curl -s --max-time 5 --unix-socket "$DBG" 'http://x/debug/pprof/goroutine?debug=1' |
		awk 'NR == 1 && /total/ { print $NF; exit }'
}
frames() { # frames the endpoints sent, and frames written to them: "RX TX"
	sy endpoint ls --network idle --format json |
		awk -F'[:,]' '/"rx_frames"/ { rx += $2 } /"tx_frames"/ { tx += $2 } END { print rx + 0, tx + 0 }'
}
status_field() { awk -v k="$1:" '$1 == k { print $2; exit }' "/proc/$DPID/status"; }

log "measuring ${IDLE_SECS}s"
read -r rx0 tx0 < <(frames)
c0=$(cpu_ticks) || die "the daemon is gone"
read -r v0 n0 < <(ctx_switches)
w0=$(date +%s.%N)
sleep "$IDLE_SECS"
c1=$(cpu_ticks) || die "the daemon is gone"
read -r v1 n1 < <(ctx_switches)
w1=$(date +%s.%N)
read -r rx1 tx1 < <(frames)
rss_kb=$(status_field VmRSS)
threads=$(status_field Threads)
gor=$(goroutines)
[ -n "$gor" ] || gor=n/a

wall=$(echo "$w1 - $w0" | bc -l)
cpu_s=$(echo "($c1 - $c0) / $CLK_TCK" | bc -l)
pct=$(printf '%.2f' "$(echo "100 * $cpu_s / $wall" | bc -l)")
wups=$(printf '%.0f' "$(echo "($v1 - $v0 + $n1 - $n0) / $wall" | bc -l)")
vol=$(printf '%.0f' "$(echo "($v1 - $v0) / $wall" | bc -l)")
rss_mb=$(printf '%.1f' "$(echo "$rss_kb / 1024" | bc -l)")
cpu_ms=$(printf '%.0f' "$(echo "$cpu_s * 1000" | bc -l)")
wall_s=$(printf '%.1f' "$wall")
fin=$((rx1 - rx0)) fout=$((tx1 - tx0))
load=$(cut -d' ' -f1 /proc/loadavg)
verdict=under
[ "$(echo "$pct >= 1" | bc)" = 1 ] && verdict="NOT under"

echo "idle daemon, $N endpoints ($PUBLISHED published), ${DAEMON_ARGS:-default flags}, commit $commit$dirty: CPU ${pct}% of a core (${cpu_ms} ms in ${wall_s} s; $verdict 1%), ${wups} context switches/s (${vol} voluntary: the daemon's own wake-ups; the rest preemptions), frames from/to the endpoints ${fin}/${fout}, RSS ${rss_mb} MiB, ${threads} threads, ${gor} goroutines, load ${load}"
echo "| $commit$dirty | $N | ${DAEMON_ARGS:-(default)} | $wall_s | $pct | $wups ($vol) | $fin/$fout | $rss_mb | $threads | $gor | $load |"
