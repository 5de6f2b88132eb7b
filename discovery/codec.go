package discovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/zkgate/zkgate/balancer"
)

// Format names how the instances of a service describe themselves in their
// znodes.
type Format string

// The node formats. FormatAuto detects the format of each node by content
// (see detect).
const (
	FormatAuto      Format = "auto"
	FormatPlain     Format = "plain"
	FormatCurator   Format = "curator"
	FormatServerSet Format = "serverset"
	FormatNerve     Format = "nerve"
)

// nodeFormats are the formats a node can be in, in the order FormatAuto
// names them.
var nodeFormats = []Format{FormatPlain, FormatCurator, FormatServerSet, FormatNerve}

// FormatNames returns the names ParseFormat accepts: "auto", then every
// node format.
func FormatNames() []string {
	return formatNames(append([]Format{FormatAuto}, nodeFormats...))
}

// ParseFormat returns the Format named s; the empty string means FormatAuto.
func ParseFormat(s string) (Format, error) {
	f := Format(strings.ToLower(strings.TrimSpace(s)))
	if f == "" {
		return FormatAuto, nil
	}
	if slices.Contains(FormatNames(), string(f)) {
		return f, nil
	}
	return "", fmt.Errorf("discovery: unknown node format %q (want %s)", s, joinWords(FormatNames(), "or"))
}

// joinWords lists words in prose: "a, b, c or d".
func joinWords(words []string, conj string) string {
	var b strings.Builder
	for i, w := range words {
		switch {
		case i == 0:
		case i == len(words)-1:
			b.WriteString(" " + conj + " ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(w)
	}
	return b.String()
}

// formatNames returns the names of formats.
func formatNames(formats []Format) []string {
	names := make([]string, len(formats))
	for i, f := range formats {
		names[i] = string(f)
	}
	return names
}

// Limits applied to node data.
const (
	// MaxNodeData is the largest node data a codec accepts, in bytes.
	MaxNodeData = 64 << 10
	// MaxWeight is the largest weight a node may declare. Weights are
	// relative shares; the cap keeps weighted balancers' tables bounded.
	MaxWeight = 1000

	maxMetaEntries = 32  // payload/metadata entries copied into Meta
	maxMetaKey     = 64  // longer keys are not copied
	maxMetaValue   = 256 // longer values are not copied
)

// Errors a codec returns, wrapped with the znode path and the reason.
var (
	// ErrMalformed marks node data that cannot be understood. Such a node
	// is skipped with a warning; the other nodes are served.
	ErrMalformed = errors.New("malformed node")
	// ErrNotServing marks a well-formed node whose instance declares itself
	// out of service (ServerSet status other than ALIVE, Curator
	// "enabled": false, Spring instance_status other than UP, Nerve
	// weight 0). Such a node is skipped silently.
	ErrNotServing = errors.New("instance not serving")
	// ErrUnknownFormat marks, in FormatAuto, a node that no format claims.
	// It wraps ErrMalformed: such a node is skipped with a warning too.
	ErrUnknownFormat error = unknownFormat{}
)

// unknownFormat is ErrUnknownFormat's type; its text names the formats
// that were tried.
type unknownFormat struct{}

func (unknownFormat) Error() string {
	return "not a " + joinWords(formatNames(nodeFormats), "or") + " node"
}

func (unknownFormat) Unwrap() error { return ErrMalformed }

func unclaimed(format string, args ...any) error {
	return &reasonError{base: ErrUnknownFormat, reason: fmt.Sprintf(format, args...)}
}

// Codec decodes the znodes of one service into endpoints.
//
// Weight rule, for every format: a node without a weight has weight 1; a
// weight must be an integer from 1 to MaxWeight, given as a JSON number or a
// numeric string; zero, negative, fractional or larger weights make the node
// malformed (rather than silently served at some other weight). The one
// exception is Nerve's weight 0, which drains the instance in SmartStack and
// so means not serving.
type Codec struct {
	// Format is the node format; "" means FormatAuto.
	Format Format
	// EndpointName, for ServerSet nodes, selects the named entry of
	// additionalEndpoints instead of serviceEndpoint. A member without
	// that entry is malformed.
	EndpointName string
	// SSL, for Curator nodes, selects sslPort instead of port. A node
	// without an sslPort is then malformed.
	SSL bool
}

// Decode decodes the znode at znodePath holding data. The endpoint's ID is
// znodePath and Meta["format"] the format the node was read as. The error
// wraps ErrMalformed or ErrNotServing and names the path; in FormatAuto, a
// node that no format claims gets one that also wraps ErrUnknownFormat,
// names the formats tried and says why none fits.
func (c Codec) Decode(znodePath string, data []byte) (balancer.Endpoint, error) {
	f := c.Format
	var (
		ep  balancer.Endpoint
		err error
	)
	if len(data) > MaxNodeData {
		err = malformed("data is %d bytes, over the %d-byte limit", len(data), MaxNodeData)
	} else if f == "" || f == FormatAuto {
		f, err = detect(path.Base(znodePath), data)
	}
	switch {
	case err != nil:
	case f == FormatPlain:
		ep, err = decodePlain(path.Base(znodePath), data)
	case f == FormatCurator:
		ep, err = decodeCurator(data, c.SSL)
	case f == FormatServerSet:
		ep, err = decodeServerSet(data, c.EndpointName)
	case f == FormatNerve:
		ep, err = decodeNerve(data)
	default:
		err = fmt.Errorf("unknown node format %q", f)
	}
	switch {
	case errors.Is(err, ErrUnknownFormat):
		return balancer.Endpoint{}, fmt.Errorf("discovery: node %s: %w", znodePath, err)
	case err != nil:
		if f == "" {
			f = FormatAuto
		}
		return balancer.Endpoint{}, fmt.Errorf("discovery: node %s (%s): %w", znodePath, f, err)
	}
	ep.ID = znodePath
	if ep.Meta == nil {
		ep.Meta = make(map[string]string, 1)
	}
	ep.Meta["format"] = string(f)
	return ep, nil
}

// formatFields are, for each JSON format, the fields only its nodes carry,
// matched case-insensitively as encoding/json matches them. The first one
// is the field its nodes cannot go without: serviceEndpoint, address, host.
// Curator's and Nerve's name and port, and the metadata some ServerSet
// registrars add, are shared and tell nothing.
var formatFields = []struct {
	format Format
	fields []string
}{
	{FormatServerSet, []string{"serviceEndpoint", "additionalEndpoints", "status", "shard"}},
	{FormatCurator, []string{"address", "id", "sslPort", "payload", "registrationTimeUTC", "serviceType", "uriSpec", "enabled"}},
	{FormatNerve, []string{"host", "weight", "labels", "haproxy_server_options"}},
}

// detect returns the format of the node named name holding data, by its
// shape: a JSON object is the format whose defining field it has (in the
// order of formatFields), or else the one format whose other fields it has,
// so that that format's decoder says what is missing; data that is not JSON
// (or a node without data) is plain when it reads as host:port. A node no
// format claims gets an error wrapping ErrUnknownFormat.
func detect(name string, data []byte) (Format, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		spec, from := plainSpec(name, data)
		if _, ok := splitPlain(spec); ok {
			return FormatPlain, nil
		}
		if from == "data" {
			return "", unclaimed("data %q is neither host:port[,weight] nor a JSON object", truncate(spec))
		}
		return "", unclaimed("node name %q is not host:port[,weight] and the node has no data", truncate(spec))
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &obj); err != nil {
		return "", unclaimed("invalid JSON: %v", err)
	}
	has := make(map[string]bool, len(obj))
	for k := range obj {
		has[strings.ToLower(k)] = true
	}
	var found, markers []string
	for _, ff := range formatFields {
		if has[strings.ToLower(ff.fields[0])] {
			return ff.format, nil
		}
		markers = append(markers, ff.fields[0]+" ("+string(ff.format)+")")
		if slices.ContainsFunc(ff.fields[1:], func(k string) bool { return has[strings.ToLower(k)] }) {
			found = append(found, string(ff.format))
		}
	}
	switch len(found) {
	case 0:
		return "", unclaimed("the JSON object has none of the fields %s", joinWords(markers, "or"))
	case 1:
		return Format(found[0]), nil
	}
	return "", unclaimed("the JSON object has fields of %s but none of %s", joinWords(found, "and"), joinWords(markers, "or"))
}

// plainSpec returns the text a plain node is read from: its data, or its
// name when the data is empty.
func plainSpec(name string, data []byte) (spec, from string) {
	if spec = strings.TrimSpace(string(data)); spec != "" {
		return spec, "data"
	}
	return name, "node name"
}

// plainAddr is "host:port[,weight]" split, not yet checked.
type plainAddr struct {
	host, port, weight string
	hasWeight          bool
}

// splitPlain splits spec; ok is false when it has no host:port.
func splitPlain(spec string) (a plainAddr, ok bool) {
	hostPort, weight, hasWeight := strings.Cut(spec, ",")
	host, port, err := net.SplitHostPort(strings.TrimSpace(hostPort))
	return plainAddr{host: host, port: port, weight: weight, hasWeight: hasWeight}, err == nil
}

// decodePlain decodes the seed's format: the node name is "host:port", and
// data, when present, is "host:port[,weight]" and wins over the name.
func decodePlain(name string, data []byte) (balancer.Endpoint, error) {
	spec, from := plainSpec(name, data)
	if strings.HasPrefix(spec, "{") {
		return balancer.Endpoint{}, malformed("%s is JSON, not host:port[,weight]", from)
	}
	a, ok := splitPlain(spec)
	if !ok {
		return balancer.Endpoint{}, malformed("%s %q is not host:port[,weight]", from, truncate(spec))
	}
	port, err := parsePort(a.port)
	if err != nil {
		return balancer.Endpoint{}, err
	}
	addr, err := joinAddr(a.host, port)
	if err != nil {
		return balancer.Endpoint{}, err
	}
	weight := 1
	if a.hasWeight {
		if weight, err = parseWeightText(a.weight); err != nil {
			return balancer.Endpoint{}, err
		}
	}
	return balancer.Endpoint{Addr: addr, Weight: weight}, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// joinAddr validates host and returns "host:port" (IPv6 in brackets).
func joinAddr(host string, port int) (string, error) {
	if host == "" {
		return "", malformed("empty host")
	}
	if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
		return "", malformed("host %q is neither an IP address nor a host name", truncate(host))
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// validHostname accepts DNS-like names: letters, digits, '-', '_' and '.'.
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		b := h[i]
		ok := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_' || b == '.'
		if !ok {
			return false
		}
	}
	return true
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, malformed("port %q is not a number", truncate(s))
	}
	if p < 1 || p > 65535 {
		return 0, malformed("port %d is out of range 1-65535", p)
	}
	return p, nil
}

func parseWeightText(s string) (int, error) {
	s = strings.TrimSpace(s)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, malformed("weight %q is not a number", truncate(s))
	}
	return checkWeight(f)
}

func checkWeight(f float64) (int, error) {
	switch {
	case f != math.Trunc(f):
		return 0, malformed("weight %v is not an integer", f)
	case f < 1:
		return 0, malformed("weight %v must be at least 1", f)
	case f > MaxWeight:
		return 0, malformed("weight %v is over the maximum %d", f, MaxWeight)
	}
	return int(f), nil
}

// jsonNumber reads raw as a JSON number or a numeric string. present is false for a missing or null value.
func jsonNumber(raw json.RawMessage) (f float64, present bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, true, err
		}
		raw = []byte(strings.TrimSpace(s))
	}
	f, err = strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, true, fmt.Errorf("%q is not a number", truncate(string(raw)))
	}
	return f, true, nil
}

// jsonPort reads a port given as a JSON number or numeric string.
func jsonPort(name string, raw json.RawMessage) (port int, present bool, err error) {
	f, present, err := jsonNumber(raw)
	switch {
	case !present:
		return 0, false, nil
	case err != nil:
		return 0, true, malformed("%s: %v", name, err)
	case f != math.Trunc(f) || f < 1 || f > 65535:
		return 0, true, malformed("%s %v is out of range 1-65535", name, f)
	}
	return int(f), true, nil
}

// jsonWeight reads an optional weight; a missing one is 1.
func jsonWeight(raw json.RawMessage) (int, error) {
	f, present, err := jsonNumber(raw)
	switch {
	case !present:
		return 1, nil
	case err != nil:
		return 0, malformed("weight: %v", err)
	}
	return checkWeight(f)
}

// addMeta copies the scalar values of m into meta under prefix, within the
// package's size limits.
func addMeta(meta map[string]string, prefix string, m map[string]json.RawMessage) {
	for k, raw := range m {
		if len(meta) >= maxMetaEntries {
			return
		}
		if k == "" || k[0] == '@' || len(k) > maxMetaKey {
			continue
		}
		if v, ok := scalar(raw); ok && len(v) <= maxMetaValue {
			meta[prefix+k] = v
		}
	}
}

// scalar returns the text of a JSON string, number or boolean.
func scalar(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case '{', '[', 'n':
		return "", false
	}
	return string(raw), true
}

// truncate shortens s for error messages.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
