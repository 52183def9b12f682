package check

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Status is the verdict of one check.
type Status string

// Verdicts. Only FAIL changes the exit status to 2; ERROR (a probe that could
// not run, e.g. the target was unreachable) changes it to 3.
const (
	Pass  Status = "PASS"
	Warn  Status = "WARN"
	Fail  Status = "FAIL"
	Skip  Status = "SKIP"
	Error Status = "ERROR"
)

// Exit statuses of the command.
const (
	ExitOK         = 0
	ExitUsage      = 1 // bad flags, refused target
	ExitFail       = 2 // at least one FAIL
	ExitIncomplete = 3 // no FAIL, but at least one ERROR
)

// Result is the outcome of one check.
type Result struct {
	Name   string `json:"name"`
	Title  string `json:"title"`
	Status Status `json:"status"`
	Sent   string `json:"sent,omitempty"`
	Got    string `json:"got,omitempty"`
	Why    string `json:"why,omitempty"`
	Fix    string `json:"fix,omitempty"`
	// Severity is the SARIF level a FAIL of this check has: "error" or
	// "warning".
	Severity string `json:"severity,omitempty"`
	// Note says why the profile changed the verdict, if it did.
	Note     string        `json:"note,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// Summary counts results per status.
type Summary struct {
	Pass  int `json:"pass"`
	Warn  int `json:"warn"`
	Fail  int `json:"fail"`
	Skip  int `json:"skip"`
	Error int `json:"error"`
}

// Report is the outcome of a run.
type Report struct {
	Target   string        `json:"target"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Results  []Result      `json:"results"`
	Summary  Summary       `json:"summary"`
	// Notes are run-wide observations: probes sharing an address, a ban
	// or rate limit observed mid-run and how to lift it.
	Notes    []string `json:"notes,omitempty"`
	ExitCode int      `json:"exit_code"`
}

// Result returns the result of the named check, or nil.
func (r *Report) Result(name string) *Result {
	for i := range r.Results {
		if r.Results[i].Name == name {
			return &r.Results[i]
		}
	}
	return nil
}

func (r *Report) finish() {
	r.Summary = Summary{}
	for _, res := range r.Results {
		switch res.Status {
		case Pass:
			r.Summary.Pass++
		case Warn:
			r.Summary.Warn++
		case Fail:
			r.Summary.Fail++
		case Skip:
			r.Summary.Skip++
		case Error:
			r.Summary.Error++
		}
	}
	switch {
	case r.Summary.Fail > 0:
		r.ExitCode = ExitFail
	case r.Summary.Error > 0:
		r.ExitCode = ExitIncomplete
	default:
		r.ExitCode = ExitOK
	}
}

// SummaryLine is the one-line verdict printed last.
func (r *Report) SummaryLine() string {
	s := r.Summary
	return fmt.Sprintf("%d checks: %d PASS, %d WARN, %d FAIL, %d SKIP, %d ERROR (exit %d)",
		len(r.Results), s.Pass, s.Warn, s.Fail, s.Skip, s.Error, r.ExitCode)
}

// WriteText prints the report card for people: every check with what was
// sent and what came back; why and how to fix for anything but PASS/SKIP.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "wsgate check %s (%s, %s)\n\n", r.Target, r.Started.UTC().Format(time.RFC3339), r.Duration.Round(time.Millisecond))
	for _, res := range r.Results {
		fmt.Fprintf(&b, "%-5s %-18s %s (%s)\n", res.Status, res.Name, res.Title, res.Duration.Round(10*time.Millisecond))
		line := func(label, v string) {
			if v != "" {
				fmt.Fprintf(&b, "      %-5s %s\n", label+":", indent(v))
			}
		}
		line("sent", res.Sent)
		line("got", res.Got)
		if res.Status != Pass && res.Status != Skip {
			line("why", res.Why)
			line("fix", res.Fix)
		}
		line("note", res.Note)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\nNOTE  %s\n", n)
	}
	fmt.Fprintf(&b, "\n%s\n", r.SummaryLine())
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n            ") }

// WriteJSON prints the report for machines.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
