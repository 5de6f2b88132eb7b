package discovery

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/zkgate/zkgate/balancer"
)

// curatorInstance is Apache Curator x-discovery's ServiceInstance as JSON,
// the format Spring Cloud Zookeeper writes under /services/<name>/<id>.
// Numbers that Java may write as null or as strings are kept raw.
type curatorInstance struct {
	Name                string          `json:"name"`
	ID                  string          `json:"id"`
	Address             string          `json:"address"`
	Port                json.RawMessage `json:"port"`
	SSLPort             json.RawMessage `json:"sslPort"`
	Payload             json.RawMessage `json:"payload"`
	RegistrationTimeUTC json.RawMessage `json:"registrationTimeUTC"`
	ServiceType         string          `json:"serviceType"`
	URISpec             json.RawMessage `json:"uriSpec"`
	// Enabled is absent before Curator 5; absent means enabled.
	Enabled *bool `json:"enabled"`
}

// decodeCurator decodes a Curator instance. With ssl it serves sslPort.
//
// The payload, when it is an object (often tagged "@class", e.g. a
// java.util.HashMap of strings or Spring's ZookeeperInstance), may carry a
// "weight", directly or in its "metadata" map, and Spring's
// "instance_status": any status other than UP means not serving. Its scalar
// entries are copied into Meta as "payload.<key>" and "metadata.<key>".
func decodeCurator(data []byte, ssl bool) (balancer.Endpoint, error) {
	var in curatorInstance
	if err := json.Unmarshal(data, &in); err != nil {
		return balancer.Endpoint{}, malformed("invalid Curator JSON: %v", err)
	}
	if in.Enabled != nil && !*in.Enabled {
		return balancer.Endpoint{}, notServing("enabled is false")
	}
	portName, raw := "port", in.Port
	if ssl {
		portName, raw = "sslPort", in.SSLPort
	}
	port, present, err := jsonPort(portName, raw)
	if err != nil {
		return balancer.Endpoint{}, err
	}
	if !present {
		return balancer.Endpoint{}, malformed("%s missing", portName)
	}
	addr, err := joinAddr(strings.TrimSpace(in.Address), port)
	if err != nil {
		return balancer.Endpoint{}, err
	}
	meta := make(map[string]string, 4)
	if in.ID != "" && len(in.ID) <= maxMetaValue {
		meta["curator.id"] = in.ID
	}
	if in.Name != "" && len(in.Name) <= maxMetaValue {
		meta["curator.name"] = in.Name
	}
	if in.ServiceType != "" && len(in.ServiceType) <= maxMetaKey {
		meta["curator.service_type"] = in.ServiceType
	}
	weight, err := curatorPayload(in.Payload, meta)
	if err != nil {
		return balancer.Endpoint{}, err
	}
	return balancer.Endpoint{Addr: addr, Weight: weight, Meta: meta}, nil
}

// curatorPayload reads the weight and status of a payload and copies its
// scalar entries into meta. A payload that is not an object carries nothing.
func curatorPayload(raw json.RawMessage, meta map[string]string) (int, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return 1, nil
	}
	var payload map[string]json.RawMessage
	if err := json.Unmarshal(raw, &payload); err != nil {
		return 0, malformed("payload: %v", err)
	}
	var metadata map[string]json.RawMessage
	if m := bytes.TrimSpace(payload["metadata"]); len(m) > 0 && m[0] == '{' {
		if err := json.Unmarshal(m, &metadata); err != nil {
			return 0, malformed("payload.metadata: %v", err)
		}
	}
	weightRaw, ok := payload["weight"]
	if !ok {
		weightRaw = metadata["weight"]
	}
	weight, err := jsonWeight(weightRaw)
	if err != nil {
		return 0, err
	}
	for _, m := range []map[string]json.RawMessage{payload, metadata} {
		if status, ok := scalar(m["instance_status"]); ok && status != "" && !strings.EqualFold(status, "UP") {
			return 0, notServing("instance_status is " + strconv.Quote(truncate(status)))
		}
	}
	addMeta(meta, "payload.", payload)
	addMeta(meta, "metadata.", metadata)
	return weight, nil
}

func notServing(reason string) error {
	return &reasonError{base: ErrNotServing, reason: reason}
}

// reasonError is a sentinel error with a reason.
type reasonError struct {
	base   error
	reason string
}

func (e *reasonError) Error() string { return e.base.Error() + ": " + e.reason }
func (e *reasonError) Unwrap() error { return e.base }

// curatorRecord is what a Registrar writes for a Curator instance: the JSON
// that Curator's JsonInstanceSerializer and Spring Cloud Zookeeper read.
type curatorRecord struct {
	Name                string            `json:"name"`
	ID                  string            `json:"id"`
	Address             string            `json:"address"`
	Port                int               `json:"port"`
	SSLPort             *int              `json:"sslPort"`
	Payload             map[string]string `json:"payload"`
	RegistrationTimeUTC int64             `json:"registrationTimeUTC"`
	ServiceType         string            `json:"serviceType"`
	URISpec             *curatorURISpec   `json:"uriSpec"`
}

type curatorURISpec struct {
	Parts []curatorURIPart `json:"parts"`
}

type curatorURIPart struct {
	Value    string `json:"value"`
	Variable bool   `json:"variable"`
}

// defaultURISpec is Curator's default "{scheme}://{address}:{port}".
var defaultURISpec = &curatorURISpec{Parts: []curatorURIPart{
	{Value: "scheme", Variable: true},
	{Value: "://"},
	{Value: "address", Variable: true},
	{Value: ":"},
	{Value: "port", Variable: true},
}}

// encodeCurator returns the Curator JSON of an instance. The payload is a
// java.util.HashMap of strings holding the weight and meta.
func encodeCurator(name, id, host string, port, weight int, meta map[string]string, now time.Time) ([]byte, error) {
	payload := make(map[string]string, len(meta)+2)
	for k, v := range meta {
		payload[k] = v
	}
	payload["@class"] = "java.util.HashMap"
	payload["weight"] = strconv.Itoa(weight)
	return json.Marshal(curatorRecord{
		Name:                name,
		ID:                  id,
		Address:             host,
		Port:                port,
		Payload:             payload,
		RegistrationTimeUTC: now.UnixMilli(),
		ServiceType:         "DYNAMIC",
		URISpec:             defaultURISpec,
	})
}
