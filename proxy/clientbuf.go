package proxy

import "sync"

// inBuf is a fast connection's input: buf[r:w] are the bytes read from the
// client and not consumed yet. A request's head and its buffered body lie
// contiguous in it, and the bytes read past them (the next requests of a
// pipelining client) stay where they are until the next request is
// parsed. One buffer and two offsets are the whole bookkeeping of the
// connection's byte stream: no byte is held anywhere else, so none can be
// lost, replayed or read twice (issue 15: a side buffer of bytes read past
// a chunked body, reused while it still held unread bytes, let body bytes
// be parsed as requests).
//
// The buffer grows by size classes (4 KiB doubling) while a large head or
// body comes, and goes back to the smallest class when a request leaves
// it empty, so that an idle connection holds 4 KiB.
type inBuf struct {
	bp   *[]byte
	r, w int
	// pinned is a buffer replaced by a larger one while the request whose
	// head was parsed in it is still served: the parsed head points into
	// it, so it is returned to its pool only when the request is done.
	pinned *[]byte
}

// inBufMin is the size of a fast connection's input buffer between
// requests; inBufClasses is the number of size classes (4 KiB to 2 MiB).
const (
	inBufMin     = 4 << 10
	inBufClasses = 10
)

var inBufPools [inBufClasses]sync.Pool

// inBufClass returns the index of the smallest class holding n bytes, or
// -1 when none does.
func inBufClass(n int) int {
	for cl, size := 0, inBufMin; cl < inBufClasses; cl, size = cl+1, size<<1 {
		if n <= size {
			return cl
		}
	}
	return -1
}

func getInBuf(cl int) *[]byte {
	if bp, ok := inBufPools[cl].Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, inBufMin<<cl)
	return &b
}

// putInBuf gives bp back to its class's pool, at its full length: a user
// may have resliced it (coalescingConn appends into an emptied one), and
// the next one takes len(*bp) for the class's size.
func putInBuf(bp *[]byte) {
	if cl := inBufClass(cap(*bp)); cl >= 0 && cap(*bp) == inBufMin<<cl {
		*bp = (*bp)[:cap(*bp)]
		inBufPools[cl].Put(bp)
	}
}

// bodyStep is the least a buffer grows to while a body comes.
const bodyStep = 32 << 10

// maxInBuf is the largest buffer a connection may grow to.
const maxInBuf = inBufMin << (inBufClasses - 1)

// unread returns the bytes read and not consumed.
func (b *inBuf) unread() []byte { return (*b.bp)[b.r:b.w] }

// room returns the free space after the unread bytes, making some when
// there is none: by moving the unread bytes to the start when move allows
// (nothing points into the buffer), else by growing the buffer to the
// next class while the unread bytes stay below limit. It returns nil when
// the buffer may not grow.
func (b *inBuf) room(limit int, move bool) []byte {
	buf := *b.bp
	if b.w < len(buf) {
		return buf[b.w:]
	}
	n := b.w - b.r
	if move && b.r > 0 {
		copy(buf, buf[b.r:b.w])
		b.r, b.w = 0, n
		return buf[n:]
	}
	if n >= limit || len(buf) >= maxInBuf {
		return nil
	}
	size := len(buf) + 1
	if !move {
		// A body: to at least bodyStep (or the limit, when less), so
		// that a body of a few KiB costs one copy rather than one per
		// doubling; a slow client still holds no more than that until it
		// sends more.
		size = max(size, min(limit, bodyStep, maxInBuf))
	}
	nb := getInBuf(inBufClass(size))
	copy(*nb, buf[b.r:b.w])
	if move || b.pinned != nil {
		putInBuf(b.bp) // nothing points into it
	} else {
		b.pinned = b.bp // the parsed head does
	}
	b.bp, b.r, b.w = nb, 0, n
	return (*nb)[n:]
}

// consume drops the first n unread bytes and ends the request: a pinned
// buffer goes back to its pool, and an emptied buffer to the smallest
// class.
func (b *inBuf) consume(n int) {
	b.r += n
	if b.pinned != nil {
		putInBuf(b.pinned)
		b.pinned = nil
	}
	if b.r < b.w {
		return
	}
	b.r, b.w = 0, 0
	if cap(*b.bp) > inBufMin {
		putInBuf(b.bp)
		b.bp = getInBuf(0)
	}
}

// release returns the buffers to their pools; b is unusable after.
func (b *inBuf) release() {
	if b.pinned != nil {
		putInBuf(b.pinned)
	}
	if b.bp != nil {
		putInBuf(b.bp)
	}
	*b = inBuf{}
}
