package discovery

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/zkgate/zkgate/balancer"
)

// nerveNode is what Airbnb's Nerve (SmartStack) reporter writes, and
// Synapse reads, as the data of an ephemeral sequential znode named
// "<instance_id>_<sequence>":
//
//	{"host":"10.0.0.7","port":8080,"name":"i-0ab12cd","weight":10,"labels":{"az":"us-east-1a"}}
//
// host and port are required; name is Nerve's instance_id; weight and
// labels are optional. Nerve also writes haproxy_server_options, a line of
// HAProxy server options that a gateway has no use for.
type nerveNode struct {
	Host   string          `json:"host"`
	Port   json.RawMessage `json:"port"`
	Name   string          `json:"name"`
	Weight json.RawMessage `json:"weight"`
	Labels json.RawMessage `json:"labels"`
}

// decodeNerve decodes a Nerve node. The weight follows the package's rule
// with one exception: Nerve accepts weight 0 and Synapse hands it to HAProxy,
// where it drains the server, so weight 0 means not serving here too. Scalar
// labels are copied into Meta as "labels.<key>", the instance name as
// "nerve.name".
func decodeNerve(data []byte) (balancer.Endpoint, error) {
	var in nerveNode
	if err := json.Unmarshal(data, &in); err != nil {
		return balancer.Endpoint{}, malformed("invalid Nerve JSON: %v", err)
	}
	port, present, err := jsonPort("port", in.Port)
	if err != nil {
		return balancer.Endpoint{}, err
	}
	if !present {
		return balancer.Endpoint{}, malformed("port missing")
	}
	addr, err := joinAddr(strings.TrimSpace(in.Host), port)
	if err != nil {
		return balancer.Endpoint{}, err
	}
	if f, present, err := jsonNumber(in.Weight); present && err == nil && f == 0 {
		return balancer.Endpoint{}, notServing("weight is 0 (drained)")
	}
	weight, err := jsonWeight(in.Weight)
	if err != nil {
		return balancer.Endpoint{}, err
	}
	meta := make(map[string]string, 2)
	if in.Name != "" && len(in.Name) <= maxMetaValue {
		meta["nerve.name"] = in.Name
	}
	if labels := bytes.TrimSpace(in.Labels); len(labels) > 0 && labels[0] == '{' {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(labels, &m); err != nil {
			return balancer.Endpoint{}, malformed("labels: %v", err)
		}
		addMeta(meta, "labels.", m)
	}
	return balancer.Endpoint{Addr: addr, Weight: weight, Meta: meta}, nil
}
