// Package cases is the table of configuration files that validation is
// tested with: internal/config checks what Parse says of each, and
// internal/app that zkgate validate and what serve builds agree on each.
package cases

// Case is one configuration file.
type Case struct {
	Name string
	YAML string
	// Problem holds substrings of the one problem the file is refused with;
	// nil for a valid file.
	Problem []string
}

// route is a one-route configuration with the given extra route keys (flow
// style) and services block.
func route(extra, services string) string {
	return "routes:\n  - {name: r, service: echo" + extra + "}\nservices:\n" + services
}

const echoService = "  echo: {}\n"

// Refused are files that config.Parse refuses.
var Refused = []Case{
	{"route to unknown service",
		"routes:\n  - {name: a, service: echo}\n  - {name: b, service: echo}\n  - {name: c, service: payments}\nservices:\n  echo: {}\n",
		[]string{`test.yaml: routes[2].service: unknown service "payments" (defined: echo)`}},
	{"route without service", "routes: [{name: a}]\n",
		[]string{"routes[0].service: required"}},
	{"unknown balancer", route(", balancer: fastest", echoService),
		[]string{`routes[0].balancer: unknown balancer "fastest" (valid: random, round_robin, weighted_round_robin, consistent_hash, least_request)`}},
	{"duplicate route names", "routes:\n  - {name: r, service: echo}\n  - {name: r, service: echo}\nservices:\n  echo: {}\n",
		[]string{`routes[1].name: duplicate route name "r" (also routes[0])`}},
	{"route without name", "routes: [{service: echo}]\nservices: {echo: {}}\n",
		[]string{"routes[0].name: required"}},
	{"consistent_hash without hash_on", route(", balancer: consistent_hash", echoService),
		[]string{"routes[0].hash_on: required by balancer consistent_hash"}},
	{"hash_on header without name", route(", balancer: consistent_hash, hash_on: 'header:'", echoService),
		[]string{"routes[0].hash_on:", `"header:": want header:NAME with a valid header name`}},
	{"hash_on unknown kind", route(", balancer: consistent_hash, hash_on: foo", echoService),
		[]string{"routes[0].hash_on:", `"foo" is not a hash key (valid: client_ip, header:NAME, cookie:NAME, path)`}},
	{"hash_on with another balancer", route(", balancer: round_robin, hash_on: client_ip", echoService),
		[]string{"routes[0].hash_on: only used by balancer consistent_hash"}},
	{"path_prefix without slash", route(", match: {path_prefix: echo}", echoService),
		[]string{`routes[0].match.path_prefix: "echo" must start with "/"`}},
	{"bad host", route(", match: {hosts: ['http://a.example']}", echoService),
		[]string{"routes[0].match.hosts[0]:", "not a host name"}},
	{"bad method", route(", match: {methods: ['GE T']}", echoService),
		[]string{`routes[0].match.methods[0]: invalid method "GE T"`}},
	{"negative route timeout", route(", timeout: -1s", echoService),
		[]string{"routes[0].timeout: must not be negative"}},
	{"bad header name to set", route(", request_headers: {set: {'bad header': x}}", echoService),
		[]string{"routes[0].request_headers.set: invalid header name"}},

	{"service with zookeeper and static", "services:\n  echo:\n    discovery:\n      zookeeper: {path: /services/echo}\n      static: {endpoints: ['127.0.0.1:9000']}\n",
		[]string{"services.echo.discovery: set exactly one of zookeeper and static, not both"}},
	{"static without endpoints", "services:\n  echo: {discovery: {static: {endpoints: []}}}\n",
		[]string{"services.echo.discovery.static.endpoints: at least one endpoint is required"}},
	{"unknown discovery format", "services:\n  echo: {discovery: {zookeeper: {format: json}}}\n",
		[]string{`services.echo.discovery.zookeeper.format: unknown format "json" (valid: auto, plain, curator, serverset, nerve)`}},
	{"relative znode path", "services:\n  echo: {discovery: {zookeeper: {path: services/echo}}}\n",
		[]string{`services.echo.discovery.zookeeper.path: "services/echo" must start with "/"`}},
	{"endpoint_name with plain format", "services:\n  echo: {discovery: {zookeeper: {format: plain, endpoint_name: http}}}\n",
		[]string{"services.echo.discovery.zookeeper.endpoint_name: only used by formats serverset and auto"}},
	{"invalid filter regexp", "services:\n  echo: {discovery: {zookeeper: {filter: {zone: a, version: '^(2'}}}}\n",
		[]string{`services.echo.discovery.zookeeper.filter.version: invalid regular expression "^(2"`, "missing closing )"}},
	{"unknown health check type", "services:\n  echo: {health_check: {active: {type: grpc}}}\n",
		[]string{`services.echo.health_check.active.type: unknown type "grpc" (valid: none, tcp, http)`}},
	{"probe timeout above interval", "services:\n  echo: {health_check: {active: {interval: 1s, timeout: 2s}}}\n",
		[]string{"services.echo.health_check.active.timeout: 2s is longer than the interval 1s"}},
	{"bad expect_status", "services:\n  echo: {health_check: {active: {expect_status: '200-99'}}}\n",
		[]string{"services.echo.health_check.active.expect_status:", "not a status code or range"}},
	{"probe path the health checker cannot send", "services:\n  echo: {health_check: {active: {type: http, path: '/health%zz'}}}\n",
		[]string{"services.echo.health_check.active.path:", "not an absolute request path"}},
	{"zero healthy threshold", "services:\n  echo: {health_check: {active: {healthy_threshold: 0}}}\n",
		[]string{"services.echo.health_check.active.healthy_threshold: must be at least 1, got 0"}},
	{"percent above 100", "services:\n  echo: {health_check: {passive: {max_ejection_percent: 150}}}\n",
		[]string{"services.echo.health_check.passive.max_ejection_percent: must be a percentage between 0 and 100, got 150"}},
	{"removal guard percent above 100", "services:\n  echo: {removal_guard: {max_percent: 101}}\n",
		[]string{"services.echo.removal_guard.max_percent: must be a percentage between 0 and 100, got 101"}},
	{"removal guard without hold", "services:\n  echo: {removal_guard: {max_percent: 30, hold: 0s}}\n",
		[]string{"services.echo.removal_guard.hold: must be positive, got 0s", "max_percent: 0 turns the guard off"}},
	{"negative panic threshold", "services:\n  echo: {health_check: {panic_threshold: -5}}\n",
		[]string{"services.echo.health_check.panic_threshold: must be a percentage"}},
	{"negative max_body_bytes", "services:\n  echo: {max_body_bytes: -1}\n",
		[]string{"services.echo.max_body_bytes: must not be negative"}},
	{"negative slow_start", "services:\n  echo: {slow_start: -30s}\n",
		[]string{"services.echo.slow_start: must not be negative"}},
	{"negative dial timeout", "services:\n  echo: {timeouts: {dial: -2s}}\n",
		[]string{"services.echo.timeouts.dial: must not be negative"}},
	{"zero attempts", "services:\n  echo: {retries: {attempts: 0}}\n",
		[]string{"services.echo.retries.attempts: must be at least 1 (1 = no retries), got 0"}},
	{"unknown retry condition", "services:\n  echo: {retries: {on: [connect_failure, reset]}}\n",
		[]string{`services.echo.retries.on[1]: unknown condition "reset" (valid: connect_failure, timeout, server_error)`}},
	{"retry budget percent out of range", "services:\n  echo: {retries: {budget: {percent: 1500}}}\n",
		[]string{"services.echo.retries.budget.percent: must be between 0 and 1000, got 1500"}},
	{"negative retry budget floor", "services:\n  echo: {retries: {budget: {min_per_second: -1}}}\n",
		[]string{"services.echo.retries.budget.min_per_second: must be between 0 and 1000000, got -1"}},
	{"retry budget window too short", "services:\n  echo: {retries: {budget: {window: 100ms}}}\n",
		[]string{"services.echo.retries.budget.window: must be between 1s and 1m0s, got 100ms"}},
	{"zero retry budget window", "services:\n  echo: {retries: {budget: {window: 0}}}\n",
		[]string{"services.echo.retries.budget.window: must be between 1s and 1m0s, got 0s"}},
	{"invalid service name", "services:\n  'ec ho': {}\n",
		[]string{`services.ec ho: invalid service name "ec ho"`}},

	{"empty zookeeper server list", "zookeeper: {servers: []}\n",
		[]string{"zookeeper.servers: at least one server is required"}},
	{"zookeeper server with chroot", "zookeeper: {servers: ['zk1:2181/app']}\n",
		[]string{"zookeeper.servers[0]:", "chroot"}},
	{"zookeeper server with bad port", "zookeeper: {servers: ['zk1:abc']}\n",
		[]string{`zookeeper.servers[0]: "zk1:abc": invalid port "abc"`}},
	{"zero session timeout", "zookeeper: {session_timeout: 0}\n",
		[]string{"zookeeper.session_timeout: must be positive"}},
	{"base path with trailing slash", "zookeeper: {base_path: /services/}\n",
		[]string{`zookeeper.base_path: "/services/" must not end with "/"`}},
	{"snapshot file naming a directory", "zookeeper: {snapshot_file: /var/lib/zkgate/}\n",
		[]string{`zookeeper.snapshot_file: "/var/lib/zkgate/" names a directory`}},
	{"snapshot file with spaces", "zookeeper: {snapshot_file: ' snap.json'}\n",
		[]string{`zookeeper.snapshot_file: " snap.json" has leading or trailing spaces`}},
	{"unsupported auth scheme", "zookeeper: {auth: {scheme: sasl}}\n",
		[]string{`zookeeper.auth.scheme: unsupported scheme "sasl" (valid: digest)`}},
	{"credentials without colon", "zookeeper: {auth: {credentials: secret}}\n",
		[]string{`zookeeper.auth.credentials: digest credentials must be "user:password"`}},
	{"invalid entry point address", "entry_points: {web: {address: 'localhost'}}\n",
		[]string{`entry_points.web.address: "localhost": not a host:port address`}},
	{"entry point port out of range", "entry_points: {web: {address: ':70000'}}\n",
		[]string{`entry_points.web.address: ":70000": invalid port "70000"`}},
	{"two entry points on one address", "entry_points: {a: {address: ':8080'}, b: {address: ':8080'}}\n",
		[]string{`entry_points.b.address: ":8080" is also the address of entry point "a"`}},
	{"no entry point", "entry_points: {}\n",
		[]string{"entry_points: at least one entry point is required"}},
	{"entry point name with a dot", "entry_points: {web.v2: {address: ':8080'}}\n",
		[]string{`entry_points.web.v2: invalid entry point name "web.v2" (letters, digits, '_', '-')`}},
	{"negative max_header_bytes", "entry_points: {web: {max_header_bytes: -1}}\n",
		[]string{"entry_points.web.max_header_bytes: must not be negative"}},
	{"invalid admin address", "admin: {address: '127.0.0.1'}\n",
		[]string{`admin.address: "127.0.0.1": not a host:port address`}},
	{"admin on an entry point's address", "admin: {address: ':8080'}\n",
		[]string{`admin.address: ":8080" is also the address of entry point "web"`}},
	{"unknown log level", "log: {level: verbose}\n",
		[]string{`log.level: unknown level "verbose" (valid: trace, debug, info, warn, error, fatal, panic)`}},
	{"unknown log format", "log: {format: xml}\n",
		[]string{`log.format: unknown format "xml" (valid: auto, text, json)`}},
	{"bad CIDR", "trusted_proxies: ['10.0.0.0/8', '10.0.0.0/33']\n",
		[]string{`trusted_proxies[1]: "10.0.0.0/33" is not a CIDR or IP address`}},
	{"negative drain delay", "shutdown: {drain_delay: -1s}\n",
		[]string{"shutdown.drain_delay: must not be negative"}},
}

// RefusedByBuild are files that config.Parse lets through and that building
// their routes and services refuses: the proxy's route compiler is the one
// judge of these rules, and zkgate validate runs it as serve does.
var RefusedByBuild = []Case{
	{"CONNECT method", route(", match: {methods: [GET, CONNECT]}", echoService),
		[]string{"method CONNECT is never proxied"}},
	{"path_prefix with an empty segment", route(", match: {path_prefix: /api//v1}", echoService),
		[]string{"must be a clean path"}},
	{"path_prefix with a dot segment", route(", match: {path_prefix: /api/./v1}", echoService),
		[]string{"must be a clean path"}},
	{"path_prefix with a dot-dot segment", route(", match: {path_prefix: /api/../admin}", echoService),
		[]string{"must be a clean path"}},
}

// Valid are files that validate.
var Valid = []Case{
	{"route matching everything", route("", echoService), nil},
	{"hosts only", route(", match: {hosts: [api.example.com, '10.0.0.1', '[::1]']}", echoService), nil},
	{"consistent hash on a header", route(", balancer: consistent_hash, hash_on: 'header:X-User-ID'", echoService), nil},
	{"consistent hash on a cookie", route(", balancer: consistent_hash, hash_on: 'cookie:session'", echoService), nil},
	{"consistent hash on the client", route(", balancer: consistent_hash, hash_on: client_ip", echoService), nil},
	{"metadata filter", "services:\n  echo: {discovery: {zookeeper: {filter: {zone: a, version: '^2\\.'}}}}\n", nil},
	{"nerve node format", "services:\n  echo: {discovery: {zookeeper: {path: /services/echo, format: nerve}}}\n", nil},
	{"static service", "services:\n  echo: {discovery: {static: {endpoints: ['127.0.0.1:9000', '[::1]:9001,5']}}}\n", nil},
	{"admin disabled", "admin: {address: ''}\n", nil},
	{"listen on port 0", "entry_points: {web: {address: '127.0.0.1:0'}, alt: {address: '127.0.0.1:0'}}\nadmin: {address: '127.0.0.1:0'}\n", nil},
	{"single IPs as trusted proxies", "trusted_proxies: ['10.1.2.3', '::1', '192.168.0.0/16']\n", nil},
	{"digest credentials", "zookeeper: {auth: {credentials: 'zkgate:s3cret'}}\n", nil},
	{"snapshot file", "zookeeper: {snapshot_file: /var/lib/zkgate/membership.json}\n", nil},
	{"root base path", "zookeeper: {base_path: /}\nservices: {echo: {}}\n", nil},
	{"path_prefix with a trailing slash", route(", match: {path_prefix: /echo/}", echoService), nil},
	{"path_prefix /", route(", match: {path_prefix: /}", echoService), nil},
	{"removal guard off", "services:\n  echo: {removal_guard: {max_percent: 0, hold: 0s}}\n", nil},
	{"first pass not required", "services:\n  echo: {health_check: {active: {type: tcp, require_first_pass: false}}}\n", nil},
	{"retry budget off", "services:\n  echo: {retries: {attempts: 3, budget: {enabled: false, percent: -1}}}\n", nil},
	{"retry budget of the floor only", "services:\n  echo: {retries: {budget: {percent: 0, min_per_second: 5, window: 1m}}}\n", nil},
}
