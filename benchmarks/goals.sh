#!/usr/bin/env bash
# goals.sh - issue 14's goals as same-run ratios, from bench.sh's output.
#
# Usage:
#   benchmarks/bench.sh goals > run1.md     (three times, in varied order)
#   benchmarks/goals.sh run1.md run2.md run3.md
#
# Each argument is one bench.sh invocation's stdout (its markdown table).
# A goal is a ratio of two rows of the same run (row ids are the first
# word of the scenario's label: S2, 6, 7, ...) in one column; goals.sh
# prints the ratio in each run, the median, and whether the median meets
# the goal. A row missing from a run leaves that run out of the goal.
# A second table gives, for each row a goal names, what the goals ask to
# be reported beside the ratios: RR p99 and the forwarder's CPU per
# Gbit/s in the single-stream phase (CPU % of a core ÷ Gbit/s), per run.
set -u -o pipefail
export LC_ALL=C

[ $# -ge 1 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
for f in "$@"; do
	[ -r "$f" ] || { echo "goals.sh: cannot read $f" >&2; exit 2; }
done

# goal lines: text | numerator row | denominator row | column | at least
# (columns: tcp1 = TCP 1 stream, rr = RR/s, conn = conn/s)
GOALS='port RR >= 1.0x docker-proxy, MTU 1500|S2|6|rr|1.0
port RR >= 1.0x docker-proxy, MTU 65520|S2b|6|rr|1.0
port conn/s >= 1.0x slirp4netns|S2|7|conn|1.0
port TCP >= 1.0x pasta tap path, MTU 1500|S2|8b|tcp1|1.0
port TCP >= 1.0x pasta tap path, MTU 65520|S2b|8b|tcp1|1.0
port TCP >= 0.8x docker-proxy, MTU 1500|S2|6|tcp1|0.8
port TCP >= 0.8x docker-proxy, MTU 65520|S2b|6|tcp1|0.8
L2 RR >= 0.6x the kernel bridge|S1|3|rr|0.6
L2 RR >= 1.2x vde_switch|S1|4|rr|1.2
L2 conn/s >= 0.8x the kernel bridge|S1|3|conn|0.8
tunnel RR >= 0.4x kernel vxlan|T3|T1|rr|0.4
tunnel TCP >= 0.5x kernel vxlan|T3|T1|tcp1|0.5'

awk -v goals="$GOALS" '
function median(v, n,    i, j, t) {
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
BEGIN { col["tcp1"] = 3; col["rr"] = 6; col["p99"] = 8; col["conn"] = 9; col["cpu"] = 10 }
FNR == 1 { run++; file[run] = FILENAME }
/^\| / && !/^\| scenario/ && !/^\|---/ {
	rows[run]++
	n = split($0, c, "|")
	split(c[2], w, " ")
	for (k in col) val[run, w[1], k] = c[col[k]] + 0
	seen[run, w[1]] = 1
	if (!((w[1]) in label)) { label[w[1]] = c[2]; order[++nrow] = w[1] }
}
END {
	for (r = 1; r <= run; r++) if (!rows[r]) printf "goals.sh: %s has no bench.sh table rows\n", file[r] > "/dev/stderr"
	print "| goal | runs | median | met |"
	print "|---|---|---|---|"
	ng = split(goals, g, "\n")
	for (i = 1; i <= ng; i++) {
		split(g[i], f, "|")
		m = 0; list = ""
		for (r = 1; r <= run; r++) {
			if (!seen[r, f[2]] || !seen[r, f[3]] || val[r, f[3], f[4]] == 0) continue
			x = val[r, f[2], f[4]] / val[r, f[3], f[4]]
			v[++m] = x
			list = list (list == "" ? "" : ", ") sprintf("%.2f", x)
		}
		if (m == 0) { printf "| %s | (rows %s, %s missing) | | |\n", f[1], f[2], f[3]; continue }
		md = median(v, m)
		printf "| %s | %s | %.2f | %s |\n", f[1], list, md, (md >= f[5] ? "yes" : "**no**")
		named[f[2]] = 1; named[f[3]] = 1
	}
	print ""
	print "| row | RR p99 µs, per run | forwarder CPU % per Gbit/s (1 stream), per run |"
	print "|---|---|---|"
	for (i = 1; i <= nrow; i++) {
		id = order[i]
		if (!(id in named)) continue
		p99 = ""; cpg = ""
		for (r = 1; r <= run; r++) {
			if (!seen[r, id]) continue
			p99 = p99 (p99 == "" ? "" : ", ") (val[r, id, "p99"] ? sprintf("%.0f", val[r, id, "p99"]) : "–")
			x = (val[r, id, "cpu"] && val[r, id, "tcp1"]) ? sprintf("%.1f", val[r, id, "cpu"] / val[r, id, "tcp1"]) : "–"
			cpg = cpg (cpg == "" ? "" : ", ") x
		}
		gsub(/^ +| +$/, "", label[id])
		printf "| %s | %s | %s |\n", label[id], p99, cpg
	}
}' "$@"
