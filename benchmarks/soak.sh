#!/usr/bin/env bash
# soak.sh - issue 11's adversarial soak (testing/soak), on demand: one
# container floods MACs, spoofs ARP/IP/ND, sprays UDP from random source
# ports and opens bursts of connections at a published port, while a
# second container on the same network keeps a ping and an HTTP loop
# going. Prints the figures as a markdown table (for benchmarks/RESULTS.md)
# with the command and the commit they came from.
#
# Usage (as root):  benchmarks/soak.sh
# Environment knobs (see testing/soak/doc.go):
#   SWITCHYARD_SOAK_DURATION=60s   load per network
#   SWITCHYARD_SOAK_ICC=true,false one network per mode, in turn
#   SWITCHYARD_SOAK_SETTLE=100s    longest wait for fds/goroutines to return
#   SWITCHYARD_SOAK_PPS=5000       MAC flood frames/s (UDP spray: half that)
#   SWITCHYARD_SOAK_CONNS=2000     connections per burst
#   SWITCHYARD_SOAK_RSS_MB=96      bound on the daemon's peak RSS (about 4× idle)
#   SWITCHYARD_SOAK_ATTACK=0       the control: the victim's loops with no attacker
# The test refuses settings that could last more than 10 minutes.
#
# Network safety: the daemon runs in a namespace of its own with only
# loopback; all traffic stays in namespaces the test creates (sytest-*),
# which it removes, with every process it started, when it ends.

set -u -o pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
if [ "$(id -u)" != 0 ]; then
	echo "soak.sh: run as root (the soak creates network namespaces)" >&2
	exit 2
fi
REPORT=$(mktemp /tmp/switchyard-soak.XXXXXX.md) # the test writes the table here
trap 'rm -f "$REPORT"' EXIT

cd "$REPO" || exit 2
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | grep -qv '^??' && echo " (with uncommitted changes)")
knobs=$(env | grep '^SWITCHYARD_SOAK_' | grep -v '^SWITCHYARD_SOAK_REPORT=' | sort | tr '\n' ' ')
echo "soak: commit $commit$dirty, $(date -u '+%Y-%m-%d %H:%M UTC')" >&2

SWITCHYARD_SOAK=1 SWITCHYARD_SOAK_REPORT="$REPORT" \
	timeout 11m go test -count=1 -v -timeout 11m ./testing/soak/ >"$REPORT.log" 2>&1
rc=$?
grep -E '^\s+(soak|attack|world|probe|victim)_test\.go:' "$REPORT.log" | grep -v '^\s*|' >&2

echo
echo "Command: \`${knobs}benchmarks/soak.sh\` at commit $commit$dirty, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
cat "$REPORT"
if [ "$rc" != 0 ]; then
	echo
	echo "goals missed (or the soak failed): full log in $REPORT.log"
	trap - EXIT
	rm -f "$REPORT"
else
	rm -f "$REPORT.log"
fi
exit "$rc"
