package pipeline

import (
	"testing"

	"github.com/wsgate/wsgate/internal/conn/schema"
)

func TestFastPathCoverage(t *testing.T) {
	builtin, extra := fastRegistries(t)
	for _, reg := range []*schema.Registry{builtin, extra} {
		for _, typ := range reg.Types() {
			sch, _ := reg.Lookup(typ)
			want := typ != "x-cycle" && typ != "x-uniq"
			if sch.FastPath() != want {
				t.Errorf("%s: FastPath() = %v, want %v", typ, sch.FastPath(), want)
			}
		}
	}
}
