// Package tunnel is the wire format of Switchyard's host-to-host tunnel: how
// an Ethernet frame leaving one switch is wrapped into a UDP payload, and how
// a UDP payload arriving from a peer is checked and unwrapped back into a
// frame. It opens no sockets and starts no goroutines; the tunnel Port that
// owns the UDP socket builds on it.
//
// Two encapsulations are provided:
//
//   - VXLAN (RFC 7348, wire.go): an 8-byte header carrying a 24-bit VNI,
//     byte-compatible with the Linux kernel's vxlan device on UDP port 4789.
//     No confidentiality, no integrity; for trusted underlays.
//   - Secure (secure.go): the same VXLAN-tagged frame sealed with
//     ChaCha20-Poly1305 under a pre-shared key, behind a 16-byte header that
//     names the key and the sender and carries a counter. Not VXLAN on the
//     wire; both ends must be Switchyard. Replays are refused with a sliding
//     window per sender (replay.go). The wire layout, nonce and associated
//     data are drawn at the top of secure.go.
//
// # Buffers and headroom
//
// Nothing here allocates per datagram. Encapsulation works in place in a
// buffer the caller owns: the caller copies the inner frame behind enough
// headroom for the headers and, for Seal, leaves TagLen bytes of capacity
// after it. Decapsulation returns a view into the datagram it was given.
//
//	VXLAN:   buf[0:8] header         buf[8:]   frame
//	         ▲ EncodeVXLAN(buf, vni) writes here; buf is the UDP payload
//
//	Secure:  buf[0:16] secure header  buf[16:24] VXLAN header  buf[24:n] frame  cap ≥ n+16
//	         ▲ Sealer.Seal(buf[:n], vni) writes both headers, encrypts buf[16:n]
//	           in place and returns buf[:n+16], the UDP payload
//
// # Receive path
//
//	UDP payload ──► Opener.Open (secure only) ──► DecodeVXLAN ──► vni, frame
//	                 │ decrypts in place            │
//	                 ▼                              ▼
//	          ErrTruncated, ErrVersion,       ErrTruncated, ErrVNIFlag
//	          ErrType, ErrUnknownKey,
//	          ErrReplay, ErrAuth, ErrReflected
//
// The data path returns these sentinel errors unwrapped, so that a flood of
// bad datagrams costs no allocation; a Port compares with errors.Is and bumps
// one counter per sentinel instead of logging. Errors from configuration
// (keys, key files, buffer sizes) wrap a sentinel in a message that names the
// offending input.
package tunnel
