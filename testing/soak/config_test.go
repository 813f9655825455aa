package soak_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// config is one soak's knobs, read from the environment.
type config struct {
	load     time.Duration // how long the attack lasts, per network
	settle   time.Duration // longest wait for the daemon to return to its start
	iccModes []bool        // one network per entry, attacked in turn
	pps      int           // MAC flood frames per second
	conns    int           // connections per burst
	rssMB    int           // the bound on the daemon's peak RSS
	report   string        // file the markdown rows are appended to ("" for none)
	attack   bool          // false: the control run, the victim's loops alone
}

// maxTotal is the longest a whole soak may last.
const maxTotal = 10 * time.Minute

// setupAllowance is what setting up and tearing down one network's world
// and the newcomer's check take at most, counted against maxTotal (with
// the load, the requests after it and the settle time).
const setupAllowance = 60 * time.Second

func loadConfig() (config, error) {
	c := config{load: 60 * time.Second, settle: 100 * time.Second, iccModes: []bool{true, false},
		pps: 5000, conns: 2000, rssMB: 96, report: os.Getenv("SWITCHYARD_SOAK_REPORT"),
		attack: os.Getenv("SWITCHYARD_SOAK_ATTACK") != "0"}
	var err error
	if c.load, err = envDuration("SWITCHYARD_SOAK_DURATION", c.load); err != nil {
		return c, err
	}
	if c.settle, err = envDuration("SWITCHYARD_SOAK_SETTLE", c.settle); err != nil {
		return c, err
	}
	if c.pps, err = envInt("SWITCHYARD_SOAK_PPS", c.pps, 1, 200000); err != nil {
		return c, err
	}
	if c.conns, err = envInt("SWITCHYARD_SOAK_CONNS", c.conns, 1, 10000); err != nil {
		return c, err
	}
	if c.rssMB, err = envInt("SWITCHYARD_SOAK_RSS_MB", c.rssMB, 1, 1<<20); err != nil {
		return c, err
	}
	if v := os.Getenv("SWITCHYARD_SOAK_ICC"); v != "" {
		c.iccModes = nil
		for _, f := range strings.Split(v, ",") {
			b, err := strconv.ParseBool(strings.TrimSpace(f))
			if err != nil {
				return c, fmt.Errorf("SWITCHYARD_SOAK_ICC=%q: want true, false or both, comma-separated: %w", v, err)
			}
			c.iccModes = append(c.iccModes, b)
		}
	}
	if c.load < 10*time.Second {
		return c, fmt.Errorf("SWITCHYARD_SOAK_DURATION=%s: want at least 10s", c.load)
	}
	if total := c.total(); total > maxTotal {
		return c, fmt.Errorf("a soak of %d network(s) × (%s load + %s after it + %s settle + %s set-up) could last %s: want at most %s",
			len(c.iccModes), c.load, afterWindow, c.settle, setupAllowance, total, maxTotal)
	}
	return c, nil
}

// total is the longest the soak can last.
func (c config) total() time.Duration {
	return time.Duration(len(c.iccModes)) * (c.load + afterWindow + c.settle + setupAllowance)
}

func envDuration(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration like 90s or 2m", name, v)
	}
	return d, nil
}

func envInt(name string, def, lo, hi int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s=%q: want a whole number from %d to %d", name, v, lo, hi)
	}
	return n, nil
}
