package vswitch

// Hooks for the external tests in package vswitch_test.

// RefreshClock makes the switch read its clock now instead of at the next
// janitor tick.
func (s *Switch) RefreshClock() { s.refreshClock() }

// Sweep removes aged entries now.
func (s *Switch) Sweep() int { return s.fdb.sweep(s.refreshClock()) }

// Segment is SegmentFrame, under the name the fuzzers use.
var Segment = SegmentFrame

// CompleteChecksum exposes completeChecksum to the tests.
var CompleteChecksum = completeChecksum
