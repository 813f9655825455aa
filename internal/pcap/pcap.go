// Package pcap writes captures in the classic libpcap file format
// (readable by tcpdump, tshark and Wireshark): a 24-byte file header, then
// for each frame a 16-byte record header and the frame's bytes.
//
// It is written here rather than taken from gopacket's pcapgo, whose
// writer needs gopacket's protocol-layer package for one link-type
// constant; the format itself is two fixed headers.
package pcap

import (
	"encoding/binary"
	"io"
	"time"
)

// LinkTypeEthernet is DLT_EN10MB.
const LinkTypeEthernet = 1

// Snaplen is the largest frame kept whole: large enough for the 64 KiB
// superframes of TAPs with segmentation offload (tcpdump uses the same).
const Snaplen = 262144

const (
	magicMicroseconds = 0xa1b2c3d4
	versionMajor      = 2
	versionMinor      = 4
)

// Writer writes one capture.
type Writer struct {
	w   io.Writer
	hdr [16]byte
}

// NewWriter writes the file header for Ethernet frames and returns a
// writer for the records.
func NewWriter(w io.Writer) (*Writer, error) {
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], magicMicroseconds)
	binary.LittleEndian.PutUint16(h[4:], versionMajor)
	binary.LittleEndian.PutUint16(h[6:], versionMinor)
	// thiszone and sigfigs stay zero.
	binary.LittleEndian.PutUint32(h[16:], Snaplen)
	binary.LittleEndian.PutUint32(h[20:], LinkTypeEthernet)
	if _, err := w.Write(h[:]); err != nil {
		return nil, err
	}
	return &Writer{w: w}, nil
}

// WriteFrame writes one frame captured at t (cut to Snaplen).
func (p *Writer) WriteFrame(t time.Time, frame []byte) error {
	kept := min(len(frame), Snaplen)
	binary.LittleEndian.PutUint32(p.hdr[0:], uint32(t.Unix()))
	binary.LittleEndian.PutUint32(p.hdr[4:], uint32(t.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(p.hdr[8:], uint32(kept))
	binary.LittleEndian.PutUint32(p.hdr[12:], uint32(len(frame)))
	if _, err := p.w.Write(p.hdr[:]); err != nil {
		return err
	}
	_, err := p.w.Write(frame[:kept])
	return err
}
