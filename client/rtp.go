package client

import "github.com/pion/rtp"

// rtpPacket parses received packets into reused storage.
type rtpPacket struct {
	hdr     rtp.Header
	payload []byte
}

func (p *rtpPacket) parse(b []byte) error {
	n, err := p.hdr.Unmarshal(b)
	if err != nil {
		return err
	}
	end := len(b)
	if p.hdr.Padding && end > n {
		end -= int(b[end-1])
		if end < n {
			end = n
		}
	}
	p.payload = b[n:end]
	return nil
}
