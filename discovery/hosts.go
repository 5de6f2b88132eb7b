package discovery

import (
	"errors"
	"math/rand/v2"
	"sync"
)

// hostList is the client's zk.HostProvider: the configured servers as given,
// in a shuffled order, each name resolved by the dialer when it is dialed.
// go-zookeeper's own provider resolves every name once, in zk.Connect, and
// fails the whole client when one of them does not resolve: a gateway would
// not start while one ensemble member's DNS name is missing (a container
// not started yet), and would keep dialing the old address of a member that
// moved.
type hostList struct {
	mu      sync.Mutex
	servers []string
	cur     int // index of the server last returned by Next
	last    int // index of the server last connected to; -1 before the first
}

// Init implements zk.HostProvider.
func (h *hostList) Init(servers []string) error {
	if len(servers) == 0 {
		return errors.New("discovery: no zookeeper servers")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.servers = append([]string(nil), servers...)
	rand.Shuffle(len(h.servers), func(i, j int) { h.servers[i], h.servers[j] = h.servers[j], h.servers[i] })
	h.cur, h.last = -1, -1
	return nil
}

// Len implements zk.HostProvider.
func (h *hostList) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.servers)
}

// Next implements zk.HostProvider: the next server, and whether every
// server was tried since the last connection (the library then waits a
// second before going on).
func (h *hostList) Next() (server string, retryStart bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cur = (h.cur + 1) % len(h.servers)
	if h.last == -1 {
		// Before any connection, a round starts at the first server.
		h.last = 0
		return h.servers[h.cur], false
	}
	return h.servers[h.cur], h.cur == h.last
}

// Connected implements zk.HostProvider.
func (h *hostList) Connected() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = h.cur
}
