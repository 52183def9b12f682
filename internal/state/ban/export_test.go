package ban

import "time"

// SetListClock replaces a MemoryList's clock (tests only).
func SetListClock(l *MemoryList, now func() time.Time) { l.now = now }
