package discovery

// SessionState is the gateway's one model of its ZooKeeper session, used by
// the API, the status page, the metrics and the log. It is not the client
// library's state: go-zookeeper says "connected" as soon as a TCP
// connection is open, before (and whether or not) a session exists on it.
type SessionState uint8

// The session states.
const (
	// SessionConnecting: no usable session, the client is trying to
	// get one (at start, or after the connection to the session was
	// lost). Reads fail; the last known membership is served.
	SessionConnecting SessionState = iota
	// SessionConnected: a live session; reads and watches work.
	SessionConnected
	// SessionExpired: the server expired the last session (its watches
	// and ephemeral nodes are gone); the client is trying for a new one.
	SessionExpired
	// SessionClosed: the client was closed.
	SessionClosed
)

var sessionStateNames = [...]string{
	SessionConnecting: "connecting",
	SessionConnected:  "connected",
	SessionExpired:    "expired",
	SessionClosed:     "closed",
}

// String returns the state's name as the API, the page and the metrics
// spell it: connecting, connected, expired or closed.
func (s SessionState) String() string {
	if int(s) < len(sessionStateNames) {
		return sessionStateNames[s]
	}
	return "unknown"
}

// SessionStateNames returns the name of every state, in their order. The
// caller may modify the returned slice.
func SessionStateNames() []string {
	return append([]string(nil), sessionStateNames[:]...)
}
