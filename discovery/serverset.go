package discovery

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/zkgate/zkgate/balancer"
)

// serverSetMember is a Finagle/Aurora ServerSet member, the JSON data of a
// member_<sequence> znode.
type serverSetMember struct {
	ServiceEndpoint     *serverSetEndpoint           `json:"serviceEndpoint"`
	AdditionalEndpoints map[string]serverSetEndpoint `json:"additionalEndpoints"`
	Status              string                       `json:"status"`
	Shard               json.RawMessage              `json:"shard"`
	// Metadata is an extension some registrars write: a map of strings,
	// copied into Meta as "metadata.<key>"; its "weight" is honoured.
	Metadata map[string]json.RawMessage `json:"metadata"`
}

type serverSetEndpoint struct {
	Host string          `json:"host"`
	Port json.RawMessage `json:"port"`
}

// statusAlive is the only ServerSet status that serves traffic; the others
// are DEAD, STARTING, STOPPING, STOPPED and WARNING.
const statusAlive = "ALIVE"

// decodeServerSet decodes a ServerSet member, serving serviceEndpoint, or
// additionalEndpoints[endpointName] when endpointName is set. Only ALIVE
// members serve.
func decodeServerSet(data []byte, endpointName string) (balancer.Endpoint, error) {
	var in serverSetMember
	if err := json.Unmarshal(data, &in); err != nil {
		return balancer.Endpoint{}, malformed("invalid ServerSet JSON: %v", err)
	}
	switch {
	case in.Status == "":
		return balancer.Endpoint{}, malformed("status missing")
	case !strings.EqualFold(in.Status, statusAlive):
		return balancer.Endpoint{}, notServing("status is " + strconv.Quote(truncate(in.Status)))
	}
	var ep *serverSetEndpoint
	name := "serviceEndpoint"
	if endpointName != "" {
		name = "additionalEndpoints." + endpointName
		if e, ok := in.AdditionalEndpoints[endpointName]; ok {
			ep = &e
		}
	} else {
		ep = in.ServiceEndpoint
	}
	if ep == nil {
		return balancer.Endpoint{}, malformed("%s missing", name)
	}
	port, present, err := jsonPort(name+".port", ep.Port)
	if err != nil {
		return balancer.Endpoint{}, err
	}
	if !present {
		return balancer.Endpoint{}, malformed("%s.port missing", name)
	}
	addr, err := joinAddr(strings.TrimSpace(ep.Host), port)
	if err != nil {
		return balancer.Endpoint{}, err
	}
	weight, err := jsonWeight(in.Metadata["weight"])
	if err != nil {
		return balancer.Endpoint{}, err
	}
	meta := make(map[string]string, 3)
	if shard, ok := scalar(in.Shard); ok && len(shard) <= maxMetaKey {
		meta["serverset.shard"] = shard
	}
	if endpointName != "" {
		meta["serverset.endpoint"] = endpointName
	}
	addMeta(meta, "metadata.", in.Metadata)
	return balancer.Endpoint{Addr: addr, Weight: weight, Meta: meta}, nil
}
