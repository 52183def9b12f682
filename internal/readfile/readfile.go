// Package readfile reads the small files wsgate's configuration and tools
// name (verification keys, audit keys, schemas, check profiles) with a bound:
// a path that points at something huge or endless (a log, /dev/zero, a FIFO)
// fails instead of filling memory. One copy, so every such read has the same
// bound check and the same errors.
package readfile

import (
	"fmt"
	"io"
	"os"
)

// Bounded reads the file at path, failing if it holds more than limit bytes.
// Its errors name the path; callers add what the file is for.
func Bounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *fs.PathError: "open <path>: ..."
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}
