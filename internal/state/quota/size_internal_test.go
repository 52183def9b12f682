package quota

import (
	"testing"
	"unsafe"
)

// Every open connection holds a Lease: keep it in the 64-byte size class.
func TestLeaseSizeClass(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("size classes are for 64-bit platforms")
	}
	if n := unsafe.Sizeof(Lease{}); n > 64 {
		t.Fatalf("Lease is %d bytes, want at most 64 (the 64-byte size class)", n)
	}
}
