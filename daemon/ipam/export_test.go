package ipam

// Hooks for the external tests in package ipam_test.

// Runs returns the number of runs of taken addresses the pool keeps, which
// is what its memory grows with.
func (p *Pool) Runs() int { return len(p.taken.runs) }
