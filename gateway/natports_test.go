package gateway

import "testing"

// TestNetstackPorts: the netstack's ephemeral ports never overlap the
// masquerade range, and take the larger part of 16000-65535 it leaves.
func TestNetstackPorts(t *testing.T) {
	for _, tc := range []struct {
		masq        [2]uint16
		first, last uint16
		fails       bool
	}{
		{masq: [2]uint16{61000, 65535}, first: 16000, last: 60999}, // the default: as before
		{masq: [2]uint16{20000, 30000}, first: 30001, last: 65535},
		{masq: [2]uint16{40000, 59999}, first: 16000, last: 39999},
		{masq: [2]uint16{2000, 9999}, first: 16000, last: 65535},
		{masq: [2]uint16{16000, 65535}, first: 1024, last: 15999},
		{masq: [2]uint16{10000, 65535}, first: 1024, last: 9999},
		{masq: [2]uint16{16001, 65534}, first: 16000, last: 16000},
		{masq: [2]uint16{1, 65535}, fails: true},
		{masq: [2]uint16{1024, 65535}, fails: true},
	} {
		first, last, err := netstackPorts(tc.masq)
		switch {
		case tc.fails && err == nil:
			t.Errorf("netstackPorts(%v) = %d-%d, want an error", tc.masq, first, last)
		case !tc.fails && (err != nil || first != tc.first || last != tc.last):
			t.Errorf("netstackPorts(%v) = %d-%d, %v; want %d-%d", tc.masq, first, last, err, tc.first, tc.last)
		case err == nil && first <= tc.masq[1] && last >= tc.masq[0]:
			t.Errorf("netstackPorts(%v) = %d-%d: overlaps", tc.masq, first, last)
		}
	}
}
