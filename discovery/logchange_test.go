package discovery

import (
	"fmt"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"
	"github.com/zkgate/zkgate/internal/zktest"
)

// testConfLogsChange checks the one log line of a membership change: 12
// endpoints joining at once (one multi-op) are named five at a time with
// "and 7 more", leaves likewise, and each change is logged once.
func testConfLogsChange(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, raw, p)
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	log, sink := testLogAt(logrus.InfoLevel)
	z, err := NewLoadBalanceZkConf(c, p, ZkConfOptions{}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(z.Close)
	r := newRecorder()
	z.Attach(r)
	r.awaitAddrs(t)

	var ops []any
	var addrs []string
	for i := range 12 {
		addr := fmt.Sprintf("127.0.0.1:%d", 9001+i)
		addrs = append(addrs, addr)
		ops = append(ops, &zk.CreateRequest{Path: p + "/" + addr, Flags: zk.FlagEphemeral, Acl: zk.WorldACL(zk.PermAll)})
	}
	if _, err := raw.Multi(ops...); err != nil {
		t.Fatal(err)
	}
	r.awaitAddrs(t, addrs...)
	waitFor(t, "the join logged", func() bool { return sink.count("12 joined") == 1 })
	wantJoined := `joined="127.0.0.1:9001, 127.0.0.1:9002, 127.0.0.1:9003, 127.0.0.1:9004, 127.0.0.1:9005 and 7 more"`
	if n := sink.count(wantJoined); n != 1 {
		t.Errorf("the join line does not list %s:\n%s", wantJoined, sink.lines("membership changed"))
	}
	if n := sink.count("propagation="); n != 1 {
		t.Errorf("the join line shows no propagation lag:\n%s", sink.lines("membership changed"))
	}

	ops = ops[:0]
	for _, a := range addrs[:7] {
		ops = append(ops, &zk.DeleteRequest{Path: p + "/" + a, Version: -1})
	}
	if _, err := raw.Multi(ops...); err != nil {
		t.Fatal(err)
	}
	r.awaitAddrs(t, addrs[7:]...)
	waitFor(t, "the leave logged", func() bool { return sink.count("7 left") == 1 })
	wantLeft := `left="127.0.0.1:9001, 127.0.0.1:9002, 127.0.0.1:9003, 127.0.0.1:9004, 127.0.0.1:9005 and 2 more"`
	if n := sink.count(wantLeft); n != 1 {
		t.Errorf("the leave line does not list %s:\n%s", wantLeft, sink.lines("membership changed"))
	}
	// The first (empty) list, the join and the leave: three lines.
	if n := sink.count("service membership changed"); n != 3 {
		t.Errorf("%d membership lines, want 3:\n%s", n, sink.lines("membership changed"))
	}
	if n := sink.count("0 joined, 0 left, 0 updated"); n != 1 {
		t.Errorf("want only the first list with nothing joined:\n%s", sink.lines("membership changed"))
	}
	if strings.Contains(sink.lines(""), "joined=\"\"") {
		t.Errorf("an empty joined field was logged")
	}
}
