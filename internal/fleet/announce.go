package fleet

import (
	"encoding/json"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/discovery"
)

// Announcement is what a gateway says of itself in its ephemeral znode
// under fleet.gateways_path.
type Announcement struct {
	Name string `json:"name"`
	// Address is its admin address.
	Address string `json:"address"`
	// Version is zkgate's version.
	Version string `json:"version"`
	// ConfigVersion is the configuration version it runs (see Status);
	// 0 before the first.
	ConfigVersion int64 `json:"config_version"`
	// Since is when it started running ConfigVersion.
	Since time.Time `json:"since"`
	// Started is when the gateway started.
	Started time.Time `json:"started"`
}

// Announcer keeps a gateway's announcement current.
type Announcer struct {
	a    *discovery.Announcement
	last Announcement
}

// Announce starts announcing a under gatewaysPath.
func Announce(c *discovery.Client, gatewaysPath string, a Announcement, acl discovery.ACL, log logrus.FieldLogger) (*Announcer, error) {
	data, _ := json.Marshal(a)
	ann, err := discovery.NewAnnouncement(c, path.Join(gatewaysPath, a.Name), data, acl, log.WithField("component", "fleet"))
	if err != nil {
		return nil, err
	}
	ann.Start()
	return &Announcer{a: ann, last: a}, nil
}

// Applied records that configuration version v runs since at.
func (an *Announcer) Applied(v int64, at time.Time) {
	an.last.ConfigVersion, an.last.Since = v, at
	data, _ := json.Marshal(an.last)
	an.a.Set(data)
}

// Close deletes the announcement.
func (an *Announcer) Close() { an.a.Close() }

// Gateway is one gateway of the fleet as listed by Gateways.
type Gateway struct {
	Announcement
	// Znode is its announcement's path.
	Znode string `json:"znode"`
	// Behind is set when it runs an older configuration version than
	// another gateway of the fleet.
	Behind bool `json:"behind"`
	// Problem is set when its announcement does not parse.
	Problem string `json:"problem,omitempty"`
}

// Gateways reads the announcements under gatewaysPath and flags those
// running an older configuration version than the newest one announced.
func Gateways(c *discovery.Client, gatewaysPath string) ([]Gateway, error) {
	st, err := c.ReadDirs([]string{gatewaysPath})
	if err != nil {
		return nil, err
	}
	return parseGateways(st.Dirs[gatewaysPath]), nil
}

func parseGateways(nodes []discovery.TreeNode) []Gateway {
	out := make([]Gateway, 0, len(nodes))
	newest := int64(0)
	for _, n := range nodes {
		g := Gateway{Znode: n.Path}
		switch {
		case n.Err != nil:
			g.Problem = n.Err.Error()
		default:
			if err := json.Unmarshal(n.Data, &g.Announcement); err != nil {
				g.Problem = "announcement is not JSON: " + err.Error()
			}
		}
		if g.Name == "" {
			g.Name = n.Name
		}
		newest = max(newest, g.ConfigVersion)
		out = append(out, g)
	}
	for i := range out {
		out[i].Behind = out[i].Problem == "" && out[i].ConfigVersion < newest
	}
	slices.SortFunc(out, func(a, b Gateway) int { return strings.Compare(a.Name, b.Name) })
	return out
}
