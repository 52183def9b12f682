package transport

import (
	"strconv"
	"strings"
)

// Names of permessage-deflate and its parameters (RFC 7692 §7).
const (
	extDeflate      = "permessage-deflate"
	extServerNoCT   = "server_no_context_takeover"
	extClientNoCT   = "client_no_context_takeover"
	extServerWindow = "server_max_window_bits"
	extClientWindow = "client_max_window_bits"
)

// deflateConfig is the server's side of permessage-deflate with gws's
// defaults made explicit, so that what is negotiated is what gws runs: its
// compressors use a window of serverBits, its decompression dictionary (with
// client context takeover) holds 2^clientBits bytes.
type deflateConfig struct {
	enabled                        bool
	serverTakeover, clientTakeover bool
	serverBits, clientBits         int
}

func newDeflateConfig(c Compression) deflateConfig {
	d := deflateConfig{
		enabled:        c.Enabled,
		serverTakeover: c.ServerContextTakeover,
		clientTakeover: c.ClientContextTakeover,
		serverBits:     c.ServerMaxWindowBits,
		clientBits:     c.ClientMaxWindowBits,
	}
	// gws v1.8.9 (option.go): 12 bits with context takeover, else 15.
	if d.serverBits == 0 {
		d.serverBits = 15
		if d.serverTakeover {
			d.serverBits = 12
		}
	}
	if d.clientBits == 0 {
		d.clientBits = 15
		if d.clientTakeover {
			d.clientBits = 12
		}
	}
	return d
}

// deflateOffer is one parsed permessage-deflate offer.
type deflateOffer struct {
	serverNoCT, clientNoCT bool
	serverBits             int  // 0: not offered
	clientBits             int  // 0: not offered; 15 when offered without a value
	clientBitsOffered      bool //
}

// negotiateDeflate chooses the response to a client's
// Sec-WebSocket-Extensions header values per RFC 7692: the first
// permessage-deflate offer the server can accept wins; an offer with an
// unknown, duplicate or invalid parameter, or asking for a server window
// smaller than the server compresses with, is declined (§5.1, §7.1.2.1). It
// returns the response value ("" to decline every offer) and the offer to
// hand to gws so that its connection state matches the response.
//
// The response carries client_max_window_bits only when the offer had it
// (§7.1.2.2); when the server must keep a smaller decompression window than
// the client could use, it answers client_no_context_takeover instead, which
// a server may always add (§7.1.1.2).
func negotiateDeflate(values []string, cfg deflateConfig) (resp, forGWS string) {
	if !cfg.enabled {
		return "", ""
	}
	for _, v := range values {
		for ext := range strings.SplitSeq(v, ",") {
			offer, ok := parseDeflateOffer(ext)
			if !ok {
				continue
			}
			if r, g, ok := acceptDeflate(offer, cfg); ok {
				return r, g
			}
		}
	}
	return "", ""
}

func acceptDeflate(o deflateOffer, cfg deflateConfig) (resp, forGWS string, ok bool) {
	if o.serverBits != 0 && cfg.serverBits > o.serverBits {
		// We cannot compress with a smaller window than configured: decline.
		return "", "", false
	}
	sct := cfg.serverTakeover && !o.serverNoCT
	cct := cfg.clientTakeover && !o.clientNoCT
	clientBits := 0 // 0: not announced
	if cct {
		switch {
		case o.clientBitsOffered:
			if b := min(cfg.clientBits, o.clientBits); b < 15 {
				clientBits = b
			}
		case cfg.clientBits < 15:
			// The client may use a 15-bit window and did not offer to
			// limit it: keep no window across messages instead.
			cct = false
		}
	}
	var r, g strings.Builder
	r.WriteString(extDeflate)
	g.WriteString(extDeflate)
	if !sct {
		r.WriteString("; " + extServerNoCT)
		g.WriteString("; " + extServerNoCT)
	}
	if !cct {
		r.WriteString("; " + extClientNoCT)
		g.WriteString("; " + extClientNoCT)
	}
	if o.serverBits != 0 || cfg.serverBits < 15 {
		r.WriteString("; " + extServerWindow + "=" + strconv.Itoa(cfg.serverBits))
	}
	if clientBits != 0 {
		r.WriteString("; " + extClientWindow + "=" + strconv.Itoa(clientBits))
	}
	return r.String(), g.String(), true
}

// parseDeflateOffer parses one extension of a Sec-WebSocket-Extensions list;
// ok is false for another extension or an offer that must be declined.
func parseDeflateOffer(ext string) (deflateOffer, bool) {
	var o deflateOffer
	parts := strings.Split(ext, ";")
	if !strings.EqualFold(strings.TrimSpace(parts[0]), extDeflate) {
		return o, false
	}
	seen := map[string]bool{}
	for _, p := range parts[1:] {
		name, val, hasVal := strings.Cut(p, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		val = strings.TrimSpace(val)
		if hasVal && len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1] // quoted-string form (RFC 6455 §9.1)
		}
		if name == "" || seen[name] {
			return o, false
		}
		seen[name] = true
		switch name {
		case extServerNoCT:
			if hasVal {
				return o, false
			}
			o.serverNoCT = true
		case extClientNoCT:
			if hasVal {
				return o, false
			}
			o.clientNoCT = true
		case extServerWindow:
			bits, ok := windowBits(val)
			if !hasVal || !ok {
				return o, false
			}
			o.serverBits = bits
		case extClientWindow:
			o.clientBitsOffered, o.clientBits = true, 15
			if hasVal {
				bits, ok := windowBits(val)
				if !ok {
					return o, false
				}
				o.clientBits = bits
			}
		default:
			return o, false
		}
	}
	return o, true
}

// windowBits parses a window size: a decimal 8..15 without leading zeros.
func windowBits(s string) (int, bool) {
	if len(s) == 0 || len(s) > 2 || s[0] == '0' || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 8 || n > 15 {
		return 0, false
	}
	return n, true
}
