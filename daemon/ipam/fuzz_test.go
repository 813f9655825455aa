package ipam_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/ipam"
)

// poolModel is the reference FuzzPool checks a Pool against: the state of
// every address of a small subnet (at most 64 addresses), kept in slices.
type poolModel struct {
	cfg     ipam.Config
	n       int      // addresses in the subnet
	fixed   []error  // ErrReserved or ErrInUse for addresses no endpoint may hold
	owner   []string // "" when free
	inRange []bool
}

// fuzzModel decodes shape into a small subnet and its model:
//
//	bit 0     IPv6
//	bits 1-3  host bits: 2 + value%5 (4 to 64 addresses)
//	bit 4     subnet at the top of the address space (255.255.255.x, ffff:…)
//	bits 5-6  ip-range: whole subnet, upper half, lower quarter, one address
//	bit 7     explicit gateway near the end of the subnet instead of the first address
//	bit 8     one aux address (subnets of 8 addresses or more)
func fuzzModel(shape uint16) *poolModel {
	v6 := shape&1 == 1
	host := 2 + int(shape>>1&7)%5
	top := shape>>4&1 == 1
	n := 1 << host

	base := netip.MustParseAddr("10.240.0.0")
	bits := 32 - host
	if v6 {
		base, bits = netip.MustParseAddr("fd00:1::"), 128-host
	}
	if top {
		base = netip.MustParseAddr("255.255.255.255")
		if v6 {
			base = netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
		}
	}
	m := &poolModel{n: n, fixed: make([]error, n), owner: make([]string, n), inRange: make([]bool, n)}
	m.cfg.Subnet = netip.PrefixFrom(base, bits).Masked()

	m.fixed[0] = ipam.ErrReserved // network address, subnet-router anycast
	if !v6 {
		m.fixed[n-1] = ipam.ErrReserved // broadcast
	}
	gw := 1
	if shape>>7&1 == 1 {
		gw = n - 2
		if v6 {
			gw = n - 1
		}
		m.cfg.Gateway = m.addr(gw)
	}
	m.fixed[gw] = ipam.ErrInUse
	if shape>>8&1 == 1 && n >= 8 {
		m.cfg.Aux = map[string]netip.Addr{"aux": m.addr(n/2 + 1)}
		m.fixed[n/2+1] = ipam.ErrInUse
	}

	lo, hi := 0, n
	switch shape >> 5 & 3 {
	case 1:
		m.cfg.IPRange = netip.PrefixFrom(m.addr(n/2), bits+1)
		lo = n / 2
	case 2:
		m.cfg.IPRange = netip.PrefixFrom(m.addr(0), bits+2)
		hi = n / 4
	case 3:
		m.cfg.IPRange = netip.PrefixFrom(m.addr(n/2+1), m.addr(0).BitLen())
		lo, hi = n/2+1, n/2+2
	}
	for i := lo; i < hi; i++ {
		m.inRange[i] = true
	}
	return m
}

// addr returns the address at offset i of the subnet.
func (m *poolModel) addr(i int) netip.Addr {
	b := m.cfg.Subnet.Addr().AsSlice()
	b[len(b)-1] |= byte(i)
	a, _ := netip.AddrFromSlice(b)
	return a
}

// lowestFree returns the offset Allocate must hand out, or -1.
func (m *poolModel) lowestFree() int {
	for i := range m.n {
		if m.inRange[i] && m.fixed[i] == nil && m.owner[i] == "" {
			return i
		}
	}
	return -1
}

// counts returns the model's InUse and Free.
func (m *poolModel) counts() (inUse int, free uint64) {
	for i := range m.n {
		if m.owner[i] != "" {
			inUse++
		} else if m.inRange[i] && m.fixed[i] == nil {
			free++
		}
	}
	return inUse, free
}

// FuzzPool drives a small pool with a random sequence of Allocate, Reserve
// and Release and checks every result against poolModel: Allocate always
// returns the lowest free address of the ip-range (so never an address that
// is taken, fixed or outside the range, and a released address comes back
// first), Reserve and Release succeed exactly when they should and fail with
// the right sentinel, and InUse, Free and Owner agree with the model after
// every step. At the end, a pool rebuilt by reserving every held address (as
// the daemon does at start-up) must agree with the original.
func FuzzPool(f *testing.F) {
	f.Add(uint16(0), []byte{0, 0, 0, 0, 0, 0})                                           // fill a /30
	f.Add(uint16(0b1_1_01_0_100_0), []byte{0, 0, 1, 20, 1, 20, 4, 0, 0, 0, 2, 21, 3, 3}) // /26, aux, gw at end, upper half
	f.Add(uint16(0b1_0_10_1_011_1), []byte{0, 0, 0, 0, 2, 2, 0, 0, 1, 0, 1, 1, 3, 0})    // IPv6 top of space
	f.Add(uint16(0b0_1_11_0_001_0), []byte{0, 0, 1, 5, 0, 0, 2, 5, 0, 0})                // single-address range

	f.Fuzz(func(t *testing.T, shape uint16, ops []byte) {
		m := fuzzModel(shape)
		p, err := ipam.New(m.cfg)
		if err != nil {
			t.Fatalf("New(%+v): %v", m.cfg, err)
		}
		outside := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}

		for step := 0; len(ops) >= 2 && step < 500; step++ {
			op, arg := ops[0], ops[1]
			ops = ops[2:]
			owner := fmt.Sprint("ep", step)

			switch op % 5 {
			case 0: // Allocate
				want := m.lowestFree()
				a, err := p.Allocate(owner)
				if want < 0 {
					if !errors.Is(err, ipam.ErrExhausted) {
						t.Fatalf("step %d: Allocate on a full range = %s, %v; want ErrExhausted", step, a, err)
					}
					break
				}
				if err != nil {
					t.Fatalf("step %d: Allocate: %v; want %s", step, err, m.addr(want))
				}
				if !p.IPRange().Contains(a) {
					t.Fatalf("step %d: Allocate = %s, outside ip-range %s", step, a, p.IPRange())
				}
				if a == p.Gateway() {
					t.Fatalf("step %d: Allocate handed out the gateway %s", step, a)
				}
				if a != m.addr(want) {
					t.Fatalf("step %d: Allocate = %s; want the lowest free %s", step, a, m.addr(want))
				}
				m.owner[want] = owner

			case 1: // Reserve inside the subnet
				i := int(arg) % m.n
				err := p.Reserve(m.addr(i), owner)
				switch {
				case m.fixed[i] != nil:
					if !errors.Is(err, m.fixed[i]) {
						t.Fatalf("step %d: Reserve(%s) of a fixed address: %v; want %v", step, m.addr(i), err, m.fixed[i])
					}
				case m.owner[i] != "":
					if !errors.Is(err, ipam.ErrInUse) || !strings.Contains(err.Error(), m.owner[i]) {
						t.Fatalf("step %d: Reserve(%s) held by %s: %v; want ErrInUse naming the holder", step, m.addr(i), m.owner[i], err)
					}
				default:
					if err != nil {
						t.Fatalf("step %d: Reserve(%s) of a free address: %v", step, m.addr(i), err)
					}
					m.owner[i] = owner
				}

			case 2: // Release inside the subnet
				i := int(arg) % m.n
				err := p.Release(m.addr(i))
				if m.owner[i] == "" {
					if !errors.Is(err, ipam.ErrNotAllocated) {
						t.Fatalf("step %d: Release(%s) of an address no endpoint holds: %v; want ErrNotAllocated", step, m.addr(i), err)
					}
					break
				}
				if err != nil {
					t.Fatalf("step %d: Release(%s): %v", step, m.addr(i), err)
				}
				m.owner[i] = ""

			case 3: // Reserve or Release outside the subnet
				a := outside[arg>>1&1]
				if arg&1 == 0 {
					err = p.Reserve(a, owner)
				} else {
					err = p.Release(a)
				}
				if !errors.Is(err, ipam.ErrOutside) {
					t.Fatalf("step %d: op on %s outside %s: %v; want ErrOutside", step, a, m.cfg.Subnet, err)
				}

			case 4: // Release the arg-th held address
				var held []int
				for i, o := range m.owner {
					if o != "" {
						held = append(held, i)
					}
				}
				if len(held) == 0 {
					break
				}
				i := held[int(arg)%len(held)]
				if err := p.Release(m.addr(i)); err != nil {
					t.Fatalf("step %d: Release(%s): %v", step, m.addr(i), err)
				}
				m.owner[i] = ""
			}

			inUse, free := m.counts()
			if p.InUse() != inUse || p.Free() != free {
				t.Fatalf("step %d: InUse() = %d, Free() = %d; want %d and %d", step, p.InUse(), p.Free(), inUse, free)
			}
			for i := range m.n {
				if o, ok := p.Owner(m.addr(i)); o != m.owner[i] || ok != (m.owner[i] != "") {
					t.Fatalf("step %d: Owner(%s) = %q, %v; want %q", step, m.addr(i), o, ok, m.owner[i])
				}
			}
		}

		// Rebuild as the daemon does at start-up; the two pools must agree.
		q, err := ipam.New(m.cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range m.owner {
			if o != "" {
				if err := q.Reserve(m.addr(i), o); err != nil {
					t.Fatalf("rebuild: Reserve(%s, %s): %v", m.addr(i), o, err)
				}
			}
		}
		if q.InUse() != p.InUse() || q.Free() != p.Free() {
			t.Fatalf("rebuilt pool: InUse() = %d, Free() = %d; original %d and %d", q.InUse(), q.Free(), p.InUse(), p.Free())
		}
		a1, err1 := p.Allocate("last")
		a2, err2 := q.Allocate("last")
		if a1 != a2 || (err1 == nil) != (err2 == nil) {
			t.Fatalf("next Allocate: original %s, %v; rebuilt %s, %v", a1, err1, a2, err2)
		}
	})
}
