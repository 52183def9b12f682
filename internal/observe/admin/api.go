package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/observe/alert"
	"github.com/wsgate/wsgate/internal/observe/audit"
	"github.com/wsgate/wsgate/internal/state/ban"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": msg})
}

// status is a cheap authenticated probe: the dashboard's login check.
func (h *Handler) status(w http.ResponseWriter, _ *http.Request) {
	n := 0
	h.o.Conns.RangeConns(func(Conn) bool { n++; return true })
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "connections": n, "time": h.o.Now().UTC()})
}

// matches reports whether c contains q (already lower-cased) in its id, user,
// IP, route or channels.
func matches(c Conn, q string) bool {
	if q == "" {
		return true
	}
	for _, f := range []string{c.ID, c.User, c.IP, c.Route} {
		if strings.Contains(strings.ToLower(f), q) {
			return true
		}
	}
	for _, ch := range c.Channels {
		if strings.Contains(strings.ToLower(ch), q) {
			return true
		}
	}
	return false
}

// listConns returns connections matching ?q= (substring of id, user, ip, route
// or channel), newest first, at most ?limit= (default and cap MaxListed). total
// counts every match, so a client can tell the list was cut.
func (h *Handler) listConns(w http.ResponseWriter, r *http.Request) {
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	limit, err := intParam(r, "limit", h.o.MaxListed, 1, h.o.MaxListed)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	list := make([]Conn, 0, min(limit, 64))
	total := 0
	h.o.Conns.RangeConns(func(c Conn) bool {
		if !matches(c, q) {
			return true
		}
		total++
		if len(list) < limit {
			list = append(list, c)
		} else if i := oldest(list); c.Since.After(list[i].Since) {
			// Keep the newest `limit`: memory stays bounded by limit however
			// many connections match.
			list[i] = c
		}
		return true
	})
	slices.SortFunc(list, func(a, b Conn) int {
		if c := b.Since.Compare(a.Since); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for i := range list {
		if list[i].Channels == nil {
			list[i].Channels = []string{}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": total, "connections": list})
}

func oldest(list []Conn) int {
	j := 0
	for i := range list {
		if list[i].Since.Before(list[j].Since) {
			j = i
		}
	}
	return j
}

func (h *Handler) findConn(id string) (Conn, bool) {
	var found Conn
	ok := false
	h.o.Conns.RangeConns(func(c Conn) bool {
		if c.ID == id {
			found, ok = c, true
			return false
		}
		return true
	})
	return found, ok
}

func (h *Handler) getConn(w http.ResponseWriter, r *http.Request) {
	c, ok := h.findConn(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "no such connection")
		return
	}
	if c.Channels == nil {
		c.Channels = []string{}
	}
	writeJSON(w, http.StatusOK, c)
}

// kickRequest is the optional body of a kick: a note for the audit log.
type kickRequest struct {
	Note string `json:"note"`
}

func (h *Handler) kick(w http.ResponseWriter, r *http.Request) {
	var req kickRequest
	if err := h.decode(w, r, &req, true); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id := r.PathValue("id")
	c, ok := h.o.Conns.Kick(id, false)
	if !ok {
		writeError(w, http.StatusNotFound, "no such connection")
		return
	}
	h.audit(r, audit.Event{Event: audit.Kick, ConnID: c.ID, IP: c.IP, User: c.User, Route: c.Route,
		Code: int(protocol.ReasonKicked.Code()), Reason: protocol.ReasonKicked.Text(), Detail: noteDetail(req.Note)})
	h.o.Log.Info("admin kick", "conn_id", c.ID, "user", c.User, "ip", c.IP)
	writeJSON(w, http.StatusOK, map[string]any{"kicked": c.ID})
}

func noteDetail(note string) map[string]any {
	if note == "" {
		return nil
	}
	return map[string]any{"note": note}
}

// BanRequest is the body of POST /api/v1/bans. Exactly one of Subject, IP and
// User names who is banned.
type BanRequest struct {
	Subject string `json:"subject"` // "ip:1.2.3.4" or "user:alice"
	IP      string `json:"ip"`
	User    string `json:"user"`
	// TTL is a Go duration ("10m", "24h"); empty means Options.DefaultBanTTL.
	TTL string `json:"ttl"`
	// Permanent bans until unbanned; TTL must then be empty.
	Permanent bool   `json:"permanent"`
	Reason    string `json:"reason"`
	// Kick also closes the subject's live connections (1008 "banned").
	Kick bool `json:"kick"`
}

// maxBanTTL keeps an operator typo ("87600000h") from overflowing time arithmetic.
const maxBanTTL = 10 * 365 * 24 * time.Hour

// ParseBanRequest validates req and turns it into a ban starting at now.
func ParseBanRequest(req BanRequest, now time.Time, defTTL time.Duration) (ban.Ban, error) {
	n := 0
	for _, s := range []string{req.Subject, req.IP, req.User} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return ban.Ban{}, errors.New("give exactly one of subject, ip and user")
	}
	var subject string
	switch {
	case req.IP != "":
		ip, err := netip.ParseAddr(strings.TrimSpace(req.IP))
		if err != nil {
			return ban.Ban{}, errors.New("ip: not an IP address")
		}
		subject = ban.IPSubject(ip.String())
	case req.User != "":
		subject = ban.UserSubject(req.User)
	default:
		s, err := NormalizeSubject(req.Subject)
		if err != nil {
			return ban.Ban{}, err
		}
		subject = s
	}
	if len(subject) > ban.MaxSubjectLen || !utf8.ValidString(subject) {
		return ban.Ban{}, errors.New("subject too long or not UTF-8")
	}
	if hasControl(subject) {
		return ban.Ban{}, errSubjectControl
	}
	if len(req.Reason) > ban.MaxReasonLen || !utf8.ValidString(req.Reason) {
		return ban.Ban{}, fmt.Errorf("reason: at most %d bytes of UTF-8", ban.MaxReasonLen)
	}
	reason := req.Reason
	if reason == "" {
		reason = "admin"
	}
	b := ban.Ban{Subject: subject, Reason: reason, Created: now}
	switch {
	case req.Permanent && req.TTL != "":
		return ban.Ban{}, errors.New("give ttl or permanent, not both")
	case req.Permanent:
	case req.TTL == "":
		b.Until = now.Add(defTTL)
	default:
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > maxBanTTL {
			return ban.Ban{}, errors.New(`ttl: a positive Go duration such as "15m" or "24h", at most 10 years`)
		}
		b.Until = now.Add(d)
	}
	return b, nil
}

// NormalizeSubject checks a subject of the form "ip:<address>", "ip:<prefix>"
// or "user:<id>" and returns it canonical (IPv4-mapped IPv6 unmapped, prefix
// masked and so on). Handler.ipKeyed then maps an address onto the per-IP key
// the server uses (its /64 for IPv6 by default).
func NormalizeSubject(s string) (string, error) {
	kind, val, ok := strings.Cut(s, ":")
	if !ok || val == "" {
		return "", errors.New(`subject: want "ip:<address>" or "user:<id>"`)
	}
	switch kind {
	case "ip":
		if ip, err := netip.ParseAddr(val); err == nil {
			return ban.IPSubject(ip.String()), nil
		}
		if p, err := netip.ParsePrefix(val); err == nil {
			return ban.IPSubject(p.String()), nil
		}
		return "", errors.New("subject: not an IP address or prefix")
	case "user":
		if hasControl(val) {
			return "", errSubjectControl
		}
		return ban.UserSubject(val), nil
	}
	return "", errors.New(`subject: want "ip:<address>" or "user:<id>"`)
}

var errSubjectControl = errors.New("subject: control characters are not allowed")

// hasControl reports whether s holds a control character (C0, DEL, C1) or a
// Unicode line or paragraph separator. No token subject needs one, and in a ban
// list, a log line or the dashboard they forge or hide entries ("alice\nuser:bob").
func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return true
		}
	}
	return false
}

// banView is a ban as the API shows it.
type banView struct {
	Subject   string     `json:"subject"`
	Until     *time.Time `json:"until"` // null when permanent
	Permanent bool       `json:"permanent"`
	Reason    string     `json:"reason"`
	Created   time.Time  `json:"created"`
}

func viewBan(b ban.Ban) banView {
	v := banView{Subject: b.Subject, Permanent: b.Permanent(), Reason: b.Reason, Created: b.Created}
	if !v.Permanent {
		u := b.Until
		v.Until = &u
	}
	return v
}

func (h *Handler) ban(w http.ResponseWriter, r *http.Request) {
	var req BanRequest
	if err := h.decode(w, r, &req, false); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	b, err := ParseBanRequest(req, h.o.Now(), h.o.DefaultBanTTL)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	b.Subject = h.ipKeyed(b.Subject)
	if err := h.o.Bans.Ban(r.Context(), b); err != nil {
		h.o.Log.Warn("admin ban failed", "subject", b.Subject, "err", err)
		status, msg := http.StatusServiceUnavailable, "ban store unavailable"
		switch {
		case errors.Is(err, ban.ErrFull):
			msg = "ban list full"
		case errors.Is(err, ban.ErrInvalidSubject):
			status, msg = http.StatusBadRequest, "invalid subject"
		}
		writeError(w, status, msg)
		return
	}
	kicked := []string{}
	if req.Kick {
		kicked = h.kickSubject(b.Subject)
		if h.o.KickCluster != nil {
			if err := h.o.KickCluster(r.Context(), b.Subject); err != nil {
				h.o.Log.Warn("admin ban: closing connections on other nodes failed", "subject", b.Subject, "err", err)
			}
		}
	}
	detail := map[string]any{"subject": b.Subject, "permanent": b.Permanent(), "kicked": len(kicked)}
	if !b.Permanent() {
		detail["until"] = b.Until
	}
	h.audit(r, audit.Event{Event: audit.Ban, Reason: b.Reason, Detail: detail})
	h.o.Log.Warn("admin ban", "subject", b.Subject, "until", b.Until, "reason", b.Reason, "kicked", len(kicked))
	writeJSON(w, http.StatusOK, map[string]any{"ban": viewBan(b), "kicked": kicked})
}

// ipKeyed maps an "ip:<address>" subject onto the server's per-IP key (the
// address's /64 for IPv6 by default), which is what the guard checks; prefixes
// and user subjects are returned as they are.
func (h *Handler) ipKeyed(subject string) string {
	v, ok := strings.CutPrefix(subject, "ip:")
	if !ok || h.o.IPKey == nil {
		return subject
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return subject
	}
	if k := h.o.IPKey(a); k != "" {
		return ban.IPSubject(k)
	}
	return subject
}

// kickSubject closes the live connections of a banned subject.
func (h *Handler) kickSubject(subject string) []string {
	var ids []string
	h.o.Conns.RangeConns(func(c Conn) bool {
		if h.ipKeyed(ban.IPSubject(c.IP)) == subject || (c.User != "" && ban.UserSubject(c.User) == subject) {
			ids = append(ids, c.ID)
		}
		return true
	})
	out := ids[:0]
	for _, id := range ids {
		if _, ok := h.o.Conns.Kick(id, true); ok {
			out = append(out, id)
		}
	}
	if out == nil {
		return []string{}
	}
	return out
}

func (h *Handler) unban(w http.ResponseWriter, r *http.Request) {
	subject, err := NormalizeSubject(r.PathValue("subject"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	subject = h.ipKeyed(subject)
	if err := h.o.Bans.Unban(r.Context(), subject); err != nil {
		h.o.Log.Warn("admin unban failed", "subject", subject, "err", err)
		writeError(w, http.StatusServiceUnavailable, "ban store unavailable")
		return
	}
	h.audit(r, audit.Event{Event: audit.Unban, Detail: map[string]any{"subject": subject}})
	h.o.Log.Info("admin unban", "subject", subject)
	writeJSON(w, http.StatusOK, map[string]any{"unbanned": subject})
}

func (h *Handler) listBans(w http.ResponseWriter, r *http.Request) {
	list, err := h.o.Bans.List(r.Context())
	if err != nil {
		h.o.Log.Warn("admin: list bans failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "ban store unavailable")
		return
	}
	out := make([]banView, 0, len(list))
	for _, b := range list {
		out = append(out, viewBan(b))
	}
	writeJSON(w, http.StatusOK, map[string]any{"bans": out})
}

func (h *Handler) listAlerts(w http.ResponseWriter, r *http.Request) {
	n, err := intParam(r, "limit", 50, 1, 1000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	list := []alert.Alert{}
	if h.o.Alerts != nil {
		list = append(list, h.o.Alerts.Recent(n)...)
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": list})
}

func (h *Handler) reload(w http.ResponseWriter, r *http.Request) {
	if h.o.Reload == nil {
		writeError(w, http.StatusNotImplemented, "reload not available")
		return
	}
	if err := h.o.Reload(r.Context()); err != nil {
		h.audit(r, audit.Event{Event: audit.ConfigRejected, Reason: "invalid", Detail: map[string]any{"error": err.Error()}})
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "reload refused; the running configuration stays in force", "reason": err.Error()})
		return
	}
	h.audit(r, audit.Event{Event: audit.ConfigReloaded})
	writeJSON(w, http.StatusOK, map[string]any{"status": "reloaded"})
}

// statsView is the stats payload: the series plus what the dashboard shows beside it.
type statsView struct {
	Now         int64             `json:"now"`
	Window      int64             `json:"window_seconds"`
	Connections int64             `json:"connections"`
	Points      any               `json:"points"`
	Reasons     map[string]uint64 `json:"reasons"`
}

func (h *Handler) snapshot(window time.Duration, points int) statsView {
	s := h.o.Stats.Last(window)
	v := statsView{Now: s.Now, Window: int64(window / time.Second), Connections: s.Connections, Reasons: s.Reasons}
	if v.Reasons == nil {
		v.Reasons = map[string]uint64{}
	}
	p := s.Points
	if points > 0 && len(p) > points {
		p = p[len(p)-points:]
	}
	v.Points = p
	return v
}

func (h *Handler) stats(w http.ResponseWriter, r *http.Request) {
	window := h.o.StatsWindow
	if s := r.URL.Query().Get("window"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Second || d > h.o.StatsWindow {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("window: a duration between 1s and %s", h.o.StatsWindow))
			return
		}
		window = d
	}
	writeJSON(w, http.StatusOK, h.snapshot(window, 0))
}

// decode reads a bounded JSON body into v, refusing unknown fields and
// trailing data. An empty body is accepted when optional.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	body := http.MaxBytesReader(w, r.Body, h.o.MaxBodyBytes)
	data, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("body larger than %d bytes", mbe.Limit)
		}
		return errors.New("could not read body")
	}
	return DecodeBody(data, v, optional)
}

// DecodeBody strictly decodes one JSON object from data into v.
func DecodeBody(data []byte, v any, optional bool) error {
	if len(strings.TrimSpace(string(data))) == 0 {
		if optional {
			return nil
		}
		return errors.New("body: a JSON object is required")
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %s", jsonProblem(err))
	}
	if dec.More() {
		return errors.New("body: trailing data after the JSON object")
	}
	return nil
}

// jsonProblem describes a decode error without echoing input back.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "malformed JSON at offset " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return "wrong type for field " + strconv.Quote(te.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		msg := strings.TrimPrefix(err.Error(), "json: ")
		if len(msg) > 80 {
			msg = strings.ToValidUTF8(msg[:80], "") + "…"
		}
		return msg
	}
	return "invalid JSON"
}

func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s: an integer between %d and %d", name, lo, hi)
	}
	return n, nil
}
