package check

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/knadh/koanf/parsers/yaml"
)

// Profile is a team's policy for the audit, read from a YAML or JSON file
// (`--profile FILE`): what its protocol allows on purpose, which findings
// it accepts (with a reason that shows in every report) and which WARNs it
// treats as failures.
//
//	allow_binary: true            # binary frames are part of our protocol
//	accept:
//	  compression: "measured: 4x less bandwidth, inflated size capped"
//	strict: [idle-timeout, keepalive]   # these WARNs fail the build
//	skip: [amplification]
type Profile struct {
	// AllowBinary: binary frames are part of the protocol, so accepting
	// them is PASS (a crash on one is still a FAIL).
	AllowBinary bool `json:"allow_binary"`
	// AllowCompression: permessage-deflate is on on purpose.
	AllowCompression bool `json:"allow_compression"`
	// AllowQueryToken: tokens in the URL are accepted on purpose (e.g.
	// one-time tickets).
	AllowQueryToken bool `json:"allow_query_token"`
	// Accept maps check ids to the reason a FAIL or WARN of it is accepted:
	// it becomes PASS with the reason as a note.
	Accept map[string]string `json:"accept"`
	// Strict lists checks whose WARN is a FAIL for this team.
	Strict []string `json:"strict"`
	// Skip lists checks not to run.
	Skip []string `json:"skip"`
}

// maxProfileBytes bounds a profile file.
const maxProfileBytes = 64 << 10

// ParseProfile reads a profile (YAML or JSON). Unknown keys are errors: a
// typo in a policy must not pass silently.
func ParseProfile(b []byte) (*Profile, error) {
	if len(b) > maxProfileBytes {
		return nil, fmt.Errorf("profile: %d bytes exceeds %d", len(b), maxProfileBytes)
	}
	m, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	j, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	return &p, nil
}

// ids are the check ids the profile names (validated against the catalogue).
func (p *Profile) ids() []string {
	out := append(slices.Clone(p.Strict), p.Skip...)
	for k := range p.Accept {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (p *Profile) skips(name string) bool { return p != nil && slices.Contains(p.Skip, name) }

func (p *Profile) allowBinary() bool { return p != nil && p.AllowBinary }

// acceptReason is why the profile accepts a finding of the check, "" if
// it does not.
func (p *Profile) acceptReason(name string) string {
	if p == nil {
		return ""
	}
	if r, ok := p.Accept[name]; ok {
		if r == "" {
			r = "accepted by the profile"
		}
		return r
	}
	switch {
	case name == "compression" && p.AllowCompression:
		return "the profile allows compression"
	case name == "token-in-url" && p.AllowQueryToken:
		return "the profile allows tokens in the URL"
	}
	return ""
}

// apply adjusts a result to the profile.
func (p *Profile) apply(r *Result) {
	if p == nil {
		return
	}
	if r.Status == Fail || r.Status == Warn {
		if why := p.acceptReason(r.Name); why != "" {
			r.Note = fmt.Sprintf("%s by profile: %s", r.Status, why)
			r.Status = Pass
			return
		}
	}
	if r.Status == Warn && slices.Contains(p.Strict, r.Name) {
		r.Note = "WARN made FAIL by the profile (strict)"
		r.Status = Fail
	}
}
