package proxy

import "testing"

// A pooled input buffer goes back at its full length whatever its user
// left it at: coalescingConn appends into an emptied class-4 buffer and
// gave it back 268 bytes long, and a fast connection growing a body
// buffer then took 268 for the class's 64 KiB, its read offset passing
// its write offset — a panic (slice bounds out of range [8518:268]) that
// ended the process, seen once in a full run of the package's tests.
func TestPutInBufRestoresLength(t *testing.T) {
	for cl := range inBufClasses {
		bp := getInBuf(cl)
		*bp = (*bp)[:0]
		*bp = append(*bp, "a coalesced write"...)
		putInBuf(bp)
		if len(*bp) != inBufMin<<cl {
			t.Errorf("class %d: a buffer went back to its pool %d bytes long, want %d", cl, len(*bp), inBufMin<<cl)
		}
	}
}
