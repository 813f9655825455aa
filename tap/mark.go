package tap

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// Switchyard's TAPs carry a mark, so that a restarted daemon adopts and
// deletes only its own devices. After a crash the daemon finds its
// endpoints' interfaces by name; by then anything may stand under that
// name (a veth someone made, another program's TAP), and deleting a veth
// deletes its peer too. The mark is the interface alias (IFLA_IFALIAS,
// what `ip link set NAME alias` sets), written when the device is made;
// only a TAP (link type tuntap) with the mark is adopted or removed.

// Mark is the interface alias of every TAP Switchyard makes.
const Mark = "switchyard"

// ErrNotOurs is returned for an interface that Switchyard did not make:
// it is neither adopted nor deleted.
var ErrNotOurs = errors.New("not a TAP Switchyard made (no switchyard alias): left alone")

// setMark marks the new TAP name.
func setMark(h *netlink.Handle, name string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := h.LinkSetAlias(link, Mark); err != nil {
		return fmt.Errorf("mark %s as Switchyard's: %w", name, err)
	}
	return nil
}

// ours reports whether link is a TAP Switchyard made.
func ours(link netlink.Link) bool {
	return link.Type() == "tuntap" && link.Attrs().Alias == Mark
}

// checkMark fails with ErrNotOurs unless the interface name is a TAP
// Switchyard made.
func checkMark(h *netlink.Handle, name string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if !ours(link) {
		return fmt.Errorf("interface %s (%s): %w", name, link.Type(), ErrNotOurs)
	}
	return nil
}
