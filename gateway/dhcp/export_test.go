package dhcp

import "time"

// SetClock makes s read the time from now instead of time.Now. Call it
// before the first frame.
func SetClock(s *Server, now func() time.Time) { s.now = now }
