package alert

import (
	"cmp"
	"errors"
	"fmt"
	"time"
)

// Events a Rule can watch; Observe is called with one of these.
const (
	EventAuthFailure    = "auth_failure"    // a handshake refused for bad or missing credentials
	EventHandshake      = "handshake"       // any upgrade request
	EventInvalidMessage = "invalid_message" // a message refused by the pipeline
	EventOversize       = "oversize"        // a message over the size limit
	EventBan            = "ban"             // a ban was issued
)

var knownEvents = map[string]bool{
	EventAuthFailure: true, EventHandshake: true, EventInvalidMessage: true, EventOversize: true, EventBan: true,
}

// Rule defaults.
const (
	DefaultWindow   = time.Minute
	DefaultCooldown = 5 * time.Minute
	DefaultBanTTL   = 10 * time.Minute
)

// Rule raises an alert when Threshold events of kind Event occur within
// Window, counted over all clients or, with PerIP, for one client IP.
type Rule struct {
	Name      string
	Event     string        // one of the Event* constants
	Window    time.Duration // default DefaultWindow (1m)
	Threshold int           // events within Window that fire the rule; >= 1
	PerIP     bool          // count per client IP instead of globally
	Cooldown  time.Duration // quiet period after firing; default DefaultCooldown (5m)
	AutoBan   bool          // ask OnAlert to ban the offending IP(s)
	BanTTL    time.Duration // ban length when AutoBan; default DefaultBanTTL (10m)
}

func (r Rule) withDefaults() Rule {
	r.Window = cmp.Or(r.Window, DefaultWindow)
	r.Cooldown = cmp.Or(r.Cooldown, DefaultCooldown)
	if r.AutoBan && r.BanTTL == 0 {
		r.BanTTL = DefaultBanTTL
	}
	return r
}

// Validate reports a rule that cannot work.
func (r Rule) Validate() error {
	switch {
	case r.Name == "":
		return errors.New("alert: rule without a name")
	case !knownEvents[r.Event]:
		return fmt.Errorf("alert: rule %q: unknown event %q", r.Name, r.Event)
	case r.Threshold < 1:
		return fmt.Errorf("alert: rule %q: threshold %d must be at least 1", r.Name, r.Threshold)
	case r.Window < 0 || r.Cooldown < 0 || r.BanTTL < 0:
		return fmt.Errorf("alert: rule %q: negative duration", r.Name)
	case r.Window > 0 && r.Window < buckets*time.Millisecond:
		return fmt.Errorf("alert: rule %q: window %v is too short", r.Name, r.Window)
	}
	return nil
}

// ValidateRules checks every rule and that names are unique.
func ValidateRules(rules []Rule) error {
	seen := make(map[string]bool, len(rules))
	for _, r := range rules {
		if err := r.Validate(); err != nil {
			return err
		}
		if seen[r.Name] {
			return fmt.Errorf("alert: duplicate rule name %q", r.Name)
		}
		seen[r.Name] = true
	}
	return nil
}
