package check

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// sampleReport has one result of every status.
func sampleReport() *Report {
	r := &Report{Target: "wss://127.0.0.1:8443/ws", Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Duration: 3 * time.Second,
		Notes: []string{"probes share one source address: test"}}
	for i, st := range []Status{Pass, Warn, Fail, Skip, Error} {
		c := catalogue[i+3]
		r.Results = append(r.Results, Result{Name: c.name, Title: c.title, Status: st, Severity: c.severity,
			Sent: "sent | <x> & \"y\"", Got: "got\nline 2", Why: c.why, Fix: c.fix, Duration: time.Millisecond})
	}
	r.finish()
	return r
}

// validateSARIF checks b against the vendored SARIF 2.1.0 schema.
func validateSARIF(t *testing.T, b []byte) {
	t.Helper()
	f, err := os.Open("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	const loc = "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/master/Schemata/sarif-schema-2.1.0.json"
	if err := c.AddResource(loc, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("sarif is not JSON: %v", err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("sarif does not validate: %v", err)
	}
}

func TestSARIF(t *testing.T) {
	rep := sampleReport()
	var b bytes.Buffer
	if err := rep.WriteFormat(&b, "sarif"); err != nil {
		t.Fatal(err)
	}
	validateSARIF(t, b.Bytes())
	var log struct {
		Runs []struct {
			Tool struct {
				Driver struct {
					Rules []struct {
						ID   string `json:"id"`
						Help struct {
							Text string `json:"text"`
						} `json:"help"`
						Conf struct {
							Level string `json:"level"`
						} `json:"defaultConfiguration"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID string `json:"ruleId"`
				Kind   string `json:"kind"`
				Level  string `json:"level"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(b.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	rules := log.Runs[0].Tool.Driver.Rules
	if len(rules) != len(catalogue) {
		t.Fatalf("%d rules, want one per check (%d)", len(rules), len(catalogue))
	}
	for _, r := range rules {
		if !strings.Contains(r.Help.Text, "Fix:") || (r.Conf.Level != "error" && r.Conf.Level != "warning") {
			t.Errorf("rule %s: help %q level %q", r.ID, r.Help.Text, r.Conf.Level)
		}
	}
	want := map[Status][2]string{Pass: {"pass", "none"}, Warn: {"fail", "warning"}, Skip: {"notApplicable", "none"}, Error: {"open", "none"}}
	for i, res := range log.Runs[0].Results {
		st := rep.Results[i].Status
		w, ok := want[st]
		if st == Fail {
			w, ok = [2]string{"fail", rep.Results[i].Severity}, true
		}
		if !ok || res.Kind != w[0] || res.Level != w[1] || res.RuleID != rep.Results[i].Name {
			t.Errorf("%s %s: kind %s level %s, want %v", res.RuleID, st, res.Kind, res.Level, w)
		}
	}
}

func TestJUnit(t *testing.T) {
	rep := sampleReport()
	var b bytes.Buffer
	if err := rep.WriteFormat(&b, "junit"); err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Tests  int `xml:"tests,attr"`
		Suites []struct {
			Failures int `xml:"failures,attr"`
			Errors   int `xml:"errors,attr"`
			Skipped  int `xml:"skipped,attr"`
			Cases    []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
				Error   *struct{} `xml:"error"`
				Skipped *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b.Bytes(), &suites); err != nil {
		t.Fatalf("junit does not parse: %v\n%s", err, b.String())
	}
	s := suites.Suites[0]
	if suites.Tests != 5 || s.Failures != 1 || s.Errors != 1 || s.Skipped != 1 || len(s.Cases) != 5 {
		t.Fatalf("counts %+v", suites)
	}
	if s.Cases[2].Failure == nil || s.Cases[4].Error == nil || s.Cases[3].Skipped == nil || s.Cases[0].Failure != nil {
		t.Fatalf("cases %+v", s.Cases)
	}
}

func TestMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteFormat(&b, "markdown"); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{"| --- | --- | --- |", "### ❌ FAIL", "**Fix:**", `sent \| <x>`, "> **Note:**"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| ") && strings.Count(line, " | ")-strings.Count(line, `\|`) != 2 {
			t.Errorf("table row has the wrong number of cells: %q", line)
		}
	}
	if err := sampleReport().WriteFormat(&b, "xml"); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestProfile(t *testing.T) {
	p, err := ParseProfile([]byte("allow_binary: true\naccept:\n  compression: measured\nstrict: [keepalive]\nskip: [amplification]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.allowBinary() || !p.skips("amplification") {
		t.Fatalf("%+v", p)
	}
	r := Result{Name: "compression", Status: Warn}
	p.apply(&r)
	if r.Status != Pass || !strings.Contains(r.Note, "measured") {
		t.Fatalf("accept: %+v", r)
	}
	r = Result{Name: "keepalive", Status: Warn}
	p.apply(&r)
	if r.Status != Fail {
		t.Fatalf("strict: %+v", r)
	}
	r = Result{Name: "slot-leak", Status: Fail}
	p.apply(&r)
	if r.Status != Fail {
		t.Fatalf("untouched: %+v", r)
	}
	if _, err := ParseProfile([]byte("allow_bianry: true\n")); err == nil {
		t.Error("a typo in a profile key was accepted")
	}
	if err := (&Options{URL: "ws://127.0.0.1/", Profile: &Profile{Strict: []string{"no-such"}}}).Validate(); err == nil {
		t.Error("a profile naming an unknown check was accepted")
	}
}

func FuzzParseProfile(f *testing.F) {
	f.Add([]byte("allow_binary: true\naccept: {compression: x}\n"))
	f.Add([]byte(`{"strict":["keepalive"],"skip":[]}`))
	f.Add([]byte("accept: [1, 2]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProfile(b)
		if err == nil {
			r := Result{Name: "keepalive", Status: Warn}
			p.apply(&r)
		}
	})
}

// The raw client's frame reader parses what untrusted servers send.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0x81, 0x02, 'h', 'i'})
	f.Add([]byte{0x88, 0x02, 0x03, 0xe8})
	f.Add([]byte{0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x81, 0xfe, 0x00, 0x10, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		c1, c2 := net.Pipe()
		defer c1.Close()
		go func() {
			_, _ = c2.Write(b)
			_ = c2.Close()
		}()
		lc := &limitedConn{Conn: c1, left: rawReadLimit}
		rc := &rawConn{c: lc, br: bufio.NewReader(lc)}
		for range 4 {
			fr, err := rc.readFrame(time.Now().Add(time.Second))
			if err != nil {
				return
			}
			if len(fr.payload) > rawMaxPayload {
				t.Fatalf("kept %d bytes", len(fr.payload))
			}
		}
	})
}
