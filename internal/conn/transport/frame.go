package transport

import (
	"encoding/binary"
	"time"
)

// violation is a frame-level refusal found by frameObserver: the close code
// to send and a short static reason.
type violation struct {
	code   uint16
	reason string
}

// Static violations, so that refusing a frame never allocates.
var (
	vMask         = &violation{StatusProtocolError, "bad frame masking"}
	vRSV          = &violation{StatusProtocolError, "reserved bits set"}
	vOpcode       = &violation{StatusProtocolError, "reserved opcode"}
	vControlFrag  = &violation{StatusProtocolError, "fragmented control frame"}
	vControlLen   = &violation{StatusProtocolError, "control frame too long"}
	vContinuation = &violation{StatusProtocolError, "continuation without a message"}
	vInterleaved  = &violation{StatusProtocolError, "new message inside a fragmented message"}
	vLength       = &violation{StatusProtocolError, "invalid payload length"}
	vBinary       = &violation{StatusUnsupportedData, "binary messages not accepted"}
	vTooBig       = &violation{StatusMessageTooBig, "message too big"}
	vFragments    = &violation{StatusMessageTooBig, "too many fragments"}
	vControlFlood = &violation{StatusPolicyViolation, "too many control frames"}
	vUTF8         = &violation{StatusInvalidPayload, "invalid payload"}
)

// Control frames (ping, pong) are answered or handled by the transport itself, so
// no message rate limit above it sees them: a client could otherwise make the
// server write a pong for every ping as fast as it can send them. A peer gets
// controlBurst of them at once and controlRate per second after that; the server
// itself pings once per keepalive interval, and no RFC 6455 client needs more.
const (
	controlRate  = 50
	controlBurst = 100
	controlGap   = int64(time.Second / controlRate)
)

// frameObserver parses WebSocket frame headers out of the byte stream that
// gws is about to read, without copying or allocating, and refuses a frame as
// soon as its header is complete: gws never sees the header of a refused
// frame, so it never allocates for its payload.
//
// It only looks at headers; payload bytes are counted and skipped.
type frameObserver struct {
	expectMasked bool   // server side: client frames must be masked
	allowRSV1    bool   // permessage-deflate is enabled locally (gws checks negotiation)
	allowBinary  bool   //
	maxBytes     uint64 // per message, as counted on the wire
	maxFragments int    //

	hdr       [14]byte // header being assembled
	hlen      int      // bytes of hdr filled
	need      int      // total header length once hdr[1] is known, else 0
	remaining uint64   // payload bytes of the current frame still to skip

	inMessage bool   // a fragmented data message is open
	fragments int    // frames of the open message
	msgBytes  uint64 // payload bytes of the open message

	// Text validation (RFC 6455 §8.1: fail fast on invalid UTF-8): the
	// payload of an uncompressed text message is checked as it streams by,
	// so a message fails at the byte that makes it invalid, not when its
	// last fragment arrives. Compressed text is checked by gws after
	// inflating.
	msgText    bool       // the open data message is uncompressed text
	frameText  bool       // the current frame's payload is validated
	frameFinal bool       // the current frame ends the validated message
	frameMask  bool       // the current frame is masked
	maskKey    [4]byte    //
	maskPos    int        // payload offset into the current frame, mod 4
	text       utf8Stream // state carried across chunks and fragments

	closeSeen bool // the peer's close frame header went by
	failed    *violation

	// limitControl enables the ping/pong budget (server side); controlTAT is
	// the GCRA theoretical arrival time in unix nanoseconds.
	limitControl bool
	controlTAT   int64
}

// allowControl spends one control frame of the budget.
func (o *frameObserver) allowControl(now int64) bool {
	tat := max(o.controlTAT, now)
	if tat-now > (controlBurst-1)*controlGap {
		return false
	}
	o.controlTAT = tat + controlGap
	return true
}

// scan feeds the next chunk of the stream. When a frame is refused it returns
// the violation and the number of leading bytes of b that belong to earlier,
// accepted frames (0 when the refused header began in an earlier chunk);
// otherwise it returns len(b), nil. After a violation the observer stays
// failed and accepts nothing more.
func (o *frameObserver) scan(b []byte) (int, *violation) {
	if o.failed != nil {
		return 0, o.failed
	}
	start, startedHere := 0, false // where in b the header being assembled began
	for i := 0; i < len(b); {
		if o.remaining > 0 {
			skip := uint64(len(b) - i)
			if skip > o.remaining {
				skip = o.remaining
			}
			if o.frameText {
				if bad := o.validate(b[i : i+int(skip)]); bad >= 0 {
					// gws gets the payload before the bad byte; its next
					// read sends the close.
					o.failed = vUTF8
					return i + bad, vUTF8
				}
			}
			o.remaining -= skip
			i += int(skip)
			if o.remaining == 0 && o.frameText && o.frameFinal && !o.text.complete() {
				// The message ends inside a code point: withhold the last
				// byte so gws never completes the message.
				o.failed = vUTF8
				return i - 1, vUTF8
			}
			continue
		}
		if o.hlen == 0 {
			start, startedHere = i, true
		}
		o.hdr[o.hlen] = b[i]
		o.hlen++
		i++
		if o.hlen == 2 {
			o.need = 2
			switch o.hdr[1] & 0x7f {
			case 126:
				o.need += 2
			case 127:
				o.need += 8
			}
			if o.hdr[1]&0x80 != 0 {
				o.need += 4
			}
		}
		if o.hlen < 2 || o.hlen < o.need {
			continue
		}
		length, v := o.check()
		if v == nil && o.frameText {
			o.frameMask = o.hdr[1]&0x80 != 0
			if o.frameMask {
				copy(o.maskKey[:], o.hdr[o.need-4:o.need])
			}
			o.maskPos = 0
			if length == 0 && o.frameFinal && !o.text.complete() {
				v = vUTF8
			}
		}
		o.hlen, o.need = 0, 0
		if v != nil {
			o.failed = v
			if !startedHere {
				return 0, v
			}
			return start, v
		}
		o.remaining = length
	}
	return len(b), nil
}

// check validates a complete header and returns the payload length.
func (o *frameObserver) check() (uint64, *violation) {
	b0, b1 := o.hdr[0], o.hdr[1]
	fin := b0&0x80 != 0
	rsv1 := b0&0x40 != 0
	op := b0 & 0x0f
	masked := b1&0x80 != 0

	var length uint64
	switch l := b1 & 0x7f; l {
	case 126:
		length = uint64(binary.BigEndian.Uint16(o.hdr[2:4]))
	case 127:
		length = binary.BigEndian.Uint64(o.hdr[2:10])
		if length>>63 != 0 { // RFC 6455 §5.2: the most significant bit MUST be 0
			return 0, vLength
		}
	default:
		length = uint64(l)
	}

	if masked != o.expectMasked {
		return 0, vMask
	}
	if b0&0x30 != 0 { // RSV2, RSV3: no extension we support defines them
		return 0, vRSV
	}

	switch op {
	case 0x8, 0x9, 0xA: // close, ping, pong
		if !fin {
			return 0, vControlFrag
		}
		if length > 125 {
			return 0, vControlLen
		}
		if rsv1 { // RFC 7692 §6: RSV1 only on the first frame of a data message
			return 0, vRSV
		}
		o.frameText = false
		if op == 0x8 {
			o.closeSeen = true
		} else if o.limitControl && !o.allowControl(time.Now().UnixNano()) {
			return 0, vControlFlood
		}
		return length, nil

	case 0x0: // continuation
		if !o.inMessage {
			return 0, vContinuation
		}
		if rsv1 {
			return 0, vRSV
		}
		o.fragments++
		if o.fragments > o.maxFragments {
			return 0, vFragments
		}
		if length > o.maxBytes || o.msgBytes+length > o.maxBytes {
			return 0, vTooBig
		}
		o.msgBytes += length
		if fin {
			o.inMessage = false
		}
		o.frameText, o.frameFinal = o.msgText, fin
		return length, nil

	case 0x1, 0x2: // text, binary
		if o.inMessage {
			return 0, vInterleaved
		}
		if rsv1 && !o.allowRSV1 {
			return 0, vRSV
		}
		if op == 0x2 && !o.allowBinary {
			return 0, vBinary
		}
		if length > o.maxBytes {
			return 0, vTooBig
		}
		o.fragments, o.msgBytes = 1, length
		o.inMessage = !fin
		o.msgText = op == 0x1 && !rsv1
		o.text = utf8Stream{}
		o.frameText, o.frameFinal = o.msgText, fin
		return length, nil

	default: // 0x3-0x7, 0xB-0xF
		return 0, vOpcode
	}
}

// validate feeds payload bytes of the current text frame to the UTF-8
// stream and returns the index of the first invalid byte, or -1.
func (o *frameObserver) validate(p []byte) int {
	var bad int
	if o.frameMask {
		bad = maskedUTF8(&o.text, p, o.maskKey, o.maskPos)
	} else {
		bad = o.text.feed(p)
	}
	o.maskPos = (o.maskPos + len(p)) & 3
	return bad
}
