package statetest

import (
	"reflect"
	"testing"
)

// Run runs a conformance suite: every exported method of the value newSuite
// returns whose signature is func(*testing.T) becomes a subtest of that name,
// run on a fresh value (so on a fresh store) from newSuite. Methods run in
// name order. A suite is a small struct holding the store under test and the
// clock it reads, so one suite needs no list of its cases.
func Run(t *testing.T, newSuite func(t *testing.T) any) {
	t.Helper()
	typ := reflect.TypeOf(newSuite(t))
	sig := reflect.TypeFor[func(*testing.T)]()
	n := 0
	for i := range typ.NumMethod() {
		m := typ.Method(i)
		if m.Type.NumIn() != 2 || m.Type.NumOut() != 0 || m.Type.In(1) != sig.In(0) {
			continue
		}
		n++
		t.Run(m.Name, func(t *testing.T) {
			reflect.ValueOf(newSuite(t)).Method(i).Call([]reflect.Value{reflect.ValueOf(t)})
		})
	}
	if n == 0 {
		t.Fatalf("suite %v has no func(*testing.T) methods", typ)
	}
}

// Suite is the shape of a conformance suite: a suite package declares
// `type suite statetest.Suite[Store]` and its cases as methods of suite.
type Suite[S any] struct {
	Store S
	Clock *Clock
}
