// Package discovery turns ZooKeeper membership into balancer endpoint lists
// and registers Go backends in ZooKeeper.
//
// A process holds one Client: one ZooKeeper session, shared by every watcher
// and registrar. A LoadBalanceZkConf watches one service path (the children
// of one znode, each an instance) and publishes the full endpoint list to its
// observers whenever it changes; it is the subject of the observer pattern
// described in package balancer. A Registrar keeps one ephemeral znode alive
// for a Go backend, re-creating it after a session expiry or when another
// client deletes it, and deletes it at once on Deregister.
//
// Instance znodes are read by a Codec: plain ("host:port[,weight]"), Apache
// Curator x-discovery JSON (as written by Spring Cloud Zookeeper),
// Finagle/Aurora ServerSet JSON or Airbnb Nerve (SmartStack) JSON, or
// auto-detected by their fields.
//
// # ZooKeeper semantics
//
// Connect returns at once and seeks the session in the background; Dial
// also waits for the first one. The client's own SessionState (connecting,
// connected, expired, closed) is what the gateway reports: only a session,
// not the library's TCP-level "connected", makes it usable. While it has
// none it logs how long, which servers it tries and the last error, less and
// less often.
//
// Only zk.StateHasSession means the client is usable. While the session is
// lost a conf keeps serving its last known list and reports it as stale
// (static stability); an empty list is published only when it was read from
// a healthy session. After every new session each conf re-lists its service
// and re-arms every watch; a reconnect that kept the session is verified by a
// read without watches, and so is every conf every ResyncInterval, because the
// client's silent re-registration of watches after a reconnect may fail.
// A server that accepts a connection but never completes the session
// handshake is left after a third of the session timeout (go-zookeeper alone
// would wait almost seven session timeouts).
//
// # Membership snapshot
//
// A SnapshotWriter keeps the lists the confs read (ZkConfOptions.OnPublish)
// in a file, written atomically at most once a second and once more on
// Close. ReadSnapshot reads it back, refusing a truncated, corrupt or
// foreign file with its path and the problem, and Snapshot.Service refuses
// an entry written for another service path. A gateway that starts while
// ZooKeeper cannot give a first membership hands the members to
// LoadBalanceZkConf.Seed: they are published, reported Stale and Seeded,
// until the conf's first read replaces them.
//
// # Fleet mode
//
// A Tree watches a few directories and the data of their children (a
// fleet's route and service znodes) the same way, and publishes a
// transaction's changes together; Sync gives a state holding every change
// committed before it. Client.Commit writes a transaction with version
// checks and an ACL, and an Announcement keeps an ephemeral znode whose
// data its owner updates.
//
// This package knows nothing of HTTP; it imports only balancer, go-zookeeper
// and logrus besides the standard library.
package discovery
