#!/bin/bash
# tunnel6ab.sh: Switchyard's tunnel with IPv4 and with IPv6 inside the
# overlay, measured alternately (v4, v6, v4, v6, ...) in one topology, so
# that a machine whose load drifts weighs on both families alike. bench.sh
# tunnel6 measures T3 and T3-6 a minute apart, each in its own topology;
# on a shared machine the load between the two moves their ratio by ±20 %
# (issue 10). This script answers "is IPv6 inside slower than IPv4?" with
# a ratio per pair and the CPU each family costs per GB received.
#
#   sudo benchmarks/tunnel6ab.sh            # PAIRS=6 DUR=5
#
# Topology (as bench.sh's T3): host namespaces tab<pid>_ha/_hb joined by a
# veth (underlay 10.214.60.0/24), one benchmarks/tunnelbench per host,
# containers tab<pid>_ca/_cb with 10.214.61.{2,3}/24 and
# fd00:214:61::{2,3}/64; iperf3 -c in _ca, -s in _cb, one TCP stream.
#
# Per pair it prints Gbit/s of each family, their ratio, and CPU seconds
# per GB received: the two tunnelbench processes (which include the
# containers' kernel work on TAP reads and writes: the receiving TCP runs
# in the writer's system call), the two iperf3 processes (as iperf3
# reports them), and the whole machine's busy share. At the end, the
# median ratio.
#
# Network safety: all traffic stays inside the namespaces this script
# creates; every iperf3 run is bounded by timeout; everything is removed
# on exit (processes by the PIDs this script started).

set -u -o pipefail
export LC_ALL=C
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }
for need in iperf3 jq ip timeout go; do
	command -v "$need" >/dev/null || { echo "missing tool: $need" >&2; exit 1; }
done

HERE=$(cd "$(dirname "$0")" && pwd)
PAIRS=${PAIRS:-6}
DUR=${DUR:-5}
P=tab$$
WORK=$(mktemp -d)
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null; done
	[ -f "$WORK/iperf.pid" ] && kill "$(cat "$WORK/iperf.pid")" 2>/dev/null
	sleep 0.5
	for p in ha hb ca cb; do ip netns del "${P}_$p" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$HERE/.." && go build -o "$WORK/tunnelbench" ./benchmarks/tunnelbench) || exit 1
for n in ha hb ca cb; do
	ip netns add "${P}_$n" && ip -n "${P}_$n" link set lo up || exit 1
done
ip -n "${P}_ha" link add eth0 type veth peer name eth0 netns "${P}_hb"
ip -n "${P}_ha" addr add 10.214.60.1/24 dev eth0
ip -n "${P}_hb" addr add 10.214.60.2/24 dev eth0
ip -n "${P}_ha" link set eth0 up
ip -n "${P}_hb" link set eth0 up
for h in a b; do
	n=$([ $h = a ] && echo 1 || echo 2)
	"$WORK/tunnelbench" -host "${P}_h$h" -local "10.214.60.$n" -peer "10.214.60.$((3 - n))" \
		-container "${P}_c$h" -ip "10.214.61.$((n + 1))/24" -ip6 "fd00:214:61::$((n + 1))/64" \
		>"$WORK/tb-$h.log" 2>&1 &
	PIDS+=($!)
done
for _ in $(seq 100); do
	grep -q '^ready' "$WORK/tb-a.log" 2>/dev/null && grep -q '^ready' "$WORK/tb-b.log" 2>/dev/null && break
	sleep 0.1
done
grep -q '^ready' "$WORK/tb-a.log" && grep -q '^ready' "$WORK/tb-b.log" ||
	{ echo "tunnelbench did not come up: $(cat "$WORK"/tb-*.log)" >&2; exit 1; }
ip netns exec "${P}_cb" iperf3 -s -D -p 5201 --pidfile "$WORK/iperf.pid" || exit 1
sleep 0.5
ip netns exec "${P}_ca" ping -c 2 -i 0.2 -W 1 10.214.61.3 >/dev/null
ip netns exec "${P}_ca" ping -c 2 -i 0.2 -W 1 fd00:214:61::3 >/dev/null

ticks() { # utime+stime of the given pids, in clock ticks
	local s=0 p
	for p in "$@"; do s=$((s + $(awk '{print $14+$15}' "/proc/$p/stat"))); done
	echo $s
}
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
HZ=$(getconf CLK_TCK)

# run FAMILY : one iperf3 run; prints "Gbit/s tb-s/GB iperf3-s/GB busy%"
run() {
	local dst=10.214.61.3 t0 t1 b0 b1 j
	[ "$1" = 6 ] && dst=fd00:214:61::3
	t0=$(ticks "${PIDS[@]}") b0=$(busy)
	j=$(timeout $((DUR + 15)) ip netns exec "${P}_ca" iperf3 -c "$dst" -p 5201 -t "$DUR" -J) || { echo "0 0 0 0"; return; }
	t1=$(ticks "${PIDS[@]}") b1=$(busy)
	echo "$j" | jq -r --argjson tb $((t1 - t0)) --argjson busy $((b1 - b0)) --argjson hz "$HZ" '
		(.end.sum_received.bytes / 1e9) as $gb | .end.sum_received.seconds as $s |
		"\(.end.sum_received.bits_per_second / 1e9) \($tb / $hz / $gb)" +
		" \((.end.cpu_utilization_percent.host_total + .end.cpu_utilization_percent.remote_total) / 100 * $s / $gb)" +
		" \($busy / $hz / $s * 100)"'
}

printf "%-5s %-17s %-6s %-27s %-27s %s\n" pair "Gbit/s v4 / v6" ratio "tunnelbench CPU-s/GB v4/v6" "iperf3 CPU-s/GB v4/v6" "machine busy % v4/v6"
ratios=()
for i in $(seq "$PAIRS"); do
	read -r g4 c4 i4 b4 < <(run 4)
	read -r g6 c6 i6 b6 < <(run 6)
	r=$(awk -v a="$g4" -v b="$g6" 'BEGIN{ if (a > 0) printf "%.2f", b / a; else print "nan" }')
	ratios+=("$r")
	awk -v i="$i" -v g4="$g4" -v g6="$g6" -v r="$r" -v c4="$c4" -v c6="$c6" -v i4="$i4" -v i6="$i6" -v b4="$b4" -v b6="$b6" \
		'BEGIN{ printf "%-5d %5.2f / %-9.2f %-6s %5.2f / %-19.2f %5.2f / %-19.2f %3.0f / %.0f\n", i, g4, g6, r, c4, c6, i4, i6, b4, b6 }'
done
printf "%s\n" "${ratios[@]}" | sort -g | awk '{a[NR]=$1} END{ m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "median ratio v6/v4: %.2f over %d pairs\n", m, NR }'
# The tunnels' counters (coalescing, segmentation), printed as they stop.
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
wait "${PIDS[@]}" 2>/dev/null
PIDS=()
grep -h '^tunnel' "$WORK"/tb-*.log
