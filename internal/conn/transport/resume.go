package transport

// frameProgress is where the resumable reader is inside the byte stream:
// the header bytes read so far, or the payload of a frame whose header is
// complete. Between frames it is empty (hn == 0, in == false), so an idle
// connection holds no partial bytes beyond the 14-byte header array.
type frameProgress struct {
	dst []byte // where the payload goes (from open)
	got int    // payload bytes received
	hn  uint8  // header bytes in frameReader.hdr (header stage)
	in  bool   // the header in hdr is complete: its payload is being read
}

// feed parses p, a chunk of the stream that passed the frame observer (so
// every header in it is within the limits; the caller stops feeding at a
// refused frame), and resumes across calls at any split point: a header or
// payload cut between two reads continues with the next chunk. Complete
// messages and control frames go to the handler as they complete. done
// reports that the read loop ends, with ev for OnClose.
func (r *frameReader) feed(p []byte) (ev error, done bool) {
	f := &r.fp
	for len(p) > 0 {
		if !f.in {
			need := 2
			if f.hn >= 2 {
				need = headerSize(r.hdr[1])
			}
			k := copy(r.hdr[f.hn:need], p)
			p, f.hn = p[k:], f.hn+uint8(k)
			if int(f.hn) < need {
				continue // p is used up
			}
			if need == 2 {
				if need = headerSize(r.hdr[1]); need > 2 {
					continue // the extended length or the mask follows
				}
			}
			dst, v := r.open(decodeHeader(r.hdr[:need]))
			if v != nil {
				*f = frameProgress{}
				return r.fail(v), true
			}
			f.hn, f.in, f.dst, f.got = 0, true, dst, 0
		} else {
			k := copy(f.dst[f.got:], p)
			p, f.got = p[k:], f.got+k
		}
		if f.got < len(f.dst) {
			continue // p is used up
		}
		// The header is still in hdr: the next one is not read before this
		// frame is done.
		h, dst := decodeHeader(r.hdr[:headerSize(r.hdr[1])]), f.dst
		*f = frameProgress{}
		if ev, done := r.frameDone(h, dst); done {
			return ev, true
		}
	}
	return nil, false
}

// partial reports whether the reader holds part of a frame.
func (r *frameReader) partial() bool { return r.fp.hn > 0 || r.fp.in }
