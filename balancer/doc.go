// Package balancer holds the endpoint model, the observer pattern that carries
// membership from discovery to the load balancers, and the load-balancing
// algorithms themselves.
//
// A LoadBalanceConf is a subject: it holds the current endpoint list and
// notifies its observers with the full list (never a delta) whenever the list
// changes. discovery.LoadBalanceZkConf publishes ZooKeeper membership,
// healthcheck.LoadBalanceCheckConf publishes the healthy subset of an upstream
// conf, and Static publishes a fixed list. Balancers are observers: each keeps
// an immutable snapshot behind an atomic pointer, rebuilt on Update, so that
// Pick takes no lock and allocates nothing.
//
// The algorithms are Random, RoundRobin, WeightRoundRobin (nginx's smooth
// weighted round robin), ConsistentHash and LeastRequest (which implements
// Tracker); New builds one from its configuration name, and Names lists
// those names. Each documents how it uses weights. Random and
// WeightRoundRobin take WithSlowStart, which ramps a new endpoint's weight
// up over a window (see SlowStartAlgorithms for why the others do not). Their zero values are
// ready to use, and an Update that changes nothing (see Equal) keeps their
// state.
//
// This package knows nothing of ZooKeeper, HTTP or health checks and imports
// only the standard library.
package balancer
