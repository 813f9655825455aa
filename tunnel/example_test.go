package tunnel_test

import (
	"fmt"

	"github.com/switchyard-net/switchyard/tunnel"
)

// A frame crosses a plain VXLAN tunnel: the sender copies it behind 8
// bytes of headroom and writes the header in place; the receiver gets the
// frame back as a view of the datagram.
func ExampleEncodeVXLAN() {
	frame := make([]byte, 60) // an Ethernet frame from the switch
	frame[0] = 0xff

	buf := make([]byte, 65535) // one per writer, reused for every frame
	n := copy(buf[tunnel.VXLANHeaderLen:], frame)
	udpPayload := buf[:tunnel.VXLANHeaderLen+n]
	if err := tunnel.EncodeVXLAN(udpPayload, 42); err != nil {
		panic(err)
	}

	vni, inner, err := tunnel.DecodeVXLAN(udpPayload)
	fmt.Printf("% x\n", udpPayload[:8])
	fmt.Println(vni, len(inner), err)
	// Output:
	// 08 00 00 00 00 00 2a 00
	// 42 60 <nil>
}

// A frame crosses a secure tunnel. Both hosts hold the same key; each has
// its own sender ID.
func ExampleSealer() {
	key := tunnel.GenerateKey() // in production: tunnel.LoadKey(path)
	const keyID = 1
	sealer, err := tunnel.NewSealer(key, keyID, 0x0a000001) // host A
	if err != nil {
		panic(err)
	}
	opener := tunnel.NewOpener(0x0a000002) // host B
	if err := opener.SetKey(keyID, key); err != nil {
		panic(err)
	}

	frame := make([]byte, 60)
	buf := make([]byte, tunnel.SecureHeadroom+9014+tunnel.TagLen) // once per writer
	n := copy(buf[tunnel.SecureHeadroom:], frame)
	dgram, err := sealer.Seal(buf[:tunnel.SecureHeadroom+n], 42)
	if err != nil {
		panic(err)
	}

	inner, sender, err := opener.Open(dgram) // decrypts in place
	if err != nil {
		panic(err) // a Port counts the error and drops the datagram
	}
	vni, rxFrame, err := tunnel.DecodeVXLAN(inner)
	fmt.Printf("%d bytes on the wire, sender %#x, vni %d, frame %d bytes, %v\n", len(dgram), sender, vni, len(rxFrame), err)

	_, _, err = opener.Open(dgram) // the same datagram again
	fmt.Println(err)
	// Output:
	// 100 bytes on the wire, sender 0xa000001, vni 42, frame 60 bytes, <nil>
	// tunnel: replayed or stale datagram
}
