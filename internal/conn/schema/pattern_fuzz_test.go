package schema

import (
	"regexp"
	"testing"
	"unicode/utf8"
)

var patternSeeds = []struct{ expr, s string }{
	{`^[A-Za-z0-9_\-.]+(:[A-Za-z0-9_\-.@/=+]+)?$`, "room:lobby"},
	{`^[A-Za-z0-9_\-.]+(:[A-Za-z0-9_\-.@/=+]+)?$`, "room:"},
	{`^[A-Za-z0-9_\-.]+(:[A-Za-z0-9_\-.@/=+]+)?$`, "a:b:c"},
	{`^[A-Za-z0-9_.:/-]+$`, "orders.create"},
	{`a|b+c$`, "xbbc"},
	{`^x`, "xé"},
	{`é`, "aé"},
	{`(?i)k`, "\u212a"},
	{`\bword`, "a word"},
	{`^$`, ""},
	{`a*`, "\xff"},
	{`[^a]`, "é"},
	{`^(ab)+$|^c{2,3}`, "ababccc"},
	{`$^`, ""},
}

// FuzzPatternDFA checks the pattern DFA against regexp.MatchString, for every
// pattern it compiles (the others keep using the regexp).
func FuzzPatternDFA(f *testing.F) {
	for _, s := range patternSeeds {
		f.Add(s.expr, s.s)
	}
	f.Fuzz(func(t *testing.T, expr, s string) {
		if len(expr) > 200 || len(s) > 1000 {
			return
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		p := newPattern(re)
		if got, want := p.match(s), re.MatchString(s); got != want {
			t.Fatalf("%q on %q: dfa %v, regexp %v (valid utf-8 %v)", expr, s, got, want, utf8.ValidString(s))
		}
	})
}

func TestPatternDFACompiles(t *testing.T) {
	for expr, want := range map[string]bool{
		`^[A-Za-z0-9_\-.]+(:[A-Za-z0-9_\-.@/=+]+)?$`: true,
		`^[A-Za-z0-9_.:/-]+$`:                        true,
		`a|b+c$`:                                     true,
		`(?i)k`:                                      false, // folds to U+212A
		`é`:                                          false,
		`\bword`:                                     false,
		`.`:                                          false,
		`[^a]`:                                       false,
	} {
		p := newPattern(regexp.MustCompile(expr))
		if (p.next != nil) != want {
			t.Errorf("%q: DFA %v, want %v", expr, p.next != nil, want)
		}
	}
}
