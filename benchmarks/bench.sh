#!/usr/bin/env bash
# bench.sh - Switchyard measured side by side with the tools it replaces, in
# one run: kernel loopback/veth/bridge, vde_switch, socat, docker-proxy,
# slirp4netns, pasta, rootlesskit, and Switchyard's own scenarios (sc_sy_*).
# It is the project's copy of the shared peer harness (shared/bench), with
# the Switchyard scenarios added; compare ratios within one run, not
# absolute numbers across runs (the machines are shared and noisy).
#
# Usage (as root):   benchmarks/bench.sh [-l] [scenario ...]
#   l2               : the L2 switch set: kernel bridge (MTU 1500 and 65520),
#                      vde_switch, and Switchyard namespace-to-namespace
#   no scenario args : run every scenario in DEFAULT_SCENARIOS
#   -l               : list all scenarios and exit
#   all              : DEFAULT_SCENARIOS plus EXTRA_SCENARIOS
#   l2-6, ports6, tunnel6 : IPv6 inside the namespaces, each next to its
#                      IPv4 row in the same run (L2V6_SCENARIOS, ...)
#   latency          : the default port path and the switch against their
#                      anchors, the daemon with its default GOMAXPROCS and
#                      with 1 (run it with RR_RUNS=3)
#   egress           : a container's connections out to the host's loopback:
#                      slirp4netns, pasta's tap path, Switchyard's gateway
#   goals            : every row issue 14's goals compare (GOALS_SCENARIOS);
#                      benchmarks/goals.sh turns runs of it into the goals'
#                      ratios (run it three times, with ORDER=reverse and
#                      ORDER=shuffle for two of them)
# Environment knobs:
#   DUR=5      seconds per iperf3 run          RUNS=3    TCP runs per case (median kept)
#   RRDUR=3    seconds per rr / crr run        RR_RUNS=1 rr/crr runs (median kept)
#   UDP=1      0 skips the UDP tests           SCEN_MAX=150  watchdog per scenario (s)
#   OUT=dir    where detail logs go (default /tmp/switchyard-bench.out)
#   ORDER=reverse|shuffle  run the scenarios in reverse or shuffled order
#   SYSCALLS=1 count the forwarder's system calls and context switches per
#              round trip and per connection (perf stat over RR_PIDS, else
#              FWD_PIDS, while rr and crr run): detail.txt and stderr. The
#              counting slows the forwarder: take speeds from a run without it.
#
# Output: one markdown table row per scenario on stdout (progress on stderr,
# per-run raw numbers and tool logs under $OUT).
#
# Network safety: all traffic goes to 127.0.0.0/8, ::1, or to 10.213.0.0/16
# and fd00:213::/32 addresses assigned inside network namespaces this
# script creates (named bp_*). The
# user-mode tools (slirp4netns, pasta, rootlesskit) run inside an isolated
# "host" namespace bp_h whose only route is a dead-end veth, so nothing they do
# can leave the machine. Every client run is bounded by `timeout`.
#
# Adding a scenario (e.g. the new Go switch/proxy): write a function
#   sc_<name>() {
#     ...build topology with ns_add / veth_to / host_ns / spawn...
#     start_servers <prefix cmd...>     # iperf3 -s on 5201 (tcp+udp), rr echo on 5202
#     CLIENT=(<prefix cmd...>)          # how to run a client (empty = root ns)
#     DST=<addr> IPORT=<iperf port> RPORT=<rr port> HAS_UDP=0|1
#     FWD_PIDS="<pids charged as forwarder CPU>"
#     RR_PIDS="<pids that carry the rr port, if not FWD_PIDS>"  (optional)
#     measure "<row label>"
#   }
# and append <name> to DEFAULT_SCENARIOS. Processes started with `spawn` and
# every netns/link named bp* are cleaned up automatically after each scenario.

set -u -o pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DUR=${DUR:-5}
RUNS=${RUNS:-3}
RRDUR=${RRDUR:-3}
RR_RUNS=${RR_RUNS:-1}
UDP=${UDP:-1}
SCEN_MAX=${SCEN_MAX:-150}
OUT=${OUT:-/tmp/switchyard-bench.out}
STATE=/run/switchyard-bench     # pid records survive a crashed run -> idempotent cleanup
WORK=$STATE/work
RR=$WORK/rr
PATH=/usr/local/go/bin:/usr/sbin:/sbin:$PATH
SUBID_LINE="root:1000000:65536"  # temporary, only for rootlesskit; removed at exit

L2_SCENARIOS="bridge bridge_mtu65520 vde sy_l2 sy_l2_nooffload sy_l2_mtu65520"
# IPv6 (issue 10): each IPv6 row next to its IPv4 row, the kernel's first
L2V6_SCENARIOS="bridge bridge6 sy_l2_ds sy_l2_v6"
# Latency (issue 14): the default port path and the switch against their
# anchors, each with the daemon as it runs by default and with one P
LATENCY_SCENARIOS="docker_proxy sy_proxy_netstack sy_proxy_netstack_1p bridge sy_l2 sy_l2_1p"
# Issue 14's goals: each Switchyard path and the rows its goals compare it
# with (benchmarks/goals.sh reads the ratios out of the table)
GOALS_SCENARIOS="docker_proxy sy_proxy_netstack slirp4netns pasta_tap bridge sy_l2 sy_l2_readers vde tun_kernel tun_sy_vxlan tun_sy_readers sy_proxy_netstack_mtu65520"
PORTV6_SCENARIOS="docker_proxy docker_proxy6 sy_proxy_netstack_ds sy_proxy_netstack6 sy_proxy_splice_ds sy_proxy_splice6"
DEFAULT_SCENARIOS="loopback veth bridge vde socat docker_proxy slirp4netns slirp4netns_mtu1500 pasta_splice pasta_tap rootlesskit_builtin rootlesskit_slirp4netns slirp4netns_egress pasta_egress_splice pasta_egress_tap"
EXTRA_SCENARIOS="pasta_tap_mtu1500 veth_mtu65520"
# Egress to the host's loopback: the user-mode peers and Switchyard's gateway
EGRESS_SCENARIOS="slirp4netns_egress pasta_egress_tap sy_egress"

CLK_TCK=$(getconf CLK_TCK)
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# ---------------------------------------------------------------- processes
pstat() { # pid -> fields after "comm)": 1=state 2=ppid ... 12=utime 13=stime 14=cutime 15=cstime 20=starttime
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	echo "${s##*) }"
}
pstart() { local f; f=$(pstat "$1") || return 1; set -- $f; echo "${20}"; }

record_pid() { # pid: remember it (with start time, so a recycled pid is never killed)
	local st
	st=$(pstart "$1") || return 0
	echo "$1 $st" >>"$STATE/pids"
}

# spawn NAME cmd... : start in background, log to $OUT/NAME.log, record pid in SPAWNED
spawn() {
	local name=$1
	shift
	"$@" >"$OUT/$name.log" 2>&1 </dev/null &
	SPAWNED=$!
	CHILDREN="${CHILDREN:-} $SPAWNED"
	record_pid "$SPAWNED"
}

descendants() { # pid -> pid and all its descendants
	local p=$1 c
	echo "$p"
	for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do descendants "$c"; done
}

kill_recorded() {
	[ -s "$STATE/pids" ] || return 0
	local pid st all=() p
	while read -r pid st; do
		[ -n "$pid" ] || continue
		[ "$(pstart "$pid" 2>/dev/null)" = "$st" ] || continue
		all+=($(descendants "$pid"))
	done <"$STATE/pids"
	: >"$STATE/pids"
	[ ${#all[@]} -gt 0 ] || return 0
	kill -TERM "${all[@]}" 2>/dev/null
	for _ in $(seq 30); do
		local alive=0
		for p in "${all[@]}"; do [ -d /proc/"$p" ] && [ "$(pstat "$p" | cut -d' ' -f1)" != Z ] && alive=1; done
		[ $alive = 0 ] && return 0
		sleep 0.1
	done
	kill -KILL "${all[@]}" 2>/dev/null
	sleep 0.2
}

cleanup_net() {
	local n l
	for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^bp_'); do ip netns del "$n" 2>/dev/null; done
	for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^bp'); do ip link del "$l" 2>/dev/null; done
	rm -rf "$WORK/vde.ctl" "$WORK/vde.mgmt" "$WORK/slirp.sock" "$WORK/rlk" "$WORK"/*.pid "$WORK/sy" "$WORK"/sy-?
}

cleanup_scenario() { kill_recorded; cleanup_net; }

cleanup_all() {
	cleanup_scenario
	if [ -f "$STATE/subid.added" ]; then
		sed -i "\|^$SUBID_LINE\$|d" /etc/subuid /etc/subgid
		rm -f "$STATE/subid.added"
	fi
}

# ---------------------------------------------------------------- topology helpers
ns_add() { ip netns add "$1" && ip -n "$1" link set lo up; }

# veth_to NS HOSTIF HOSTADDR NSADDR : veth pair root-ns(HOSTIF) <-> NS(eth0)
veth_to() {
	ip link add "$2" type veth peer name eth0 netns "$1"
	ip addr add "$3" dev "$2"
	ip link set "$2" up
	ip -n "$1" addr add "$4" dev eth0
	ip -n "$1" link set eth0 up
}

# host_ns : isolated stand-in for "the host" for user-mode tools. lo + a dead-end
# veth carrying 10.213.100.1/24 and a default route to 10.213.100.254 (nobody).
host_ns() {
	ns_add bp_h
	ip -n bp_h link add bph0 type veth peer name bph1
	ip -n bp_h addr add 10.213.100.1/24 dev bph0
	ip -n bp_h link set bph0 up
	ip -n bp_h link set bph1 up
	ip -n bp_h route add default via 10.213.100.254 dev bph0
}

# wait_listen PORT proto cmd-prefix... : wait (<=5 s) until something listens
wait_listen() {
	local port=$1 proto=$2
	shift 2
	local flag=-Hltn
	[ "$proto" = udp ] && flag=-Hlun
	for _ in $(seq 50); do
		[ -n "$("$@" ss $flag "sport = :$port" 2>/dev/null)" ] && return 0
		sleep 0.1
	done
	log "timeout waiting for $proto/$port"
	return 1
}

# start_servers prefix... : iperf3 server (tcp+udp 5201) and rr echo server (5202)
# SRV_BIND / SRV_IPORT / SRV_RPORT override address and ports; SRV_BIND=::
# serves both families (the IPv6 scenarios).
start_servers() {
	local bind=${SRV_BIND:-} ip=${SRV_IPORT:-5201} rp=${SRV_RPORT:-5202}
	local b=()
	[ -n "$bind" ] && b=(-B "$bind")
	spawn "iperf3-s-$ip" "$@" timeout 600 iperf3 -s "${b[@]}" -p "$ip" --idle-timeout 30 --rcv-timeout 5000
	spawn "rr-s-$rp" "$@" timeout 600 "$RR" server -l "$(hp "${bind:-0.0.0.0}" "$rp")"
	wait_listen "$ip" tcp "$@" && wait_listen "$rp" tcp "$@"
}

children_named() { # pid comm -> pids of direct children with that comm
	local c
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		[ "$(cat /proc/"$c"/comm 2>/dev/null)" = "$2" ] && echo "$c"
	done
}

# ---------------------------------------------------------------- measurement
median() { # numbers... (non-numeric ignored)
	printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | awk '{a[NR]=$1} END{if(NR==0){print "n/a"} else if(NR%2){print a[(NR+1)/2]} else {printf "%.2f\n",(a[NR/2]+a[NR/2+1])/2}}'
}

fwd_ticks() { # [pids] : sum utime+stime+cutime+cstime over pids (default FWD_PIDS)
	local t=0 p f
	for p in ${1:-${FWD_PIDS:-}}; do
		f=$(pstat "$p") || continue
		set -- $f
		t=$((t + ${12} + ${13} + ${14} + ${15}))
	done
	echo $t
}
# hp ADDR PORT : ADDR:PORT, with an IPv6 ADDR in brackets
hp() { case $1 in *:*) echo "[$1]:$2" ;; *) echo "$1:$2" ;; esac; }

sys_ticks() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6}' /proc/stat; }
now() { date +%s.%N; }

iperf_tcp() { # streams -> Gbit/s (receiver side)
	local j
	j=$(timeout $((DUR + 15)) "${CLIENT[@]}" iperf3 -c "$DST" -p "$IPORT" -t "$DUR" -P "$1" --connect-timeout 3000 -J 2>>"$OUT/client.err")
	jq -r '.end.sum_received.bits_per_second / 1e9 | . * 100 | round / 100' <<<"$j" 2>/dev/null || echo fail
}

iperf_udp() { # -> "Gbit/s loss%" (receiver side)
	local j
	j=$(timeout $((DUR + 15)) "${CLIENT[@]}" iperf3 -c "$DST" -p "$IPORT" -t "$DUR" -u -b 0 -l 1400 --connect-timeout 3000 -J 2>>"$OUT/client.err")
	jq -r '.end.sum_received | "\(.bits_per_second / 1e9 | . * 100 | round / 100) \(.lost_percent | round)"' <<<"$j" 2>/dev/null ||
		{ echo "fail fail"; echo "$j" | jq -c '{error}' >>"$OUT/client.err" 2>&1; }
}

rr_run() { timeout $((RRDUR + 10)) "${CLIENT[@]}" "$RR" "$1" -c "$(hp "$DST" "$RPORT")" -d "${RRDUR}s" 2>>"$OUT/client.err"; }
kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# per_op TICKS0 TICKS1 RR_OUTPUT : the forwarder's CPU time per operation
# of that rr or crr run, in µs (clock ticks are 10 ms: a 3 s run at 50 %
# of a core reads to within 1 %)
per_op() {
	awk -v d=$(($2 - $1)) -v hz="$CLK_TCK" -v n="$(kv n "$3")" 'BEGIN {if (n > 0) printf "%.0f", 1e6 * d / hz / n; else print "-"}'
}

# rr_counted MODE : rr_run MODE, its output extended with the forwarder's
# (RR_PIDS, else FWD_PIDS) CPU time per operation (round trip or
# connection) as cpu_us_per_op=, and with SYSCALLS=1 its system calls and
# context switches per operation (perf stat) as sys_per_op= cs_per_op=.
rr_counted() {
	local r pids=${RR_PIDS:-${FWD_PIDS:-}} pp="" f t0
	if [ "${SYSCALLS:-0}" = 1 ] && [ -n "$pids" ]; then
		f="$OUT/perfstat.$1"
		perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "${pids// /,}" -o "$f" 2>>"$OUT/client.err" &
		pp=$!
		sleep 0.2 # perf attaches before the client starts
	fi
	t0=$(fwd_ticks "$pids")
	r=$(rr_run "$1")
	r="$r cpu_us_per_op=$(per_op "$t0" "$(fwd_ticks "$pids")" "$r")"
	if [ -n "$pp" ]; then
		kill -INT "$pp"
		wait "$pp"
		r="$r $(awk -F, -v n="$(kv n "$r")" '$3 ~ /sys_enter/ {s = $1} $3 == "context-switches" {c = $1}
			END {if (n > 0) printf "sys_per_op=%.1f cs_per_op=%.1f", s / n, c / n}' "$f")"
	fi
	echo "$r"
}

# counted MODE UNIT RR_OUTPUT : the count line of an rr_counted run, if
# it counted system calls
counted() {
	local sys
	sys=$(kv sys_per_op "$3")
	[ -n "$sys" ] && echo "$1: $sys syscalls, $(kv cs_per_op "$3") context switches per $2"
}

measure() {
	local label=$1 i t1=() t4=() rrs=() p50=() p99=() crs=() udp="-" fwd="-" sysc counts=()
	local c0 c1 s0 s1 a b e0 e1
	log "$label: TCP 1 stream x$RUNS"
	c0=$(fwd_ticks)
	read -r a b < <(sys_ticks)
	e0=$(now)
	for i in $(seq "$RUNS"); do t1+=("$(iperf_tcp 1)"); done
	sleep 0.3 # let forked forwarders (socat) be reaped into cutime
	c1=$(fwd_ticks)
	e1=$(now)
	read -r s0 s1 < <(sys_ticks)
	[ -n "${FWD_PIDS:-}" ] && fwd=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v e0="$e0" -v e1="$e1" 'BEGIN{printf "%.0f", 100*d/hz/(e1-e0)}')
	sysc=$(awk -v db=$((s0 - a)) -v dt=$((s1 - b)) -v n="$(nproc)" 'BEGIN{printf "%.0f", (dt>0)?100*n*db/dt:0}')
	log "$label: TCP 4 streams x$RUNS"
	for i in $(seq "$RUNS"); do t4+=("$(iperf_tcp 4)"); done
	if [ "$UDP" = 1 ] && [ "${HAS_UDP:-0}" = 1 ]; then
		log "$label: UDP"
		udp=$(iperf_udp)
		udp="${udp% *} (${udp#* }%)"
	fi
	local r c rc0 rc1 re0 re1 rrfwd="-" cpurr=() cpucrr=()
	rc0=$(fwd_ticks "${RR_PIDS:-}")
	re0=$(now)
	for i in $(seq "$RR_RUNS"); do
		log "$label: rr + crr"
		r=$(rr_counted rr)
		rrs+=("$(kv rr_per_s "$r")") p50+=("$(kv p50_us "$r")") p99+=("$(kv p99_us "$r")") cpurr+=("$(kv cpu_us_per_op "$r")")
		c=$(counted rr "round trip" "$r") && counts+=("$c")
		r=$(rr_counted crr)
		crs+=("$(kv conns_per_s "$r")") cpucrr+=("$(kv cpu_us_per_op "$r")")
		c=$(counted crr connection "$r") && counts+=("$c")
	done
	rc1=$(fwd_ticks "${RR_PIDS:-}")
	re1=$(now)
	[ -n "${FWD_PIDS:-}" ] && rrfwd=$(awk -v d=$((rc1 - rc0)) -v hz="$CLK_TCK" -v e0="$re0" -v e1="$re1" 'BEGIN{printf "%.0f", 100*d/hz/(e1-e0)}')
	{
		echo "## $label  (client: ${CLIENT[*]:-root-ns} -> $DST:$IPORT/$RPORT; fwd pids: ${FWD_PIDS:-none})"
		echo "tcp1: ${t1[*]}"
		echo "tcp4: ${t4[*]}"
		echo "udp: $udp"
		echo "rr/s: ${rrs[*]}  p50: ${p50[*]}  p99: ${p99[*]}"
		echo "crr/s: ${crs[*]}"
		echo "fwd cpu% (1-stream phase): $fwd   host cpu% of $(($(nproc) * 100)): $sysc"
		echo "fwd cpu% (rr and crr phase): $rrfwd"
		[ -n "${RR_PIDS:-${FWD_PIDS:-}}" ] && echo "fwd cpu µs per round trip: ${cpurr[*]}  per connection: ${cpucrr[*]}"
		if [ ${#counts[@]} -gt 0 ]; then printf '%s\n' "${counts[@]/#/forwarder (pids ${RR_PIDS:-$FWD_PIDS}) }"; fi
	} >>"$OUT/detail.txt"
	if [ ${#counts[@]} -gt 0 ]; then printf '%s\n' "${counts[@]/#/$label: }" >&2; fi
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" \
		"$(median "${t1[@]}")" "$(median "${t4[@]}")" "$udp" \
		"$(median "${rrs[@]}")" "$(median "${p50[@]}")" "$(median "${p99[@]}")" \
		"$(median "${crs[@]}")" "$fwd" "$sysc"
}

# ---------------------------------------------------------------- scenarios
sc_loopback() { # 1. loopback baseline (root ns)
	SRV_BIND=127.0.0.1 SRV_IPORT=15201 SRV_RPORT=15202 start_servers
	CLIENT=() DST=127.0.0.1 IPORT=15201 RPORT=15202 HAS_UDP=1 FWD_PIDS=""
	measure "1 loopback 127.0.0.1 (root ns)"
}

sc_veth() { # 2. root ns 10.213.1.1 <-> container 10.213.1.2 over veth
	ns_add bp_c1
	veth_to bp_c1 bpv0 10.213.1.1/24 10.213.1.2/24
	start_servers ip netns exec bp_c1
	CLIENT=() DST=10.213.1.2 IPORT=5201 RPORT=5202 HAS_UDP=1 FWD_PIDS=""
	measure "2 kernel veth root->ns"
}

sc_veth_mtu65520() { # extra: veth with 65520 MTU
	ns_add bp_c1
	veth_to bp_c1 bpv0 10.213.1.1/24 10.213.1.2/24
	ip link set bpv0 mtu 65520
	ip -n bp_c1 link set eth0 mtu 65520
	start_servers ip netns exec bp_c1
	CLIENT=() DST=10.213.1.2 IPORT=5201 RPORT=5202 HAS_UDP=1 FWD_PIDS=""
	measure "2b kernel veth root->ns, MTU 65520"
}

# bridge_up MTU [6] : nsA and nsB on a kernel bridge through veth pairs;
# with 6 they have IPv6 addresses too (fd00:213:3::/64) and the client
# reaches the servers over IPv6
bridge_up() {
	ns_add bp_a
	ns_add bp_b
	ip link add bp_br0 type bridge stp_state 0 forward_delay 0
	ip link set bp_br0 up
	local x n=1
	for x in a b; do
		ip link add "bpv$x" type veth peer name eth0 netns "bp_$x"
		ip link set "bpv$x" mtu "$1"
		ip link set "bpv$x" master bp_br0 up
		ip -n "bp_$x" link set eth0 mtu "$1"
		ip -n "bp_$x" addr add "10.213.3.$n/24" dev eth0
		[ "${2:-}" = 6 ] && ip -n "bp_$x" addr add "fd00:213:3::$n/64" dev eth0 nodad
		ip -n "bp_$x" link set eth0 up
		n=$((n + 1))
	done
	if [ "${2:-}" = 6 ]; then
		SRV_BIND=:: start_servers ip netns exec bp_b
		ip netns exec bp_a ping -6 -c 2 -i 0.2 -W 1 fd00:213:3::2 >/dev/null 2>&1 || log "ping -6 bp_a -> bp_b failed"
		CLIENT=(ip netns exec bp_a) DST=fd00:213:3::2 IPORT=5201 RPORT=5202 HAS_UDP=1 FWD_PIDS=""
		return
	fi
	start_servers ip netns exec bp_b
	CLIENT=(ip netns exec bp_a) DST=10.213.3.2 IPORT=5201 RPORT=5202 HAS_UDP=1 FWD_PIDS=""
}

sc_bridge() { # 3. nsA -> nsB over a Linux bridge
	bridge_up 1500
	measure "3 kernel bridge nsA->nsB"
}

sc_bridge6() { # 3-6. as 3, over IPv6
	bridge_up 1500 6
	measure "3-6 kernel bridge nsA->nsB, IPv6"
}

sc_bridge_mtu65520() { # 3b. as 3, every link at MTU 65520
	bridge_up 65520
	measure "3b kernel bridge nsA->nsB, MTU 65520"
}

sc_vde() { # 4. nsA -> nsB through vde_switch (userspace L2 switch, one TAP per ns)
	ns_add bp_a
	ns_add bp_b
	ip tuntap add dev bptapA mode tap
	ip tuntap add dev bptapB mode tap
	vde_switch -s "$WORK/vde.ctl" -M "$WORK/vde.mgmt" -t bptapA -t bptapB -d -p "$WORK/vde.pid" >"$OUT/vde.log" 2>&1
	for _ in $(seq 30); do [ -s "$WORK/vde.pid" ] && break; sleep 0.1; done
	local vpid
	vpid=$(cat "$WORK/vde.pid")
	record_pid "$vpid"
	# vde_switch keeps its tap fds; moving the (attached) taps into the namespaces works.
	ip link set bptapA netns bp_a
	ip link set bptapB netns bp_b
	ip -n bp_a addr add 10.213.4.1/24 dev bptapA
	ip -n bp_a link set bptapA up
	ip -n bp_b addr add 10.213.4.2/24 dev bptapB
	ip -n bp_b link set bptapB up
	start_servers ip netns exec bp_b
	ip netns exec bp_a ping -c 2 -i 0.2 -W 1 10.213.4.2 >/dev/null 2>&1 # warm ARP / MAC table
	CLIENT=(ip netns exec bp_a) DST=10.213.4.2 IPORT=5201 RPORT=5202 HAS_UDP=1 FWD_PIDS="$vpid"
	measure "4 vde_switch nsA->nsB (TAPs, MTU 1500)"
}

sc_socat() { # 5. socat port forward 127.0.0.1:15201 -> 10.213.1.2:5201
	ns_add bp_c1
	veth_to bp_c1 bpv0 10.213.1.1/24 10.213.1.2/24
	start_servers ip netns exec bp_c1
	spawn socat-tcp socat TCP-LISTEN:15201,bind=127.0.0.1,fork,reuseaddr TCP:10.213.1.2:5201
	local p=$SPAWNED
	spawn socat-rr socat TCP-LISTEN:15202,bind=127.0.0.1,fork,reuseaddr TCP:10.213.1.2:5202
	spawn socat-udp socat UDP-LISTEN:15201,bind=127.0.0.1,fork,reuseaddr UDP:10.213.1.2:5201
	wait_listen 15201 tcp && wait_listen 15202 tcp && wait_listen 15201 udp
	CLIENT=() DST=127.0.0.1 IPORT=15201 RPORT=15202 HAS_UDP=1 FWD_PIDS="$p"
	measure "5 socat fork 127.0.0.1->veth ns"
}

sc_docker_proxy() { # 6. docker-proxy (docker.io 20.10) 127.0.0.1:15201 -> 10.213.1.2:5201
	local dp
	dp=$(command -v docker-proxy || echo /usr/sbin/docker-proxy)
	ns_add bp_c1
	veth_to bp_c1 bpv0 10.213.1.1/24 10.213.1.2/24
	start_servers ip netns exec bp_c1
	# docker-proxy writes its ready status to fd 3 when started by dockerd; give it /dev/null.
	spawn dproxy-tcp sh -c "exec $dp -proto tcp -host-ip 127.0.0.1 -host-port 15201 -container-ip 10.213.1.2 -container-port 5201 3>/dev/null"
	local p=$SPAWNED
	spawn dproxy-rr sh -c "exec $dp -proto tcp -host-ip 127.0.0.1 -host-port 15202 -container-ip 10.213.1.2 -container-port 5202 3>/dev/null"
	local prr=$SPAWNED
	spawn dproxy-udp sh -c "exec $dp -proto udp -host-ip 127.0.0.1 -host-port 15201 -container-ip 10.213.1.2 -container-port 5201 3>/dev/null"
	wait_listen 15201 tcp && wait_listen 15202 tcp && wait_listen 15201 udp
	CLIENT=() DST=127.0.0.1 IPORT=15201 RPORT=15202 HAS_UDP=1 FWD_PIDS="$p" RR_PIDS="$prr"
	measure "6 docker-proxy 127.0.0.1->veth ns"
}

sc_docker_proxy6() { # 6-6. as 6, over IPv6: [::1]:15201 -> [fd00:213:1::2]:5201
	local dp
	dp=$(command -v docker-proxy || echo /usr/sbin/docker-proxy)
	ns_add bp_c1
	veth_to bp_c1 bpv0 10.213.1.1/24 10.213.1.2/24
	ip addr add fd00:213:1::1/64 dev bpv0 nodad
	ip -n bp_c1 addr add fd00:213:1::2/64 dev eth0 nodad
	SRV_BIND=:: start_servers ip netns exec bp_c1
	spawn dproxy-tcp sh -c "exec $dp -proto tcp -host-ip ::1 -host-port 15201 -container-ip fd00:213:1::2 -container-port 5201 3>/dev/null"
	local p=$SPAWNED
	spawn dproxy-rr sh -c "exec $dp -proto tcp -host-ip ::1 -host-port 15202 -container-ip fd00:213:1::2 -container-port 5202 3>/dev/null"
	spawn dproxy-udp sh -c "exec $dp -proto udp -host-ip ::1 -host-port 15201 -container-ip fd00:213:1::2 -container-port 5201 3>/dev/null"
	wait_listen 15201 tcp && wait_listen 15202 tcp && wait_listen 15201 udp
	CLIENT=() DST=::1 IPORT=15201 RPORT=15202 HAS_UDP=1 FWD_PIDS="$p"
	measure "6-6 docker-proxy [::1]->veth ns, IPv6"
}

# slirp_up MTU : user+net ns (NSPID) attached to slirp4netns (SLPID) inside bp_h,
# hostfwd 127.0.0.1:15201(tcp,udp)->5201, 15202->5202 added through the API socket.
slirp_up() {
	host_ns
	spawn slirp-ns ip netns exec bp_h unshare -Urn sleep 600
	NSPID=$SPAWNED
	for _ in $(seq 50); do [ "$(readlink /proc/$NSPID/ns/user)" != "$(readlink /proc/self/ns/user)" ] && break; sleep 0.1; done
	rm -f "$WORK/slirp.sock"
	spawn slirp4netns ip netns exec bp_h slirp4netns --configure --mtu="$1" --api-socket "$WORK/slirp.sock" "$NSPID" tap0
	SLPID=$SPAWNED
	for _ in $(seq 50); do [ -S "$WORK/slirp.sock" ] && break; sleep 0.1; done
	local f
	for f in "tcp 15201 5201" "tcp 15202 5202" "udp 15201 5201"; do
		set -- $f
		printf '{"execute":"add_hostfwd","arguments":{"proto":"%s","host_addr":"127.0.0.1","host_port":%s,"guest_port":%s}}' "$1" "$2" "$3" |
			socat -t2 - UNIX-CONNECT:"$WORK/slirp.sock" >>"$OUT/slirp-api.log" 2>&1
		echo >>"$OUT/slirp-api.log"
	done
	INNS=(nsenter -t "$NSPID" -U -n --preserve-credentials)
}

sc_slirp4netns() { # 7. slirp4netns hostfwd, MTU 65520
	slirp_up 65520
	start_servers "${INNS[@]}"
	CLIENT=(ip netns exec bp_h) DST=127.0.0.1 IPORT=15201 RPORT=15202 HAS_UDP=1 FWD_PIDS="$SLPID"
	measure "7 slirp4netns hostfwd, MTU 65520"
}

sc_slirp4netns_mtu1500() { # 7b. same, MTU 1500
	slirp_up 1500
	start_servers "${INNS[@]}"
	CLIENT=(ip netns exec bp_h) DST=127.0.0.1 IPORT=15201 RPORT=15202 HAS_UDP=1 FWD_PIDS="$SLPID"
	measure "7b slirp4netns hostfwd, MTU 1500"
}

sc_slirp4netns_egress() { # 10a. ns -> 10.0.2.2 (= host 127.0.0.1) through slirp4netns
	slirp_up 65520
	SRV_BIND=127.0.0.1 SRV_IPORT=5401 SRV_RPORT=5402 start_servers ip netns exec bp_h
	CLIENT=("${INNS[@]}") DST=10.0.2.2 IPORT=5401 RPORT=5402 HAS_UDP=1 FWD_PIDS="$SLPID"
	measure "10a slirp4netns egress ns->10.0.2.2 (host lo), MTU 65520"
}

# pasta_up [extra pasta args] : netns bp_p (made with ip netns) attached to pasta run in bp_h.
# pasta (2023-03) as root cannot spawn its own userns (uid_map EPERM) and drops to
# nobody before setns, so we pre-create the netns and pass --runas 0 --netns.
pasta_up() {
	host_ns
	ns_add bp_p
	# Same host and namespace port numbers on purpose: with a remap (-u 15201:5201)
	# this pasta version drops the reply direction of spliced (loopback) UDP flows.
	spawn pasta ip netns exec bp_h pasta -f --runas 0 --config-net --netns bp_p \
		-t 5201,5202 -u 5201 -T 5401,5402 -U 5401 -P "$WORK/pasta.pid" "$@"
	PAPID=$SPAWNED
	wait_listen 5201 tcp ip netns exec bp_h && wait_listen 5401 tcp ip netns exec bp_p
}

sc_pasta_splice() { # 8a. host 127.0.0.1 -> pasta splice path (loopback source) -> ns
	pasta_up
	start_servers ip netns exec bp_p
	CLIENT=(ip netns exec bp_h) DST=127.0.0.1 IPORT=5201 RPORT=5202 HAS_UDP=1 FWD_PIDS="$PAPID"
	measure "8a pasta -t, 127.0.0.1 (splice path)"
}

sc_pasta_tap() { # 8b. non-loopback source -> pasta tap path (L2/L4 translation), MTU 65520
	pasta_up
	start_servers ip netns exec bp_p
	CLIENT=(ip netns exec bp_h) DST=10.213.100.1 IPORT=5201 RPORT=5202 HAS_UDP=1 FWD_PIDS="$PAPID"
	measure "8b pasta -t, 10.213.100.1 (tap path, MTU 65520)"
}

sc_pasta_tap_mtu1500() { # extra: tap path with MTU 1500
	pasta_up -m 1500
	ip -n bp_p link set bph0 mtu 1500
	start_servers ip netns exec bp_p
	CLIENT=(ip netns exec bp_h) DST=10.213.100.1 IPORT=5201 RPORT=5202 HAS_UDP=1 FWD_PIDS="$PAPID"
	measure "8c pasta -t, 10.213.100.1 (tap path, MTU 1500)"
}

sc_pasta_egress_splice() { # 10b. ns 127.0.0.1:5401 -> pasta -T -> host 127.0.0.1:5401
	pasta_up
	SRV_BIND=127.0.0.1 SRV_IPORT=5401 SRV_RPORT=5402 start_servers ip netns exec bp_h
	CLIENT=(ip netns exec bp_p) DST=127.0.0.1 IPORT=5401 RPORT=5402 HAS_UDP=1 FWD_PIDS="$PAPID"
	measure "10b pasta egress ns->127.0.0.1 (-T splice)"
}

sc_pasta_egress_tap() { # 10c. ns -> gateway 10.213.100.254 (mapped to host lo) via tap path
	pasta_up
	SRV_BIND=127.0.0.1 SRV_IPORT=5401 SRV_RPORT=5402 start_servers ip netns exec bp_h
	CLIENT=(ip netns exec bp_p) DST=10.213.100.254 IPORT=5401 RPORT=5402 HAS_UDP=1 FWD_PIDS="$PAPID"
	measure "10c pasta egress ns->gw 10.213.100.254 (tap, map-gw)"
}

# rlk_up DRIVER : rootlesskit --net=slirp4netns in bp_h, ports published with -p
rlk_up() {
	host_ns
	if ! grep -q '^root:' /etc/subuid || ! grep -q '^root:' /etc/subgid; then
		grep -q "^$SUBID_LINE\$" /etc/subuid || echo "$SUBID_LINE" >>/etc/subuid
		grep -q "^$SUBID_LINE\$" /etc/subgid || echo "$SUBID_LINE" >>/etc/subgid
		touch "$STATE/subid.added"
	fi
	rm -rf "$WORK/rlk"
	spawn "rootlesskit-$1" ip netns exec bp_h rootlesskit --state-dir="$WORK/rlk" --net=slirp4netns --mtu=65520 \
		--port-driver="$1" --copy-up=/etc \
		-p 127.0.0.1:15201:5201/tcp -p 127.0.0.1:15202:5202/tcp -p 127.0.0.1:15201:5201/udp \
		-- timeout 600 sh -c "iperf3 -s -p 5201 --idle-timeout 30 --rcv-timeout 5000 & $RR server -l 0.0.0.0:5202 & wait"
	RLKPID=$SPAWNED
	for _ in $(seq 50); do [ -s "$WORK/rlk/child_pid" ] && break; sleep 0.1; done
	local child
	child=$(cat "$WORK/rlk/child_pid" 2>/dev/null)
	wait_listen 5201 tcp nsenter -t "$child" -n && wait_listen 5202 tcp nsenter -t "$child" -n
	wait_listen 15201 tcp ip netns exec bp_h
	FWD_PIDS="$RLKPID $(children_named "$RLKPID" slirp4netns)"
}

sc_rootlesskit_builtin() { # 9a
	rlk_up builtin
	CLIENT=(ip netns exec bp_h) DST=127.0.0.1 IPORT=15201 RPORT=15202 HAS_UDP=1
	measure "9a rootlesskit --port-driver=builtin"
}

sc_rootlesskit_slirp4netns() { # 9b
	rlk_up slirp4netns
	CLIENT=(ip netns exec bp_h) DST=127.0.0.1 IPORT=15201 RPORT=15202 HAS_UDP=1
	measure "9b rootlesskit --port-driver=slirp4netns"
}

# ---------------------------------------------------------------- switchyard
SY=$WORK/switchyard

# sy_up [daemon flags...] : a Switchyard daemon on a private socket and state
# directory; SYPID is its pid, sy runs the CLI against it. SY_PROCS, if
# set, is the daemon's GOMAXPROCS.
sy_up() {
	mkdir -p "$WORK/sy"
	local envs=()
	[ -n "${SY_PROCS:-}" ] && envs=(env GOMAXPROCS="$SY_PROCS")
	# SY_ARGS: more daemon flags for every Switchyard scenario (say --spin=-1ns)
	# shellcheck disable=SC2086
	spawn switchyard-daemon "${envs[@]}" "$SY" --socket "$WORK/sy/sy.sock" --log-level warn daemon --state-dir "$WORK/sy/state" "$@" ${SY_ARGS:-}
	SYPID=$SPAWNED
	for _ in $(seq 100); do sy network ls >/dev/null 2>&1 && return 0; sleep 0.1; done
	log "switchyard daemon did not come up"
	return 1
}
sy() { "$SY" --socket "$WORK/sy/sy.sock" "$@"; }

# SY_FAMILY picks the network and the family of the client's traffic in
# the Switchyard scenarios: 4 (an IPv4 network, the default), 46 (IPv4 on
# a dual-stack network) or 6 (IPv6 on the same dual-stack network).
# sy_family_args N : the subnet arguments of network N (20, 21: 10.213.N.0/24
# and fd00:213:N::/64)
sy_family_args() {
	SUBNETS=(--subnet "10.213.$1.0/24")
	case ${SY_FAMILY:-4} in
	46 | 6) SUBNETS+=(--subnet "fd00:213:$1::/64") ;;
	esac
}
# sy_ip6 N H : --ip6 fd00:213:N::H on a dual-stack network, nothing otherwise
sy_ip6() { case ${SY_FAMILY:-4} in 46 | 6) echo "--ip6 fd00:213:$1::$2" ;; esac; }

# sy_l2 MTU LABEL [daemon flags...] : nsA -> nsB through one Switchyard network
sy_l2() {
	local mtu=$1 label=$2 dst=10.213.20.3 bind=
	shift 2
	sy_up "$@" || return 1
	ns_add bp_a
	ns_add bp_b
	sy_family_args 20
	sy network create bench "${SUBNETS[@]}" --mtu "$mtu" >/dev/null
	sy connect bench --netns /var/run/netns/bp_a --ip 10.213.20.2 $(sy_ip6 20 2) >/dev/null
	sy connect bench --netns /var/run/netns/bp_b --ip 10.213.20.3 $(sy_ip6 20 3) >/dev/null
	[ "${SY_FAMILY:-4}" = 6 ] && dst=fd00:213:20::3 bind=::
	SRV_BIND=$bind start_servers ip netns exec bp_b
	ip netns exec bp_a ping -c 2 -i 0.2 -W 1 "$dst" >/dev/null 2>&1 || log "ping bp_a -> $dst failed"
	CLIENT=(ip netns exec bp_a) DST=$dst IPORT=5201 RPORT=5202 HAS_UDP=1 FWD_PIDS="$SYPID"
	measure "$label"
	sy endpoint ls >>"$OUT/detail.txt"
}

sc_sy_l2() { sy_l2 1500 "S1 switchyard nsA->nsB (TAPs with offload, MTU 1500)"; }
sc_sy_l2_readers() { sy_l2 1500 "S1-r switchyard nsA->nsB, a reader goroutine per TAP (--spin=-1ns, before the loop)" --spin=-1ns; }
sc_sy_l2_nospin() { sy_l2 1500 "S1-0 switchyard nsA->nsB, the network's loop without spinning (--spin=0)" --spin=0; }
sc_sy_l2_nooffload() { sy_l2 1500 "S1b switchyard nsA->nsB (TAPs without offload, MTU 1500)" --offload=false; }
sc_sy_l2_mtu65520() { sy_l2 65520 "S1c switchyard nsA->nsB (TAPs with offload, MTU 65520)"; }
sc_sy_l2_1p() { SY_PROCS=1 sy_l2 1500 "S1-1p switchyard nsA->nsB, daemon with GOMAXPROCS=1 (MTU 1500)"; }
sc_sy_l2_ds() { SY_FAMILY=46 sy_l2 1500 "S1-46 switchyard nsA->nsB, IPv4 on a dual-stack network (MTU 1500)"; }
sc_sy_l2_v6() { SY_FAMILY=6 sy_l2 1500 "S1-6 switchyard nsA->nsB, IPv6 on the same dual-stack network (MTU 1500)"; }

# ---- published ports (issue 3): host 127.0.0.1 -> a container, as the peers
# sy_ports PATH MTU LABEL : the daemon in the root namespace, one container
# bp_c1, ports 15201 (tcp, udp) and 15202 published on 127.0.0.1.
# With SY_FAMILY=6 the ports are published on [::1] and reach the
# container's IPv6 address.
sy_ports() {
	local path=$1 mtu=$2 label=$3 host=127.0.0.1 dst=127.0.0.1 bind=
	sy_up || return 1
	ns_add bp_c1
	sy_family_args 21
	[ "${SY_FAMILY:-4}" = 6 ] && host='[::1]' dst=::1 bind=::
	sy network create bench "${SUBNETS[@]}" --mtu "$mtu" >/dev/null
	sy connect bench --netns /var/run/netns/bp_c1 --ip 10.213.21.2 $(sy_ip6 21 2) -p "$host:15201:5201,path=$path" \
		-p "$host:15202:5202,path=$path" -p "$host:15201:5201/udp,path=$path" >>"$OUT/sy-connect.log" || return 1
	SRV_BIND=$bind start_servers ip netns exec bp_c1
	CLIENT=() DST=$dst IPORT=15201 RPORT=15202 HAS_UDP=1 FWD_PIDS="$SYPID"
	measure "$label"
}

sc_sy_proxy_netstack() { sy_ports netstack 1500 "S2 switchyard -p 127.0.0.1 (netstack path, MTU 1500)"; }
sc_sy_proxy_netstack_mtu65520() { sy_ports netstack 65520 "S2b switchyard -p 127.0.0.1 (netstack path, MTU 65520)"; }
sc_sy_proxy_splice() { sy_ports splice 1500 "S3 switchyard -p 127.0.0.1 (splice path)"; }
sc_sy_proxy_netstack_readers() { SY_ARGS=--spin=-1ns sy_ports netstack 1500 "S2-r switchyard -p 127.0.0.1 (netstack path), a reader goroutine per TAP (--spin=-1ns, before the loop)"; }
sc_sy_proxy_netstack_1p() { SY_PROCS=1 sy_ports netstack 1500 "S2-1p switchyard -p 127.0.0.1 (netstack path), daemon with GOMAXPROCS=1"; }
sc_sy_proxy_netstack_ds() { SY_FAMILY=46 sy_ports netstack 1500 "S2-46 switchyard -p 127.0.0.1, dual-stack network (netstack path, MTU 1500)"; }
sc_sy_proxy_netstack6() { SY_FAMILY=6 sy_ports netstack 1500 "S2-6 switchyard -p [::1] -> IPv6 (netstack path, MTU 1500)"; }
sc_sy_proxy_splice_ds() { SY_FAMILY=46 sy_ports splice 1500 "S3-46 switchyard -p 127.0.0.1, dual-stack network (splice path)"; }
sc_sy_proxy_splice6() { SY_FAMILY=6 sy_ports splice 1500 "S3-6 switchyard -p [::1] -> IPv6 (splice path)"; }

# S5. egress: a container connects out through the gateway's netstack to
# the host's loopback (--host-loopback: 169.254.1.2 is the host's
# 127.0.0.1), as slirp4netns's 10a and pasta's 10c rows do
sc_sy_egress() {
	sy_up || return 1
	ns_add bp_c1
	sy network create bench --subnet 10.213.24.0/24 --host-loopback >/dev/null
	sy connect bench --netns /var/run/netns/bp_c1 --ip 10.213.24.2 >>"$OUT/sy-connect.log" || return 1
	SRV_BIND=127.0.0.1 SRV_IPORT=5401 SRV_RPORT=5402 start_servers
	CLIENT=(ip netns exec bp_c1) DST=169.254.1.2 IPORT=5401 RPORT=5402 HAS_UDP=1 FWD_PIDS="$SYPID"
	measure "S5 switchyard egress ns->169.254.1.2 (--host-loopback: host lo), MTU 1500"
}

# ---- switchyard run (issue 4): the servers as run's command, published on
# 127.0.0.1, as root and as an ordinary user (rootless TAP through the
# user namespace)
sy_run() {
	local as=$1 label=$2 pre=() p
	if [ "$as" = nobody ]; then
		local mode
		mode=$(stat -c %a /dev/net/tun)
		[ "$mode" = 666 ] || { log "/dev/net/tun is mode $mode: rootless TAPs need 0666"; return 1; }
		pre=(runuser -u nobody --)
	fi
	spawn "sy-run-$as" "${pre[@]}" "$SY" run -p 127.0.0.1:15201:5201 -p 127.0.0.1:15202:5202 -p 127.0.0.1:15201:5201/udp -- \
		sh -c "iperf3 -s -p 5201 --idle-timeout 30 --rcv-timeout 5000 & $RR server -l 0.0.0.0:5202 & wait"
	p=$SPAWNED
	[ "$(cat /proc/$p/comm 2>/dev/null)" = switchyard ] || { sleep 0.2; p=$(children_named "$SPAWNED" switchyard); }
	wait_listen 15202 tcp || return 1
	for _ in $(seq 50); do timeout 2 "$RR" rr -c 127.0.0.1:15202 -d 0.05s >/dev/null 2>&1 && break; sleep 0.1; done
	CLIENT=() DST=127.0.0.1 IPORT=15201 RPORT=15202 HAS_UDP=1 FWD_PIDS="$p"
	measure "$label"
}

sc_sy_run_root() { sy_run root "S4 switchyard run -p (root)"; }
sc_sy_run_nobody() { sy_run nobody "S4b switchyard run -p (as nobody: rootless)"; }

PORT_SCENARIOS="socat docker_proxy slirp4netns slirp4netns_mtu1500 pasta_splice pasta_tap rootlesskit_builtin rootlesskit_slirp4netns sy_proxy_netstack sy_proxy_netstack_mtu65520 sy_proxy_splice sy_run_root sy_run_nobody"

# ---- start-up time (issue 4): from starting a rootless network with one
# published port to the first HTTP request served through it, as nobody,
# the same server (switchyard whoami) in every case. Its own table.
STARTUP_N=${STARTUP_N:-20}
startup_bench() {
	local st=$WORK/startup
	(cd "$REPO" && go build -o "$st" ./benchmarks/startup) || { log "go build startup failed"; return 1; }
	chmod 755 "$st"
	local nb=(runuser -u nobody --)
	echo "| set-up (as nobody unless said) | runs | min ms | median ms | p90 ms | max ms |"
	echo "|---|---|---|---|---|---|"
	local row
	startup_row() { # label cmd...
		local label=$1
		shift
		row=$("$@" 2>>"$OUT/startup.err") || { echo "| $label | FAILED (see $OUT/startup.err) | | | | |"; return; }
		awk -v l="$label" '{for(i=1;i<=NF;i++){split($i,kv,"="); v[kv[1]]=kv[2]} gsub("ms","",v["min"]); gsub("ms","",v["median"]); gsub("ms","",v["p90"]); gsub("ms","",v["max"]);
			printf "| %s | %s | %s | %s | %s | %s |\n", l, v["runs"], v["min"], v["median"], v["p90"], v["max"]}' <<<"$row"
	}
	startup_row "switchyard run -p 18300:80" "${nb[@]}" "$st" -n "$STARTUP_N" -port 18300 -- "$SY" run -p 127.0.0.1:18300:80 -- "$SY" whoami
	startup_row "switchyard run -p 18300:80 (root)" "$st" -n "$STARTUP_N" -port 18300 -- "$SY" run -p 127.0.0.1:18300:80 -- "$SY" whoami
	startup_row "pasta --config-net -t 18301:80" "${nb[@]}" "$st" -n "$STARTUP_N" -port 18301 -- pasta --config-net -t 18301:80 -- "$SY" whoami
	startup_row "slirp4netns + unshare -Urn, hostfwd 18302:80" "${nb[@]}" "$st" -n "$STARTUP_N" -port 18302 -- \
		env PORT=18302 SERVER="$SY" sh "$HERE/startup/slirp.sh"
	startup_row "server alone in the host namespace (no network set-up)" "${nb[@]}" "$st" -n "$STARTUP_N" -port 18303 -- "$SY" whoami --listen 127.0.0.1:18303
}

# ---- DNS (issue 4): queries/s for an in-network name, asked of the
# network's gateway from a container, and the same from the Go benchmark.
dns_bench() {
	local db=$WORK/dnsbench
	(cd "$REPO" && go build -o "$db" ./benchmarks/dnsbench) || { log "go build dnsbench failed"; return 1; }
	sy_up --resolv-conf /dev/null || return 1
	ns_add bp_a
	ns_add bp_b
	sy network create bench --subnet 10.213.22.0/24 >/dev/null
	sy connect bench --netns /var/run/netns/bp_a --name client >/dev/null
	sy connect bench --netns /var/run/netns/bp_b --name web >/dev/null
	echo "| DNS, in-network name web, UDP | workers | queries/s | p50 µs | p99 µs | daemon CPU % |"
	echo "|---|---|---|---|---|---|"
	local c r c0 c1 e0 e1
	for c in 1 8 32; do
		FWD_PIDS=$SYPID
		c0=$(fwd_ticks)
		e0=$(now)
		r=$(timeout 30 ip netns exec bp_a "$db" -s 10.213.22.1:53 -name web -c "$c" -d "${DUR}s")
		c1=$(fwd_ticks)
		e1=$(now)
		echo "| switchyard gateway 10.213.22.1 | $c | $(kv qps "$r") | $(kv p50_us "$r") | $(kv p99_us "$r") | $(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v e0="$e0" -v e1="$e1" 'BEGIN{printf "%.0f", 100*d/hz/(e1-e0)}') |"
	done
	sy endpoint ls >>"$OUT/detail.txt"
}

# ---- tunnel (issue 5)
# Two "hosts" (namespaces bp_ha, bp_hb joined by a veth, underlay
# 10.213.60.0/24), one "container" each (bp_ca, bp_cb, overlay
# 10.213.61.0/24, MTU 1450 = 1500 - VXLAN's 50), client in bp_ca, servers
# in bp_cb, joined by:
#   T1  kernel vxlan + bridge on both hosts (VNI 42, port 4789), offloads on:
#       the veth carries the kernel's 64 KiB GSO packets whole
#   T1b the same with tunnel segmentation off on the underlay veths, so
#       that MTU-sized datagrams cross it, as over a NIC without VXLAN TSO
#   T2  socat relaying frames between a TAP and a UDP socket on each host:
#       a userspace relay, one datagram and two system calls per frame
#   T3  Switchyard's tunnel (benchmarks/tunnelbench: a switch, a TAP and a
#       tunnel.Port per host, as the tests build them), VXLAN
#   T4  the same, sealed (ChaCha20-Poly1305); container MTU 1418
#   T5  Switchyard on host a, kernel vxlan + bridge on host b (interop)
# `bench.sh tunnel` runs TUNNEL_SCENARIOS; `bench.sh tunnel-features` runs
# T3 with one data-path feature of tunnel.Port turned off at a time (what
# each buys).
TUNNEL_SCENARIOS="tun_kernel tun_kernel_nogso tun_socat tun_sy_vxlan tun_sy_secure tun_sy_kernel"
TUNNEL_FEATURE_SCENARIOS="tun_sy_vxlan tun_sy_no_tso tun_sy_no_gso tun_sy_no_gro tun_sy_no_batch tun_sy_no_coalesce tun_sy_no_pipeline"
# tunnel6's IPv4 and IPv6 rows are a minute apart: on a shared machine
# the load between them moves their ratio by ±30 %. benchmarks/tunnel6ab.sh
# alternates the two families in one topology, with CPU per GB.
TUNNEL6_SCENARIOS="tun_kernel tun_kernel6 tun_sy_vxlan tun_sy_vxlan6"
TB=$WORK/tunnelbench

# tun_hosts : bp_ha and bp_hb joined by a veth; containers bp_ca and bp_cb
tun_hosts() {
	local n
	for n in bp_ha bp_hb bp_ca bp_cb; do ns_add "$n"; done
	ip -n bp_ha link add eth0 type veth peer name eth0 netns bp_hb
	ip -n bp_ha addr add 10.213.60.1/24 dev eth0
	ip -n bp_hb addr add 10.213.60.2/24 dev eth0
	ip -n bp_ha link set eth0 up
	ip -n bp_hb link set eth0 up
}

# tun_kernel_host H N : kernel vxlan + bridge in bp_hH (underlay 10.213.60.N),
# container bp_cH on it at 10.213.61.(N+1)/24 and fd00:213:61::(N+1)/64
tun_kernel_host() {
	local h=$1 n=$2 peer=10.213.60.$((3 - $2))
	ip -n "bp_h$h" link add br0 type bridge stp_state 0 forward_delay 0
	ip -n "bp_h$h" link add vx0 type vxlan id 42 dstport 4789 local "10.213.60.$n" dev eth0
	ip -n "bp_h$h" link set vx0 master br0 up
	ip -n "bp_h$h" link set br0 up
	bridge -n "bp_h$h" fdb append 00:00:00:00:00:00 dev vx0 dst "$peer"
	ip -n "bp_h$h" link add c0 type veth peer name eth0 netns "bp_c$h"
	ip -n "bp_h$h" link set c0 master br0 up
	ip -n "bp_c$h" link set eth0 mtu 1450
	ip -n "bp_c$h" addr add "10.213.61.$((n + 1))/24" dev eth0
	ip -n "bp_c$h" addr add "fd00:213:61::$((n + 1))/64" dev eth0 nodad
	ip -n "bp_c$h" link set eth0 up
}

# tun_sy_host H N MODE [tunnelbench flags...] : Switchyard on bp_hH; sets TBPID
tun_sy_host() {
	local h=$1 n=$2 mode=$3
	shift 3
	spawn "tunnelbench-$h" "$TB" -host "bp_h$h" -local "10.213.60.$n" -peer "10.213.60.$((3 - n))" \
		-container "bp_c$h" -ip "10.213.61.$((n + 1))/24" -ip6 "fd00:213:61::$((n + 1))/64" -mode "$mode" "$@"
	TBPID=$SPAWNED
	local i
	for i in $(seq 100); do grep -q '^ready' "$OUT/tunnelbench-$h.log" 2>/dev/null && return 0; sleep 0.1; done
	log "tunnelbench on bp_h$h did not come up: $(cat "$OUT/tunnelbench-$h.log")"
	return 1
}

tun_build() {
	(cd "$REPO" && go build -o "$TB" ./benchmarks/tunnelbench) || { log "go build tunnelbench failed"; return 1; }
}

# tun_measure LABEL : servers in bp_cb, client in bp_ca; with TUN_FAMILY=6
# over IPv6 inside the overlay (the underlay stays IPv4)
tun_measure() {
	local dst=10.213.61.3 bind=
	[ "${TUN_FAMILY:-4}" = 6 ] && dst=fd00:213:61::3 bind=::
	SRV_BIND=$bind start_servers ip netns exec bp_cb
	ip netns exec bp_ca ping -c 2 -i 0.2 -W 1 "$dst" >/dev/null 2>&1 || log "ping bp_ca -> $dst failed" # ARP/ND, forwarding tables
	CLIENT=(ip netns exec bp_ca) DST=$dst IPORT=5201 RPORT=5202 HAS_UDP=1
	measure "$1"
}

sc_tun_kernel() {
	tun_hosts
	tun_kernel_host a 1
	tun_kernel_host b 2
	FWD_PIDS=""
	tun_measure "T1 kernel vxlan+bridge cA->cB (veth underlay, GSO packets cross it whole)"
}

sc_tun_kernel6() { # T1 with IPv6 inside the overlay
	tun_hosts
	tun_kernel_host a 1
	tun_kernel_host b 2
	FWD_PIDS=""
	TUN_FAMILY=6 tun_measure "T1-6 kernel vxlan+bridge cA->cB, IPv6 in the overlay"
}

sc_tun_kernel_nogso() {
	tun_hosts
	tun_kernel_host a 1
	tun_kernel_host b 2
	local h
	for h in a b; do
		ip netns exec "bp_h$h" ethtool -K eth0 tx-udp_tnl-segmentation off tx-udp_tnl-csum-segmentation off >/dev/null 2>&1 ||
			log "ethtool could not turn off tunnel segmentation on bp_h$h"
	done
	FWD_PIDS=""
	tun_measure "T1b kernel vxlan+bridge cA->cB (underlay without tunnel TSO: MTU-sized datagrams)"
}

sc_tun_socat() {
	tun_hosts
	local h n pids=""
	for h in a b; do
		n=$([ $h = a ] && echo 1 || echo 2)
		spawn "socat-tap-$h" ip netns exec "bp_h$h" socat -b 65536 TUN,tun-type=tap,tun-name=bpstap,iff-no-pi \
			"UDP-DATAGRAM:10.213.60.$((3 - n)):5555,bind=10.213.60.$n:5555"
		pids="$pids $SPAWNED"
		for _ in $(seq 50); do ip -n "bp_h$h" link show bpstap >/dev/null 2>&1 && break; sleep 0.1; done
		# socat keeps its TAP's fd; the device moves into the container.
		ip -n "bp_h$h" link set bpstap netns "bp_c$h"
		ip -n "bp_c$h" link set bpstap name eth0
		ip -n "bp_c$h" link set eth0 mtu 1450
		ip -n "bp_c$h" addr add "10.213.61.$((n + 1))/24" dev eth0
		ip -n "bp_c$h" link set eth0 up
	done
	FWD_PIDS="$pids"
	tun_measure "T2 socat TAP<->UDP relay cA->cB (no offloads, MTU 1450)"
}

# tun_sy MODE LABEL [tunnelbench flags...] : Switchyard on both hosts
tun_sy() {
	local mode=$1 label=$2 pa
	shift 2
	tun_build || return 1
	tun_hosts
	tun_sy_host a 1 "$mode" "$@" || return 1
	pa=$TBPID
	tun_sy_host b 2 "$mode" "$@" || return 1
	FWD_PIDS="$pa $TBPID"
	tun_measure "$label"
}

sc_tun_sy_vxlan() { tun_sy vxlan "T3 switchyard tunnel cA->cB (vxlan, MTU 1450)"; }
# T3 with the TAP and the tunnel's socket read otherwise than by one loop
# spinning the daemon's default --spin (issue 14): a reader goroutine each
# (the daemon's --spin=-1ns, as before the loop), or a longer spin.
sc_tun_sy_readers() { tun_sy vxlan "T3-r switchyard vxlan, a reader goroutine per port (-spin=-1ns, before the loop)" -spin=-1ns; }
sc_tun_sy_spin100() { tun_sy vxlan "T3-100 switchyard vxlan, the loop spinning 100us" -spin=100us; }
sc_tun_sy_spin200() { tun_sy vxlan "T3-200 switchyard vxlan, the loop spinning 200us" -spin=200us; }
sc_tun_sy_nospin() { tun_sy vxlan "T3-0 switchyard vxlan, one loop per host that does not spin (-spin=0)" -spin=0; }
sc_tun_sy_secure() { tun_sy secure "T4 switchyard tunnel cA->cB (secure, MTU 1418)"; }
sc_tun_sy_vxlan6() { TUN_FAMILY=6 tun_sy vxlan "T3-6 switchyard tunnel cA->cB, IPv6 in the overlay (vxlan, MTU 1450)"; }
sc_tun_sy_no_tso() { tun_sy vxlan "T3-tso switchyard vxlan, no TSO (the switch cuts superframes)" -disable tso; }
sc_tun_sy_no_gso() { tun_sy vxlan "T3-gso switchyard vxlan, no UDP GSO (sendmmsg)" -disable gso; }
sc_tun_sy_no_gro() { tun_sy vxlan "T3-gro switchyard vxlan, no UDP GRO" -disable gro; }
sc_tun_sy_no_batch() { tun_sy vxlan "T3-batch switchyard vxlan, no sendmmsg/recvmmsg" -disable batch; }
sc_tun_sy_no_coalesce() { tun_sy vxlan "T3-coalesce switchyard vxlan, no receive coalescing" -disable coalesce; }
sc_tun_sy_no_pipeline() { tun_sy vxlan "T3-pipeline switchyard vxlan, no sender goroutine" -disable pipeline; }

sc_tun_sy_kernel() { # Switchyard on host a, the kernel's vxlan on host b
	tun_build || return 1
	tun_hosts
	tun_sy_host a 1 vxlan || return 1
	tun_kernel_host b 2
	FWD_PIDS="$TBPID"
	tun_measure "T5 switchyard (host a) -> kernel vxlan+bridge (host b)"
}

# ---- direct routing (issue 15): container to container across two hosts
# without a tunnel. The hosts are bp_ha and bp_hb joined by a veth (the
# VPC, 10.213.60.0/24, as for the tunnel set); each host's containers have
# their own subnet, 10.213.71.0/24 on a and 10.213.72.0/24 on b, and each
# host routes the other's subnet via the other (ip_forward=1).
#   D1  the kernel: a Docker-style bridge per host (br0 with the subnet's
#       first address, the container on a veth into it)
#   D2  Switchyard direct routing: a daemon per host, a network with
#       --host-interface and --route for the other host's subnet
#   D3  Switchyard's VXLAN tunnel between the same two hosts, through the
#       same daemons (one subnet, an --ip-range per host, static peers)
# `bench.sh direct` runs DIRECT_SCENARIOS.
DIRECT_SCENARIOS="direct_kernel direct_sy direct_sy_tunnel"

# direct_hosts : tun_hosts plus forwarding and the routes of the VPC
direct_hosts() {
	tun_hosts
	ip netns exec bp_ha sysctl -qw net.ipv4.ip_forward=1
	ip netns exec bp_hb sysctl -qw net.ipv4.ip_forward=1
	ip -n bp_ha route add 10.213.72.0/24 via 10.213.60.2
	ip -n bp_hb route add 10.213.71.0/24 via 10.213.60.1
}

# direct_sy_up H : a Switchyard daemon in bp_hH (socket $WORK/sy-H); sets SYPID
direct_sy_up() {
	local h=$1
	mkdir -p "$WORK/sy-$h"
	: >"$WORK/sy-$h/resolv.conf"
	spawn "switchyard-daemon-$h" ip netns exec "bp_h$h" "$SY" --socket "$WORK/sy-$h/sy.sock" --log-level warn \
		daemon --state-dir "$WORK/sy-$h/state" --resolv-conf "$WORK/sy-$h/resolv.conf"
	SYPID=$SPAWNED
	for _ in $(seq 100); do syh "$h" network ls >/dev/null 2>&1 && return 0; sleep 0.1; done
	log "switchyard daemon in bp_h$h did not come up"
	return 1
}
syh() { local h=$1; shift; "$SY" --socket "$WORK/sy-$h/sy.sock" "$@"; }

# direct_measure LABEL DST : servers in bp_cb, client in bp_ca
direct_measure() {
	start_servers ip netns exec bp_cb
	ip netns exec bp_ca ping -c 2 -i 0.2 -W 1 "$2" >/dev/null 2>&1 || log "ping bp_ca -> $2 failed"
	CLIENT=(ip netns exec bp_ca) DST=$2 IPORT=5201 RPORT=5202 HAS_UDP=1
	measure "$1"
}

sc_direct_kernel() {
	direct_hosts
	local h n
	for h in a b; do
		n=$([ $h = a ] && echo 1 || echo 2)
		ip -n "bp_h$h" link add br0 type bridge stp_state 0 forward_delay 0
		ip -n "bp_h$h" addr add "10.213.7$n.1/24" dev br0
		ip -n "bp_h$h" link set br0 up
		ip -n "bp_h$h" link add c0 type veth peer name eth0 netns "bp_c$h"
		ip -n "bp_h$h" link set c0 master br0 up
		ip -n "bp_c$h" addr add "10.213.7$n.2/24" dev eth0
		ip -n "bp_c$h" link set eth0 up
		ip -n "bp_c$h" route add default via "10.213.7$n.1"
	done
	FWD_PIDS=""
	direct_measure "D1 kernel: Docker-style bridges + routes cA->cB (MTU 1500)" 10.213.72.2
}

sc_direct_sy() {
	direct_hosts
	local h n pids=""
	for h in a b; do
		n=$([ $h = a ] && echo 1 || echo 2)
		direct_sy_up "$h" || return 1
		pids="$pids $SYPID"
		syh "$h" network create direct --subnet "10.213.7$n.0/24" --host-interface bpsy0 \
			--route "10.213.7$((3 - n)).0/24" >/dev/null || return 1
		syh "$h" connect direct --netns "/var/run/netns/bp_c$h" --ip "10.213.7$n.2" >/dev/null || return 1
	done
	FWD_PIDS="$pids"
	direct_measure "D2 switchyard direct routing cA->cB (MTU 1500)" 10.213.72.2
	syh a network inspect direct >>"$OUT/detail.txt"
	syh b network inspect direct >>"$OUT/detail.txt"
}

sc_direct_sy_tunnel() {
	tun_hosts
	local h n pids=""
	for h in a b; do
		n=$([ $h = a ] && echo 1 || echo 2)
		direct_sy_up "$h" || return 1
		pids="$pids $SYPID"
		syh "$h" network create tun --subnet 10.213.73.0/24 --ip-range "10.213.73.$(((n - 1) * 128))/25" \
			--tunnel vxlan --tunnel-listen "10.213.60.$n:4789" --peer "10.213.60.$((3 - n)):4789" >/dev/null || return 1
		syh "$h" connect tun --netns "/var/run/netns/bp_c$h" --ip "10.213.73.$(((n - 1) * 128 + 2))" >/dev/null || return 1
	done
	FWD_PIDS="$pids"
	direct_measure "D3 switchyard vxlan tunnel cA->cB (MTU 1450)" 10.213.73.130
}

# ---------------------------------------------------------------- main
usage() {
	echo "usage: $0 [-l] [all | l2 | l2-6 | ports | ports6 | tunnel | tunnel6 | latency | goals | tunnel-features | direct | startup | dns | scenario ...]"
	echo "l2:      $L2_SCENARIOS"
	echo "l2-6:    $L2V6_SCENARIOS"
	echo "ports:   $PORT_SCENARIOS"
	echo "ports6:  $PORTV6_SCENARIOS"
	echo "tunnel:  $TUNNEL_SCENARIOS"
	echo "tunnel6: $TUNNEL6_SCENARIOS"
	echo "latency: $LATENCY_SCENARIOS"
	echo "goals:   $GOALS_SCENARIOS"
	echo "egress:  $EGRESS_SCENARIOS"
	echo "tunnel-features: $TUNNEL_FEATURE_SCENARIOS"
	echo "direct:  $DIRECT_SCENARIOS"
	echo "startup, dns: tables of their own"
	echo "default: $DEFAULT_SCENARIOS"
	echo "extra:   $EXTRA_SCENARIOS"
}

main() {
	[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }
	local list=()
	case "${1:-}" in
	-l | -h | --help) usage; exit 0 ;;
	"") list=($DEFAULT_SCENARIOS) ;;
	l2) list=($L2_SCENARIOS) ;;
	l2-6) list=($L2V6_SCENARIOS) ;;
	ports) list=($PORT_SCENARIOS) ;;
	ports6) list=($PORTV6_SCENARIOS) ;;
	tunnel) list=($TUNNEL_SCENARIOS) ;;
	tunnel6) list=($TUNNEL6_SCENARIOS) ;;
	latency) list=($LATENCY_SCENARIOS) ;;
	goals) list=($GOALS_SCENARIOS) ;;
	egress) list=($EGRESS_SCENARIOS) ;;
	tunnel-features) list=($TUNNEL_FEATURE_SCENARIOS) ;;
	direct) list=($DIRECT_SCENARIOS) ;;
	startup | dns) list=() ;;
	all) list=($DEFAULT_SCENARIOS $EXTRA_SCENARIOS) ;;
	*) list=("$@") ;;
	esac
	case ${ORDER:-} in
	"") ;;
	reverse) mapfile -t list < <(printf '%s\n' "${list[@]+"${list[@]}"}" | tac) ;;
	shuffle) mapfile -t list < <(printf '%s\n' "${list[@]+"${list[@]}"}" | shuf) ;;
	*) echo "ORDER=$ORDER: want reverse or shuffle" >&2; exit 2 ;;
	esac
	local s
	for s in "${list[@]+"${list[@]}"}"; do
		declare -F "sc_$s" >/dev/null || { echo "unknown scenario: $s" >&2; usage >&2; exit 2; }
	done
	local need
	for need in iperf3 jq socat ip ss nsenter unshare timeout go; do
		command -v "$need" >/dev/null || { echo "missing tool: $need" >&2; exit 1; }
	done
	if [ "${SYSCALLS:-0}" = 1 ] && ! command -v perf >/dev/null; then
		echo "SYSCALLS=1 needs perf (Debian: linux-perf)" >&2
		exit 1
	fi

	mkdir -p "$STATE" "$WORK" "$OUT"
	# One run at a time on the machine: the clean-up below removes every
	# bp_* namespace and kills the pids another run recorded.
	exec 9>"$STATE/lock"
	if ! flock -n 9; then
		log "another bench.sh run holds $STATE/lock: waiting for it to finish"
		flock 9
	fi
	touch "$STATE/pids"
	cleanup_all # idempotent: remove leftovers of an interrupted run
	trap 'cleanup_all' EXIT
	trap 'exit 130' INT TERM

	log "building rr, switchyard and switchyardd"
	(cd "$REPO" && CGO_ENABLED=0 go build -o "$RR" ./benchmarks/rr && go build -o "$WORK/" ./cmd/switchyard ./cmd/switchyardd) || { echo "go build failed" >&2; exit 1; }
	: >"$OUT/detail.txt"
	: >"$OUT/client.err"
	case "${1:-}" in
	startup)
		startup_bench
		return
		;;
	dns)
		(dns_bench; kill_recorded)
		return
		;;
	esac

	echo "| scenario | TCP 1 stream Gbit/s | TCP 4 streams Gbit/s | UDP recv Gbit/s (loss) | RR/s | RR p50 µs | RR p99 µs | conn/s | fwd CPU % (1 stream) | host CPU % of $(($(nproc) * 100)) (1 stream) |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	local t0 row
	t0=$(date +%s)
	for s in "${list[@]}"; do
		log "=== $s"
		# each scenario runs in a subshell with a watchdog; cleanup runs regardless
		# (the subshell kills and reaps its own spawned processes; the parent's
		# cleanup_scenario below is the fallback for the watchdog case)
		("sc_$s"; kill_recorded; wait ${CHILDREN:-} 2>/dev/null) >"$WORK/row" 2> >(tee -a "$OUT/scenario-$s.log" >&2) &
		local sp=$! waited=0
		while kill -0 "$sp" 2>/dev/null; do
			if [ $waited -ge $((SCEN_MAX * 10)) ]; then
				log "$s: watchdog fired after ${SCEN_MAX}s"
				kill -TERM $(descendants "$sp") 2>/dev/null
				break
			fi
			sleep 0.1
			waited=$((waited + 1))
		done
		wait "$sp" 2>/dev/null
		row=$(grep '^|' "$WORK/row" | tail -1)
		if [ -n "$row" ]; then echo "$row"; else echo "| $s | FAILED (see $OUT/scenario-$s.log) | | | | | | | | |"; fi
		cleanup_scenario
	done
	log "done in $(($(date +%s) - t0)) s; details in $OUT/detail.txt"
}

main "$@"
