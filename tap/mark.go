package tap

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// Switchyard's TAPs carry a mark, so that a restarted daemon adopts and
// deletes only its own devices. After a crash the daemon finds its
// endpoints' interfaces by name; by then anything may stand under that
// name (a veth someone made, another program's TAP), and deleting a veth
// deletes its peer too. The mark is the interface alias (IFLA_IFALIAS,
// what `ip link set NAME alias` sets), written when the device is made;
// only a TAP (link type tuntap) with the mark is adopted or removed.
//
// A daemon also writes its own ID after the mark (Config.Owner), so that
// it can find the TAPs a previous life of its own left behind and no
// record names any more (its state file lost): Marked lists them, and no
// other daemon's.

// Mark is the interface alias of every TAP Switchyard makes, or its first
// word, followed by the owner's ID.
const Mark = "switchyard"

// markFor is the alias of a TAP made for owner.
func markFor(owner string) string {
	if owner == "" {
		return Mark
	}
	return Mark + " " + owner
}

// ErrNotOurs is returned for an interface that Switchyard did not make:
// it is neither adopted nor deleted.
var ErrNotOurs = errors.New("not a TAP Switchyard made (no switchyard alias): left alone")

// setMark marks the new TAP name as owner's.
func setMark(h *netlink.Handle, name, owner string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := h.LinkSetAlias(link, markFor(owner)); err != nil {
		return fmt.Errorf("mark %s as Switchyard's: %w", name, err)
	}
	return nil
}

// ours reports whether link is a TAP Switchyard made.
func ours(link netlink.Link) bool {
	a := link.Attrs().Alias
	return link.Type() == "tuntap" && (a == Mark || strings.HasPrefix(a, Mark+" "))
}

// Marked lists the TAPs in the namespace at nsPath ("" for this process's
// own) that Switchyard made for owner. It needs to enter the namespace
// itself: namespaces only a helper can enter are not searched (nil).
func Marked(nsPath, owner string) ([]string, error) {
	if owner == "" || needsHelper(nsPath) {
		return nil, nil
	}
	links, err := linkList(nsPath)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range links {
		if l.Type() == "tuntap" && l.Attrs().Alias == markFor(owner) {
			names = append(names, l.Attrs().Name)
		}
	}
	return names, nil
}

// FindMarked returns the name of the TAP in the namespace at nsPath that
// Switchyard made for owner with MAC mac, or "" if there is none: a TAP
// handed to a container runtime, which moved it there and renamed it.
func FindMarked(nsPath, owner string, mac vswitch.MAC) (string, error) {
	if owner == "" || needsHelper(nsPath) {
		return "", nil
	}
	links, err := linkList(nsPath)
	if err != nil {
		return "", err
	}
	for _, l := range links {
		a := l.Attrs()
		if l.Type() == "tuntap" && a.Alias == markFor(owner) && bytes.Equal(a.HardwareAddr, mac[:]) {
			return a.Name, nil
		}
	}
	return "", nil
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
