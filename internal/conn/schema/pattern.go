package schema

import (
	"regexp"
	"regexp/syntax"
	"unicode/utf8"
)

// Limits of the pattern compiler: beyond them a pattern keeps using its regexp.
const (
	maxPatternInsts  = 64  // instructions of the regexp program (one uint64 of threads)
	maxPatternStates = 128 // DFA states
)

// symOther is the DFA symbol of every byte >= 0x80: compiled patterns only match ASCII
// runes, so any non-ASCII rune (each of its bytes) is a symbol that no thread accepts.
const symOther = 128

// pattern matches like regexp.MatchString (an unanchored search for any match), with
// a byte DFA when the pattern allows it (ASCII classes and literals, ^ and $ as text
// anchors, no case folding) and with the regexp itself otherwise. The DFA is built
// from the very program the regexp package compiles, by subset construction, so the
// two agree by construction; FuzzPatternDFA checks it.
type pattern struct {
	re *regexp.Regexp
	// DFA: state 0 is the start; next[s*129+sym] is the next state; done[s] means a
	// match has been found already (the rest of the input does not matter); acceptEnd[s]
	// means the input matches if it ends in s.
	next      []uint8
	done      []bool
	acceptEnd []bool
}

func (p *pattern) match(s string) bool {
	if p.next == nil {
		return p.re.MatchString(s)
	}
	st := 0
	for i := 0; i < len(s); i++ {
		if p.done[st] {
			return true
		}
		c := int(s[i])
		if c >= utf8.RuneSelf {
			c = symOther
		}
		st = int(p.next[st*(symOther+1)+c])
	}
	return p.done[st] || p.acceptEnd[st]
}

func newPattern(re *regexp.Regexp) *pattern {
	p := &pattern{re: re}
	next, done, acceptEnd, ok := compileDFA(re.String())
	if ok {
		p.next, p.done, p.acceptEnd = next, done, acceptEnd
	}
	return p
}

// compileDFA builds the DFA of expr, parsed exactly as regexp.Compile does, or
// reports false when expr uses something the DFA does not model.
func compileDFA(expr string) (next []uint8, done, acceptEnd []bool, ok bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, nil, nil, false
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil || len(prog.Inst) > maxPatternInsts {
		return nil, nil, nil, false
	}
	// Every rune instruction must match only ASCII runes, without case folding, and
	// every assertion must be a text anchor.
	for _, in := range prog.Inst {
		switch in.Op {
		case syntax.InstRune, syntax.InstRune1:
			if syntax.Flags(in.Arg)&syntax.FoldCase != 0 {
				return nil, nil, nil, false
			}
			for _, r := range in.Rune {
				if r >= utf8.RuneSelf || r < 0 {
					return nil, nil, nil, false
				}
			}
		case syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
			return nil, nil, nil, false
		case syntax.InstEmptyWidth:
			if e := syntax.EmptyOp(in.Arg); e != syntax.EmptyBeginText && e != syntax.EmptyEndText {
				return nil, nil, nil, false
			}
		}
	}
	// closure follows the empty transitions of the threads in set at a position that is
	// (or is not) the beginning/end of the text. It returns the rune-consuming threads
	// and whether a match instruction was reached.
	closure := func(set uint64, begin, end bool) (runes uint64, match bool) {
		seen := uint64(0)
		stack := make([]uint32, 0, 16)
		for pc := 0; pc < len(prog.Inst); pc++ {
			if set&(1<<pc) != 0 {
				stack = append(stack, uint32(pc))
			}
		}
		for len(stack) > 0 {
			pc := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen&(1<<pc) != 0 {
				continue
			}
			seen |= 1 << pc
			in := &prog.Inst[pc]
			switch in.Op {
			case syntax.InstAlt, syntax.InstAltMatch:
				stack = append(stack, in.Out, in.Arg)
			case syntax.InstNop, syntax.InstCapture:
				stack = append(stack, in.Out)
			case syntax.InstEmptyWidth:
				e := syntax.EmptyOp(in.Arg)
				if e == syntax.EmptyBeginText && begin || e == syntax.EmptyEndText && end {
					stack = append(stack, in.Out)
				}
			case syntax.InstMatch:
				match = true
			case syntax.InstFail:
			default: // rune instructions
				runes |= 1 << pc
			}
		}
		return runes, match
	}
	start := uint64(1) << prog.Start
	// A DFA state is the set of pending threads before closure; only the initial state
	// is at the beginning of the text. Every later state also contains the start thread:
	// the search may begin at any position.
	type key struct {
		set   uint64
		begin bool
	}
	index := map[key]int{}
	var keys []key
	add := func(k key) (int, bool) {
		if i, ok := index[k]; ok {
			return i, true
		}
		if len(keys) >= maxPatternStates {
			return 0, false
		}
		index[k] = len(keys)
		keys = append(keys, k)
		return len(keys) - 1, true
	}
	add(key{start, true})
	for s := 0; s < len(keys); s++ {
		k := keys[s]
		runes, match := closure(k.set, k.begin, false)
		_, matchEnd := closure(k.set, k.begin, true)
		done = append(done, match)
		acceptEnd = append(acceptEnd, matchEnd)
		row := make([]uint8, symOther+1)
		for sym := 0; sym <= symOther; sym++ {
			nset := start
			if sym < symOther {
				for pc := 0; pc < len(prog.Inst); pc++ {
					if runes&(1<<pc) != 0 && prog.Inst[pc].MatchRune(rune(sym)) {
						nset |= 1 << prog.Inst[pc].Out
					}
				}
			}
			ni, ok := add(key{nset, false})
			if !ok {
				return nil, nil, nil, false
			}
			row[sym] = uint8(ni)
		}
		next = append(next, row...)
	}
	return next, done, acceptEnd, true
}
