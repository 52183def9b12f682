package broker

// entry is a retained publication and when it expires (unix nanoseconds).
type entry struct {
	pub    Publication
	expire int64
}

// entryOverhead approximates an entry's memory beyond its payload (the struct, the
// ring slot), so a flood of empty publications still counts against the budget.
const entryOverhead = 128

func (e *entry) cost() int64 { return int64(len(e.pub.Data) + len(e.pub.From) + entryOverhead) }

// ring is a channel's history: a FIFO that only ever loses entries at the front,
// so what it retains is always a contiguous run of offsets, which is what makes
// gap detection in History exact.
type ring struct {
	buf   []entry
	head  int
	n     int
	bytes int64 // sum of cost() of retained entries
}

func (r *ring) at(i int) *entry { return &r.buf[(r.head+i)%len(r.buf)] }

func (r *ring) front() *entry { return r.at(0) }

func (r *ring) popFront() {
	r.bytes -= r.buf[r.head].cost()
	r.buf[r.head] = entry{} // drop the reference to Data
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	if r.n == 0 {
		r.head = 0
	}
}

func (r *ring) clear() { r.buf, r.head, r.n, r.bytes = nil, 0, 0, 0 }

// push appends e, dropping the oldest entries so at most max remain.
func (r *ring) push(e entry, max int) {
	if max <= 0 {
		r.clear()
		return
	}
	for r.n >= max {
		r.popFront()
	}
	if r.n == len(r.buf) || len(r.buf) > 2*max {
		r.resize(max)
	}
	r.buf[(r.head+r.n)%len(r.buf)] = e
	r.n++
	r.bytes += e.cost()
}

// resize reallocates to hold one more entry, growing geometrically up to max and
// shrinking when the configured size dropped.
func (r *ring) resize(max int) {
	size := 2 * len(r.buf)
	if size < 8 {
		size = 8
	}
	if size > max {
		size = max
	}
	if size < r.n+1 {
		size = r.n + 1
	}
	buf := make([]entry, size)
	for i := 0; i < r.n; i++ {
		buf[i] = *r.at(i)
	}
	r.buf, r.head = buf, 0
}

// trimExpired drops entries at the front whose time has come. An entry behind an
// unexpired one stays (offsets must stay contiguous), so a shortened TTL takes
// effect once older entries have gone.
func (r *ring) trimExpired(now int64) {
	for r.n > 0 && r.front().expire <= now {
		r.popFront()
	}
	if r.n == 0 {
		r.clear()
	}
}
