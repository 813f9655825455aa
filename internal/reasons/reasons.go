// Package reasons holds what the switch's and the tunnel's DropReason
// types share: each is a small integer counted in an array of counters,
// named by a fixed table for metrics and the CLI.
package reasons

// Name returns names[r], or "unknown" for a reason past the table.
func Name[R ~uint8](names []string, r R) string {
	if int(r) < len(names) {
		return names[r]
	}
	return "unknown"
}

// All lists the n reasons 0 … n-1, in counter order.
func All[R ~uint8](n int) []R {
	rs := make([]R, n)
	for i := range rs {
		rs[i] = R(i)
	}
	return rs
}
