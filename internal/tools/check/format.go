package check

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Formats lists the report formats of WriteFormat.
var Formats = []string{"text", "json", "sarif", "junit", "markdown"}

// WriteFormat prints the report in one of Formats.
func (r *Report) WriteFormat(w io.Writer, format string) error {
	switch format {
	case "", "text":
		return r.WriteText(w)
	case "json":
		return r.WriteJSON(w)
	case "sarif":
		return r.WriteSARIF(w)
	case "junit":
		return r.WriteJUnit(w)
	case "markdown", "md":
		return r.WriteMarkdown(w)
	}
	return fmt.Errorf("unknown format %q (want %s)", format, strings.Join(Formats, ", "))
}

// toolURI is where the SARIF rules' help points.
const toolURI = "https://github.com/wsgate/wsgate/blob/main/docs/check.md"

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      sarifText      `json:"fullDescription"`
	Help                 sarifText      `json:"help"`
	HelpURI              string         `json:"helpUri"`
	DefaultConfiguration sarifRuleConf  `json:"defaultConfiguration"`
	Properties           map[string]any `json:"properties"`
}

type sarifRuleConf struct {
	Level string `json:"level"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool                `json:"executionSuccessful"`
	ExitCode            int                 `json:"exitCode"`
	StartTimeUTC        string              `json:"startTimeUtc"`
	EndTimeUTC          string              `json:"endTimeUtc"`
	Notifications       []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Message sarifText `json:"message"`
	Level   string    `json:"level"`
}

type sarifResult struct {
	RuleID     string          `json:"ruleId"`
	RuleIndex  int             `json:"ruleIndex"`
	Kind       string          `json:"kind"`
	Level      string          `json:"level"`
	Message    sarifText       `json:"message"`
	Locations  []sarifLocation `json:"locations"`
	Properties map[string]any  `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

// securitySeverity is GitHub code scanning's numeric severity per level.
func securitySeverity(level string) string {
	if level == "error" {
		return "8.0"
	}
	return "5.0"
}

// WriteSARIF prints the report as SARIF 2.1.0: one rule per check of the
// catalogue (with why and fix as help, and a severity), one result per
// check run. FAIL is kind "fail" at the check's severity, WARN kind "fail"
// at level "warning", PASS "pass", SKIP "notApplicable", ERROR "open".
func (r *Report) WriteSARIF(w io.Writer) error {
	drv := sarifDriver{Name: "wsgate check", InformationURI: toolURI}
	index := map[string]int{}
	for i, c := range catalogue {
		index[c.name] = i
		sev := c.severity
		if sev == "" {
			sev = "warning"
		}
		drv.Rules = append(drv.Rules, sarifRule{
			ID: c.name, Name: ruleName(c.name),
			ShortDescription: sarifText{Text: c.title},
			FullDescription:  sarifText{Text: c.title + ": " + c.why},
			Help: sarifText{Text: "Why: " + c.why + "\nFix: " + c.fix,
				Markdown: "**Why:** " + c.why + "\n\n**Fix:** " + c.fix},
			HelpURI:              toolURI + "#the-checks-in-run-order",
			DefaultConfiguration: sarifRuleConf{Level: sev},
			Properties:           map[string]any{"tags": []string{"security", "websocket"}, "security-severity": securitySeverity(sev)},
		})
	}
	inv := sarifInvocation{ExecutionSuccessful: r.Summary.Error == 0, ExitCode: r.ExitCode,
		StartTimeUTC: r.Started.UTC().Format(time.RFC3339), EndTimeUTC: r.Started.Add(r.Duration).UTC().Format(time.RFC3339)}
	for _, n := range r.Notes {
		inv.Notifications = append(inv.Notifications, sarifNotification{Message: sarifText{Text: n}, Level: "warning"})
	}
	run := sarifRun{Tool: sarifTool{Driver: drv}, Invocations: []sarifInvocation{inv}, Results: []sarifResult{}}
	for _, res := range r.Results {
		kind, level := "pass", "none"
		switch res.Status {
		case Fail:
			kind, level = "fail", res.Severity
			if level == "" {
				level = "warning"
			}
		case Warn:
			kind, level = "fail", "warning"
		case Skip:
			kind = "notApplicable"
		case Error:
			kind = "open"
		}
		msg := fmt.Sprintf("%s %s: %s", res.Status, res.Title, res.Got)
		if res.Status == Fail || res.Status == Warn {
			msg += "\nSent: " + res.Sent + "\nWhy: " + res.Why + "\nFix: " + res.Fix
		}
		props := map[string]any{"status": string(res.Status), "sent": res.Sent}
		if res.Note != "" {
			props["note"] = res.Note
		}
		run.Results = append(run.Results, sarifResult{RuleID: res.Name, RuleIndex: index[res.Name], Kind: kind, Level: level,
			Message:    sarifText{Text: msg},
			Locations:  []sarifLocation{{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: r.Target}}}},
			Properties: props})
	}
	log := sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(log); err != nil {
		return fmt.Errorf("write sarif: %w", err)
	}
	return nil
}

// ruleName is the check id in PascalCase, as SARIF rule names are.
func ruleName(id string) string {
	var b strings.Builder
	for _, p := range strings.Split(id, "-") {
		if p != "" {
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		}
	}
	return b.String()
}

type junitSuites struct {
	XMLName xml.Name `xml:"testsuites"`
	Name    string   `xml:"name,attr"`
	junitCounts
	Suites []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name string `xml:"name,attr"`
	junitCounts
	Timestamp string      `xml:"timestamp,attr"`
	Cases     []junitCase `xml:"testcase"`
}

// junitCounts are the totals that <testsuites> and <testsuite> both carry.
type junitCounts struct {
	Tests    int    `xml:"tests,attr"`
	Failures int    `xml:"failures,attr"`
	Errors   int    `xml:"errors,attr"`
	Skipped  int    `xml:"skipped,attr"`
	Time     string `xml:"time,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitProblem `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// WriteJUnit prints the report as JUnit XML: one test case per check;
// FAIL is a failure, ERROR an error, SKIP skipped; WARN passes with the
// details in system-out.
func (r *Report) WriteJUnit(w io.Writer) error {
	secs := func(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
	s := junitSuite{Name: "wsgate check " + r.Target, junitCounts: junitCounts{Tests: len(r.Results), Failures: r.Summary.Fail,
		Errors: r.Summary.Error, Skipped: r.Summary.Skip, Time: secs(r.Duration)}, Timestamp: r.Started.UTC().Format("2006-01-02T15:04:05")}
	for _, res := range r.Results {
		c := junitCase{Name: res.Name + ": " + res.Title, ClassName: "wsgate.check", Time: secs(res.Duration)}
		detail := joinLines("sent: "+res.Sent, "got: "+res.Got, "why: "+res.Why, "fix: "+res.Fix, res.Note)
		switch res.Status {
		case Fail:
			c.Failure = &junitProblem{Message: clip(firstLine(res.Got), 200), Type: "FAIL", Text: detail}
		case Error:
			c.Error = &junitProblem{Message: clip(firstLine(res.Got), 200), Type: "ERROR", Text: detail}
		case Skip:
			c.Skipped = &junitProblem{Message: clip(firstLine(res.Got), 200)}
		default:
			c.SystemOut = string(res.Status) + "\n" + detail
		}
		s.Cases = append(s.Cases, c)
	}
	out := junitSuites{Name: "wsgate check", junitCounts: s.junitCounts, Suites: []junitSuite{s}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// WriteMarkdown prints the report for a pull-request comment: the summary,
// a table of every check, and the details of each FAIL, WARN and ERROR.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	icon := map[Status]string{Pass: "✅", Warn: "⚠️", Fail: "❌", Skip: "⏭️", Error: "💥"}
	fmt.Fprintf(&b, "## wsgate check `%s`\n\n**%s**\n\n", r.Target, r.SummaryLine())
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "> **Note:** %s\n\n", mdCell(n))
	}
	b.WriteString("| | check | result |\n| --- | --- | --- |\n")
	for _, res := range r.Results {
		cell := clip(firstLine(res.Got), 160)
		if res.Note != "" {
			cell += " (" + res.Note + ")"
		}
		fmt.Fprintf(&b, "| %s %s | `%s` %s | %s |\n", icon[res.Status], res.Status, res.Name, mdCell(res.Title), mdCell(cell))
	}
	for _, st := range []Status{Fail, Error, Warn} {
		for _, res := range r.Results {
			if res.Status != st {
				continue
			}
			fmt.Fprintf(&b, "\n### %s %s `%s`: %s\n\n", icon[st], st, res.Name, res.Title)
			fmt.Fprintf(&b, "- **Sent:** %s\n- **Got:** %s\n- **Why it matters:** %s\n- **Fix:** %s\n", mdCell(res.Sent), mdCell(res.Got), mdCell(res.Why), mdCell(res.Fix))
		}
	}
	if !slices.ContainsFunc(r.Results, func(x Result) bool { return x.Status == Fail || x.Status == Error || x.Status == Warn }) {
		b.WriteString("\nNothing to report.\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write markdown: %w", err)
	}
	return nil
}

// mdCell makes s safe inside a Markdown table cell or list item.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\n", "<br>")
	s = strings.ReplaceAll(s, "<br>", " · ")
	return s
}
