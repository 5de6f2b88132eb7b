// Package healthcheck publishes the working subset of a service's members.
//
// A ZooKeeper ephemeral node outlives a crashed backend by up to its session
// timeout, and a live node can sit on a hung process. LoadBalanceCheckConf
// sits between a service's membership conf (discovery's ZooKeeper watcher, or
// a balancer.Static) and its balancers: it observes the membership, checks
// every member, and is itself a balancer.LoadBalanceConf publishing the
// members that work.
//
//	membership conf ──Update──▶ LoadBalanceCheckConf ──Update──▶ balancers
//	                                  ▲
//	                  proxy ──Report(addr, outcome)
//
// A member is routed as soon as it joins (backends register when ready) and
// probed at once; with Active.RequireFirstPass it is routed only once that
// first probe passes. Three things take it out of the published set:
//
//   - active probes (TCP connect or HTTP GET), with rise/fall thresholds so
//     that one lost probe does not flap it;
//   - passive outlier ejection: Passive.MaxFailures consecutive failed
//     requests reported by the proxy eject it for a time that doubles with
//     each ejection, while at most Passive.MaxEjectionPercent of the service
//     is ejected at once;
//   - Drain, by an operator.
//
// When too few members are healthy (see Config.PanicThreshold) the checker
// publishes every non-drained member instead: a health checker that sees
// the whole service down is more likely wrong than the service.
//
// The removal guard (Config.RemovalGuard) holds a membership change that
// removes too many members at once: the removed members stay, probed at
// once, for a hold time; those that fail a probe leave at once. Held members
// are members like the others for health and the panic threshold: the guard
// decides who is a member, the checks and panic mode decide who of them is
// published.
//
// Health state is keyed by address: it survives weight and metadata changes
// and is dropped, with the member's probe loop, when the address leaves the
// membership (after the removal guard's hold, if it engaged). Only state changes are logged.
//
// The package imports only balancer, logrus and the standard library.
package healthcheck
