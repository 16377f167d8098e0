package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/internal/natstest"
	"github.com/sipguard/sipguard/internal/testutil"
)

// fakeLocal is a daemon reduced to its bans: a ban map, an allowlist.
type fakeLocal struct {
	mu    sync.Mutex
	bans  map[netip.Prefix]Ban
	own   []Ban
	allow netip.Prefix
}

func newLocal() *fakeLocal { return &fakeLocal{bans: map[netip.Prefix]Ban{}} }

func (f *fakeLocal) Apply(_ context.Context, us []Update) (map[string]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	res := map[string]int{}
	for _, u := range us {
		switch u.Kind {
		case UpdateBan:
			if f.allow.IsValid() && f.allow.Overlaps(u.Ban.Target) {
				res["allowlisted"]++
				continue
			}
			f.bans[u.Ban.Target] = u.Ban
			res["applied"]++
		case UpdateLifted:
			delete(f.bans, u.Ban.Target)
			res["applied"]++
		case UpdateUnban:
			for p := range f.bans {
				if p.Overlaps(u.Unban.Target) {
					delete(f.bans, p)
				}
			}
			res["applied"]++
		}
	}
	return res, nil
}

// setOwn sets the bans Own returns: the node's publisher reads them
// from its own goroutine (a plain write raced with it under -race).
func (f *fakeLocal) setOwn(bs ...Ban) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.own = bs
}

func (f *fakeLocal) Own(context.Context) ([]Ban, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Ban(nil), f.own...), nil
}

func (f *fakeLocal) has(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.bans[netip.MustParsePrefix(s)]
	return ok
}

func (f *fakeLocal) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.bans)
}

// runNode starts a node, stopped when the test ends.
func runNode(t testing.TB, cfg Config, local Local) *Node {
	t.Helper()
	return startNode(t, cfg, local, zerolog.Nop(), nil)
}

// startNode starts a node logging to log, with the clock now (nil: the
// system's), stopped when the test ends.
func startNode(t testing.TB, cfg Config, local Local, log zerolog.Logger, now func() time.Time) *Node {
	t.Helper()
	if cfg.Queue == 0 {
		// A lab's node, or one of contrib/nats/users.conf, which may not
		// create the stream.
		cfg.Share, cfg.Accept, cfg.CreateStream = true, true, cfg.User == ""
	}
	n, err := New(cfg, local, log)
	if err != nil {
		t.Fatal(err)
	}
	if now != nil {
		n.now = now
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

func eventually(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return testutil.WaitFor(t, d, what, cond)
}

func testBan(target string, d time.Duration) Ban {
	now := time.Now()
	return Ban{Target: netip.MustParsePrefix(target), Rule: "burst", Reason: "test", Since: now, Expires: now.Add(d), Count: 5}
}

func TestNodesShareBans(t *testing.T) {
	url := newBroker(t).url
	la, lb := newLocal(), newLocal()
	lb.allow = netip.MustParsePrefix("192.0.2.0/24")
	a := runNode(t, Config{Servers: []string{url}, Name: "pbx-a"}, la)
	b := runNode(t, Config{Servers: []string{url}, Name: "pbx-b"}, lb)
	eventually(t, 10*time.Second, "both caught up", func() bool { return a.Stats().CaughtUp && b.Stats().CaughtUp })

	a.Publish(testBan("198.51.100.7/32", time.Hour))
	a.Publish(testBan("2001:db8:1::/64", time.Hour))
	a.Publish(testBan("192.0.2.9/32", time.Hour)) // b allows it
	took := eventually(t, 5*time.Second, "b has a's bans", func() bool { return lb.has("198.51.100.7/32") && lb.has("2001:db8:1::/64") })
	t.Logf("a's bans enforced by b %v after publishing", took)
	eventually(t, 5*time.Second, "allowlisted counted", func() bool { return b.Stats().Ignored["allowlisted"] == 1 })
	if st := runNode(t, Config{Servers: []string{"nats://u:secret@127.0.0.1:1"}, Name: "x"}, newLocal()).Stats(); strings.Contains(st.Servers[0], "secret") {
		t.Errorf("status shows a password: %v", st.Servers)
	}
	if s := a.Servers(); len(s) != 1 || s[0] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("the server's address, never to ban for the cluster: %v", s)
	}
	if lb.has("192.0.2.9/32") {
		t.Fatal("b enforced a ban of an address it allows")
	}
	if la.count() != 0 {
		t.Fatalf("a applied its own bans from the stream: %v", la.bans)
	}
	// a reads its own bans back from the stream, and leaves them.
	eventually(t, 5*time.Second, "a counts its bans published and read back", func() bool {
		st := a.Stats()
		return st.Ignored["own"] == 3 && st.Published == 3 && st.Queued == 0
	})
	if st := a.Stats(); st.Applied != 0 {
		t.Fatalf("a's status: %+v", st)
	}

	// A ban of a rule not shared is not published.
	a.cfg.Rules = []string{"manual"}
	a.Publish(testBan("198.51.100.8/32", time.Hour))
	a.cfg.Rules = nil

	// A node started later reads the bans in force, not the expired ones.
	a.Publish(testBan("198.51.100.9/32", 2*time.Second))
	eventually(t, 5*time.Second, "b has the short ban", func() bool { return lb.has("198.51.100.9/32") })
	time.Sleep(3 * time.Second) // its TTL runs out in the stream
	lc := newLocal()
	c := runNode(t, Config{Servers: []string{url}, Name: "pbx-c"}, lc)
	eventually(t, 5*time.Second, "c caught up", func() bool { return c.Stats().CaughtUp })
	eventually(t, 5*time.Second, "c has a's bans in force", func() bool { return lc.has("198.51.100.7/32") && lc.has("2001:db8:1::/64") && lc.has("192.0.2.9/32") })
	if lc.has("198.51.100.9/32") || lc.has("198.51.100.8/32") {
		t.Fatalf("c got an expired or unshared ban: %v", lc.bans)
	}

	// A cluster unban from c lifts the ban on b; a lifts it and says so.
	if err := c.PublishUnban(Unban{Target: netip.MustParsePrefix("198.51.100.7/32"), Time: time.Now(), Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b lifted it", func() bool { return !lb.has("198.51.100.7/32") })
	if err := c.PublishUnban(Unban{Target: netip.MustParsePrefix("10.0.0.0/8"), Time: time.Now(), Until: time.Now().Add(time.Hour)}); err == nil {
		t.Fatal("a cluster unban of a /8 was accepted")
	}
}

// broker is a NATS server that a test stops and starts again, on the same
// port, with or without its storage.
type broker struct {
	t   testing.TB
	dir string
	url string
	s   *server.Server
}

func newBroker(t testing.TB) *broker {
	b := &broker{t: t, dir: t.TempDir()}
	conf, err := natstest.Config(b.dir, "127.0.0.1:-1", "")
	if err != nil {
		t.Fatal(err)
	}
	if b.s, err = natstest.New(conf); err != nil {
		t.Fatal(err)
	}
	b.url = b.s.ClientURL()
	t.Cleanup(b.stop)
	return b
}

func (b *broker) stop() {
	if b.s != nil {
		b.s.Shutdown()
		b.s.WaitForShutdown()
		b.s = nil
	}
}

// start runs the server again on its port.
func (b *broker) start() {
	conf, err := natstest.Config(b.dir, strings.TrimPrefix(b.url, "nats://"), "")
	if err == nil {
		b.s, err = natstest.New(conf)
	}
	if err != nil {
		b.t.Fatal(err)
	}
}

// pair runs nodes pbx-a and pbx-b, both caught up.
func pair(t testing.TB, url string) (a, b *Node, la, lb *fakeLocal) {
	la, lb = newLocal(), newLocal()
	a = runNode(t, Config{Servers: []string{url}, Name: "pbx-a"}, la)
	b = runNode(t, Config{Servers: []string{url}, Name: "pbx-b"}, lb)
	eventually(t, 10*time.Second, "both caught up", func() bool { return a.Stats().CaughtUp && b.Stats().CaughtUp })
	return a, b, la, lb
}

func TestBrokerDown(t *testing.T) {
	br := newBroker(t)
	a, _, _, lb := pair(t, br.url)
	a.Publish(testBan("198.51.100.1/32", time.Hour))
	eventually(t, 5*time.Second, "b has the first ban", func() bool { return lb.has("198.51.100.1/32") })

	br.stop()
	eventually(t, 5*time.Second, "a sees the broker down", func() bool { return !a.Stats().Connected })
	for i := range 100 {
		a.Publish(testBan(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}).String()+"/32", time.Hour))
	}
	a.Publish(testBan("203.0.113.200/32", time.Second)) // over before the broker is back
	time.Sleep(1500 * time.Millisecond)
	if st := a.Stats(); st.Queued != 101 || st.Published != 1 {
		t.Fatalf("while down: %+v", st)
	}

	// The same server, same storage and port, back.
	br.start()
	took := eventually(t, 20*time.Second, "b caught up after the restart", func() bool { return lb.count() == 101 })
	t.Logf("after the broker came back: b has all 100 bans made meanwhile in %v", took)
	eventually(t, 5*time.Second, "a's queue sent", func() bool {
		st := a.Stats()
		return st.Queued == 0 && st.Published == 101 && st.Expired == 1
	})
	if lb.has("198.51.100.1/32") != true {
		t.Fatal("b lost the ban from before")
	}
}

// rawClient connects as a plain NATS client, not a node: what a broken or
// compromised node could send.
func rawClient(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// TestPermissions runs contrib/nats/users.conf: a node cannot speak for
// another, delete or purge the stream, or read others' inboxes; a
// read-only node enforces the cluster's bans.
func TestPermissions(t *testing.T) {
	url := contribBroker(t)
	la, ld := newLocal(), newLocal()
	a := runNode(t, Config{Servers: []string{url}, Name: "pbx-a", User: "pbx-a", Password: "pbx-a-secret"}, la)
	eventually(t, 10*time.Second, "a caught up", func() bool { return a.Stats().CaughtUp })
	d := runNode(t, Config{Servers: []string{url}, Name: "pbx-d", User: "pbx-d", Password: "pbx-d-secret", Accept: true, Queue: DefaultQueue}, ld)
	eventually(t, 10*time.Second, "read-only d caught up", func() bool { return d.Stats().CaughtUp })
	a.Publish(testBan("198.51.100.7/32", time.Hour))
	eventually(t, 5*time.Second, "read-only d enforces a's ban", func() bool { return ld.has("198.51.100.7/32") })

	// pbx-b, compromised, tries to undo pbx-a's ban.
	nc, js := rawClient(t, url, nats.UserInfo("pbx-b", "pbx-b-secret"), nats.CustomInboxPrefix(InboxPrefix("pbx-b")))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lifted := encodeBan(Ban{Target: netip.MustParsePrefix("198.51.100.7/32"), Rule: "burst", Origin: "pbx-a", Since: time.Now(), Expires: time.Now().Add(time.Hour)}, typeLifted)
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, time.Second) }
	c1, k1 := short()
	defer k1()
	if _, err := js.Publish(c1, banSubject("sipguard", "pbx-a", netip.MustParsePrefix("198.51.100.7/32")), lifted); err == nil {
		t.Error("pbx-b published on pbx-a's subject")
	}
	c2, k2 := short()
	defer k2()
	if err := js.DeleteStream(c2, DefaultStream); err == nil {
		t.Error("pbx-b deleted the stream")
	}
	hostile := contribStream(t)
	hostile.AllowRollup = true
	c5, k5 := short()
	defer k5()
	if _, err := js.UpdateStream(c5, hostile); err == nil {
		t.Error("pbx-b changed the stream")
	}
	hostile.Name = "SIPGUARD_BANS2"
	hostile.Subjects = []string{"other.>"}
	c6, k6 := short()
	defer k6()
	if _, err := js.CreateStream(c6, hostile); err == nil {
		t.Error("pbx-b created a stream")
	}
	if s, err := js.Stream(ctx, DefaultStream); err != nil {
		t.Errorf("pbx-b cannot read the stream's info: %v", err)
	} else {
		c3, k3 := short()
		defer k3()
		if err := s.Purge(c3); err == nil {
			t.Error("pbx-b purged the stream")
		}
		c4, k4 := short()
		defer k4()
		if err := s.DeleteMsg(c4, 1); err == nil {
			t.Error("pbx-b deleted a message")
		}
	}
	if _, err := nc.SubscribeSync(InboxPrefix("pbx-a") + ".>"); err == nil {
		nc.Flush()
		if err := nc.LastError(); err == nil || !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("pbx-b subscribed to pbx-a's inbox: %v", err)
		}
	}
	// A ban a publishes now reaches d after anything b got into the
	// stream before it: once it is there, b's attempts had their effect.
	a.Publish(testBan("198.51.100.8/32", time.Hour))
	eventually(t, 5*time.Second, "d enforces a's later ban", func() bool { return ld.has("198.51.100.8/32") })
	if !ld.has("198.51.100.7/32") {
		t.Fatal("pbx-b undid pbx-a's ban")
	}
}

// TestBrokerLostStorage: a server that comes back empty (its storage lost)
// gets the bans in force again from the nodes that decided them, and
// every node reads the new stream from its start.
func TestBrokerLostStorage(t *testing.T) {
	br := newBroker(t)
	url := br.url
	a, _, la, lb := pair(t, url)
	x := testBan("198.51.100.7/32", time.Hour)
	la.setOwn(x)
	a.Publish(x)
	eventually(t, 5*time.Second, "b has the ban", func() bool { return lb.has("198.51.100.7/32") })

	br.stop()
	if err := os.RemoveAll(filepath.Join(br.dir, "js")); err != nil {
		t.Fatal(err)
	}
	br.start()
	eventually(t, 20*time.Second, "a published its ban again", func() bool { return a.Stats().Resyncs >= 2 && a.Stats().Queued == 0 })

	lc := newLocal()
	runNode(t, Config{Servers: []string{url}, Name: "pbx-c"}, lc)
	eventually(t, 10*time.Second, "c has a's ban from the new stream", func() bool { return lc.has("198.51.100.7/32") })
	// b reads the new stream from its start: a ban published now arrives.
	a.Publish(testBan("198.51.100.8/32", time.Hour))
	eventually(t, 5*time.Second, "b reads the new stream", func() bool { return lb.has("198.51.100.8/32") })
}

// TestBadMessages: what a broken or hostile publisher sends is dropped and
// counted, and the messages after it still arrive.
func TestBadMessages(t *testing.T) {
	url := newBroker(t).url
	lb := newLocal()
	b := runNode(t, Config{Servers: []string{url}, Name: "pbx-b"}, lb)
	eventually(t, 10*time.Second, "b caught up", func() bool { return b.Stats().CaughtUp })
	_, js := rawClient(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wide := Ban{Target: netip.MustParsePrefix("0.0.0.0/0"), Rule: "burst", Origin: "evil", Since: time.Now(), Expires: time.Now().Add(time.Hour)}
	claims := testBan("198.51.100.9/32", time.Hour)
	claims.Origin = "pbx-a" // sent on evil's subject
	for _, m := range []struct {
		subject string
		data    []byte
	}{
		{"sipguard.ban.evil.0-0-0-0p0", encodeBan(wide, typeBan)},
		{banSubject("sipguard", "evil", claims.Target), encodeBan(claims, typeBan)},
		{"sipguard.ban.evil.x", []byte("{")},
	} {
		if _, err := js.Publish(ctx, m.subject, m.data); err != nil {
			t.Fatal(err)
		}
	}
	// The stream itself refuses what is too large (its max_msg_size).
	if _, err := js.Publish(ctx, "sipguard.ban.evil.y", []byte(strings.Repeat(" ", MaxMessage+1))); err == nil {
		t.Error("the stream took an oversize message")
	}
	good := testBan("198.51.100.10/32", time.Hour)
	good.Origin = "evil"
	if _, err := js.Publish(ctx, banSubject("sipguard", "evil", good.Target), encodeBan(good, typeBan)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the good ban arrives", func() bool { return lb.has("198.51.100.10/32") })
	if st := b.Stats(); st.Malformed != 3 || lb.count() != 1 {
		t.Fatalf("status %+v, bans %v", st, lb.bans)
	}
}

// logLines is a log sink a test reads line by line.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default: // the test stopped reading
	}
	return len(p), nil
}

// contribBroker runs a server with contrib/nats/users.conf as shipped,
// and creates the stream of contrib/nats/stream.json as its operator.
func contribBroker(t *testing.T) string {
	t.Helper()
	url := contribServer(t)
	createStream(t, url, contribStream(t))
	return url
}

// contribServer runs a server with contrib/nats/users.conf, no stream.
func contribServer(t *testing.T) string {
	t.Helper()
	conf, err := natstest.Config(t.TempDir(), "127.0.0.1:-1", filepath.Join("..", "contrib", "nats", "users.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return natstest.Start(t, conf).ClientURL()
}

// contribStream is contrib/nats/stream.json.
func contribStream(t testing.TB) jetstream.StreamConfig {
	data, err := os.ReadFile(filepath.Join("..", "contrib", "nats", "stream.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg jetstream.StreamConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// createStream creates a stream as the operator of contrib/nats/users.conf.
// errStreamCreate is nats-server's JSStreamCreateErrF (errors.json), the
// generic "could not create the stream"; nats.go does not name it.
const errStreamCreate jetstream.ErrorCode = 10049

func createStream(t testing.TB, url string, cfg jetstream.StreamConfig, opts ...nats.Option) {
	t.Helper()
	_, js := rawClient(t, url, append(opts, nats.UserInfo("admin", "admin-secret"))...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, err := js.CreateStream(ctx, cfg)
		// Just after a stream of the same name was deleted, the server
		// may still be removing its files ("error creating store for
		// stream", seen under -race): the operator would try again.
		var apiErr *jetstream.APIError
		if err == nil || !errors.As(err, &apiErr) || apiErr.ErrorCode != errStreamCreate || !strings.Contains(apiErr.Description, "error creating store") || ctx.Err() != nil {
			if err != nil {
				t.Fatal(err)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// asNode connects as a node of contrib/nats/users.conf with a plain
// client: what that node, compromised, can send.
func asNode(t *testing.T, url, name string) (*nats.Conn, jetstream.JetStream) {
	return rawClient(t, url, nats.UserInfo(name, name+"-secret"), nats.CustomInboxPrefix(InboxPrefix(name)))
}

// TestStrictMessages: pbx-b, compromised, publishes on its own subjects
// messages that a lenient decoder would read one way and another node
// another (keys in capitals, twice, unknown), and bans labelled as this
// node's own feeds or adopted bans. Every one is dropped and counted; its
// good ban after them arrives.
func TestStrictMessages(t *testing.T) {
	url := contribBroker(t)
	la := newLocal()
	a := runNode(t, Config{Servers: []string{url}, Name: "pbx-a", User: "pbx-a", Password: "pbx-a-secret"}, la)
	eventually(t, 10*time.Second, "a caught up", func() bool { return a.Stats().CaughtUp })
	_, js := asNode(t, url, "pbx-b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ban := func(target, rule string) (string, []byte) {
		b := testBan(target, time.Hour)
		b.Origin, b.Rule = "pbx-b", rule
		return banSubject("sipguard", "pbx-b", b.Target), encodeBan(b, typeBan)
	}
	hostile := []func() (string, []byte){
		func() (string, []byte) {
			s, d := ban("198.51.100.1/32", "burst")
			return s, []byte(strings.Replace(string(d), `"origin"`, `"ORIGIN"`, 1))
		},
		func() (string, []byte) {
			s, d := ban("198.51.100.2/32", "burst")
			return s, []byte(strings.Replace(string(d), `"target"`, `"Target":"198.51.100.2/32","target"`, 1))
		},
		func() (string, []byte) {
			s, d := ban("198.51.100.3/32", "burst")
			return s, []byte(strings.Replace(string(d), `"type":"ban"`, `"type":"ban","type":"lifted"`, 1))
		},
		func() (string, []byte) {
			s, d := ban("198.51.100.4/32", "burst")
			return s, []byte(strings.Replace(string(d), `"v":1`, `"v":1,"admin":true`, 1))
		},
		func() (string, []byte) { return ban("198.51.100.5/32", "feed:spamhaus") },
		func() (string, []byte) { return ban("198.51.100.6/32", "adopted") },
	}
	for _, m := range hostile {
		s, d := m()
		if _, err := js.Publish(ctx, s, d); err != nil {
			t.Fatal(err)
		}
	}
	s, d := ban("198.51.100.9/32", "manual")
	if _, err := js.Publish(ctx, s, d); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b's good ban arrives", func() bool { return la.has("198.51.100.9/32") })
	if st := a.Stats(); st.Malformed != int64(len(hostile)) || la.count() != 1 {
		t.Fatalf("malformed %d of %d, bans %v", st.Malformed, len(hostile), la.bans)
	}
}

// TestMessageIDsUnpredictable: pbx-b, compromised, publishes on its own
// subject first with the message IDs pbx-a would have used for its next
// ban (IDs were made of the node, the target and the expiry): the stream
// deduplicates IDs across subjects, so pbx-a's ban would have been
// dropped while the server reported success. pbx-a's ban still reaches
// pbx-c.
func TestMessageIDsUnpredictable(t *testing.T) {
	url := contribBroker(t)
	a := runNode(t, Config{Servers: []string{url}, Name: "pbx-a", User: "pbx-a", Password: "pbx-a-secret"}, newLocal())
	eventually(t, 10*time.Second, "a caught up", func() bool { return a.Stats().CaughtUp })
	lc := newLocal()
	c := runNode(t, Config{Servers: []string{url}, Name: "pbx-c", User: "pbx-c", Password: "pbx-c-secret"}, lc)
	eventually(t, 10*time.Second, "c caught up", func() bool { return c.Stats().CaughtUp })

	next := testBan("198.51.100.7/32", time.Hour)
	_, js := asNode(t, url, "pbx-b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	guesses := []string{
		fmt.Sprintf("ban|pbx-a|%s|%d", key(next.Target), next.Expires.UnixMilli()),
		fmt.Sprintf("ban|pbx-a|%s|%d", key(next.Target), next.Expires.Unix()),
	}
	for i, id := range guesses {
		decoy := testBan(fmt.Sprintf("203.0.113.%d/32", i+1), time.Hour)
		decoy.Origin = "pbx-b"
		subject := banSubject("sipguard", "pbx-b", decoy.Target)
		if _, err := js.Publish(ctx, subject, encodeBan(decoy, typeBan), jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
		// The attack needs the stream's deduplication: it is on.
		if ack, err := js.Publish(ctx, subject, encodeBan(decoy, typeBan), jetstream.WithMsgID(id)); err != nil || !ack.Duplicate {
			t.Fatalf("the stream does not deduplicate %q: %+v %v", id, ack, err)
		}
	}
	a.Publish(next)
	eventually(t, 5*time.Second, "c has a's ban", func() bool { return lc.has("198.51.100.7/32") })
	if msgID() == msgID() {
		t.Fatal("two messages got the same ID")
	}
}

// TestStreamJSON: contrib/nats/stream.json, the stream the operator
// creates, is the stream nodes expect and create_stream makes.
func TestStreamJSON(t *testing.T) {
	got, want := contribStream(t), StreamConfig(Config{})
	if diffs := checkStream(got, want); len(diffs) > 0 {
		t.Fatalf("contrib/nats/stream.json differs: %v", diffs)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("contrib/nats/stream.json\n%+v\nStreamConfig\n%+v", got, want)
	}
}

// TestHostileStream: a stream not as sipguard expects, made first (by an
// operator's mistake, or by a node of a lab with create_stream after the
// server lost its storage), is refused: the node reads nothing from it,
// publishes nothing to it, says why in its status and log, and uses the
// stream once it is fixed. With contrib/nats/users.conf, a node cannot
// create a stream at all.
func TestHostileStream(t *testing.T) {
	good := contribStream(t)
	cases := map[string]func(c *jetstream.StreamConfig){
		"subject_transform": func(c *jetstream.StreamConfig) {
			c.SubjectTransform = &jetstream.SubjectTransformConfig{Source: "sipguard.ban.pbx-b.>", Destination: "sipguard.ban.pbx-a.>"}
		},
		"allow_rollup_hdrs": func(c *jetstream.StreamConfig) { c.AllowRollup = true },
		"republish": func(c *jetstream.StreamConfig) {
			c.RePublish = &jetstream.RePublish{Source: "sipguard.>", Destination: "copy.>"}
		},
		"subjects":             func(c *jetstream.StreamConfig) { c.Subjects = []string{"sipguard.>"} },
		"retention":            func(c *jetstream.StreamConfig) { c.Retention = jetstream.InterestPolicy },
		"max_msgs":             func(c *jetstream.StreamConfig) { c.MaxMsgs = -1 },
		"allow_msg_ttl":        func(c *jetstream.StreamConfig) { c.AllowMsgTTL = false },
		"max_msgs_per_subject": func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 10 },
	}
	for field, change := range cases {
		t.Run(field, func(t *testing.T) {
			t.Parallel()
			url := contribServer(t)
			// After a wipe, pbx-b tries to make the stream its own way.
			_, jsb := asNode(t, url, "pbx-b")
			bad := good
			bad.Subjects = slices.Clone(good.Subjects)
			change(&bad)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if _, err := jsb.CreateStream(ctx, bad); err == nil {
				t.Fatal("pbx-b created the stream")
			}
			createStream(t, url, bad) // the operator's mistake
			logs := make(logLines, 1000)
			la := newLocal()
			n := startNode(t, Config{Servers: []string{url}, Name: "pbx-a", User: "pbx-a", Password: "pbx-a-secret"}, la, zerolog.New(logs), nil)
			eventually(t, 10*time.Second, "the stream refused in status", func() bool {
				return strings.Contains(n.Stats().StreamError, field+":")
			})
			n.Publish(testBan("198.51.100.7/32", time.Hour))
			time.Sleep(500 * time.Millisecond)
			if st := n.Stats(); st.Published != 0 || st.Queued != 1 || st.CaughtUp || st.Received != 0 {
				t.Fatalf("the node used the stream: %+v", st)
			}
			logged := false
			for len(logs) > 0 {
				if line := <-logs; strings.Contains(line, `"level":"error"`) && strings.Contains(line, field+":") {
					logged = true
				}
			}
			if !logged {
				t.Error("the refusal is not in the log at error level")
			}
			// The operator puts the right stream in its place.
			_, jsa := rawClient(t, url, nats.UserInfo("admin", "admin-secret"))
			dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer dcancel()
			if err := jsa.DeleteStream(dctx, DefaultStream); err != nil {
				t.Fatal(err)
			}
			createStream(t, url, good)
			eventually(t, 15*time.Second, "the node uses the stream once fixed", func() bool {
				st := n.Stats()
				return st.StreamError == "" && st.CaughtUp && st.Published == 1
			})
		})
	}
}

// TestDurableConsumers: with contrib/nats/users.conf a node cannot create
// a durable consumer the legacy way; one named durable through
// CONSUMER.CREATE (the subject of every consumer: permissions cannot
// tell) gets the stream's inactivity limit, cannot ask for longer, and is
// gone once left unread, so that consumers made by a compromised node do
// not pile up until the others cannot make theirs. The nodes' own ordered
// consumers live on under the same limit.
func TestDurableConsumers(t *testing.T) {
	url := contribServer(t)
	cfg := contribStream(t)
	cfg.ConsumerLimits.InactiveThreshold = 2 * time.Second // 2 minutes in stream.json: the operator's choice
	createStream(t, url, cfg)
	la := newLocal()
	a := runNode(t, Config{Servers: []string{url}, Name: "pbx-a", User: "pbx-a", Password: "pbx-a-secret"}, la)
	c := runNode(t, Config{Servers: []string{url}, Name: "pbx-c", User: "pbx-c", Password: "pbx-c-secret"}, newLocal())
	eventually(t, 10*time.Second, "a and c caught up", func() bool { return a.Stats().CaughtUp && c.Stats().CaughtUp })

	nc, js := asNode(t, url, "pbx-b")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := []byte(`{"stream_name":"SIPGUARD_BANS","config":{"durable_name":"evil","ack_policy":"explicit"}}`)
	if msg, err := nc.Request("$JS.API.CONSUMER.DURABLE.CREATE.SIPGUARD_BANS.evil", req, time.Second); err == nil {
		t.Fatalf("legacy durable create answered: %s", msg.Data)
	}
	if _, err := js.CreateConsumer(ctx, DefaultStream, jetstream.ConsumerConfig{Durable: "evil-forever", InactiveThreshold: time.Hour}); err == nil {
		t.Fatal("a consumer asked to live an hour unread")
	}
	for i := range 20 {
		cons, err := js.CreateConsumer(ctx, DefaultStream, jetstream.ConsumerConfig{Durable: fmt.Sprintf("evil%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		// The server's answer to the create: asked again later, a slow
		// machine (-race) may find the consumer already gone after 2 s.
		if got := cons.CachedInfo().Config.InactiveThreshold; got != 2*time.Second {
			t.Fatalf("durable consumer's inactive threshold %v, want the stream's 2s", got)
		}
	}
	eventually(t, 15*time.Second, "pbx-b's durable consumers gone", func() bool {
		for i := range 20 {
			cctx, ccancel := context.WithTimeout(ctx, time.Second)
			_, err := js.Consumer(cctx, DefaultStream, fmt.Sprintf("evil%d", i))
			ccancel()
			if !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return false
			}
		}
		return true
	})
	// Quiet for longer than the limit, a's ordered consumer still reads.
	c.Publish(testBan("198.51.100.7/32", time.Hour))
	eventually(t, 10*time.Second, "a has c's ban", func() bool { return la.has("198.51.100.7/32") })
}

// TestStreamFull: a stream that refuses new messages when full (discard
// new, the operator's choice) makes a node's bans wait: retried with
// backoff, counted as retries, the server's own words in the status and
// the log; none dropped. Once there is room (the operator purged it),
// they are stored and reach the other nodes.
func TestStreamFull(t *testing.T) {
	url := contribServer(t)
	cfg := contribStream(t)
	cfg.MaxMsgs, cfg.Discard = 3, jetstream.DiscardNew
	createStream(t, url, cfg)
	logs := make(logLines, 1000)
	n := startNode(t, Config{Servers: []string{url}, Name: "pbx-a", User: "pbx-a", Password: "pbx-a-secret"}, newLocal(), zerolog.New(logs), nil)
	lc := newLocal()
	c := runNode(t, Config{Servers: []string{url}, Name: "pbx-c", User: "pbx-c", Password: "pbx-c-secret"}, lc)
	eventually(t, 10*time.Second, "a and c caught up", func() bool { return n.Stats().CaughtUp && c.Stats().CaughtUp })

	targets := []string{"198.51.100.1/32", "198.51.100.2/32", "198.51.100.3/32", "198.51.100.4/32", "198.51.100.5/32"}
	for _, p := range targets {
		n.Publish(testBan(p, time.Hour))
	}
	eventually(t, 10*time.Second, "the bans beyond the stream's room retried", func() bool {
		st := n.Stats()
		return st.Published == 3 && st.PublishRetries >= 2 && st.Queued == 2
	})
	if st := n.Stats(); st.PublishErrors != 0 || !strings.Contains(st.LastError, "maximum messages") {
		t.Fatalf("status: %+v", st)
	}
	_, js := rawClient(t, url, nats.UserInfo("admin", "admin-secret"))
	pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(pctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(pctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "c has every ban", func() bool {
		for _, p := range targets {
			if !lc.has(p) {
				return false
			}
		}
		return true
	})
	// None dropped, none left waiting. (The two queued bans go out either
	// by their retry, counted as Published, or by the resync that follows
	// the purge, which republishes every ban in force: which comes first
	// depends on timing, so Published is 3 or 5.)
	if st := n.Stats(); st.PublishErrors != 0 || st.Queued != 0 || st.QueueDropped != 0 || st.Published < 3 {
		t.Fatalf("status after: %+v", st)
	}
	retried := false
	for len(logs) > 0 {
		line := <-logs
		if strings.Contains(line, "permissions?") {
			t.Errorf("the log blames permissions: %s", line)
		}
		if strings.Contains(line, "retrying") && strings.Contains(line, "maximum messages") {
			retried = true
		}
	}
	if !retried {
		t.Error("no retry with the server's error in the log")
	}
}

// TestStreamDeleted: the stream deleted while nodes run is found within
// seconds and shown; the bans made meanwhile wait; when the operator
// creates it again, every node reads it from its start and publishes its
// bans in force again. A lab's nodes (create_stream) create it again
// themselves, recreateAfter after they found it gone (created within a
// millisecond, as they did, the stream acknowledged none of a's
// publishes now and then: "timeout waiting for ack" for 15 s).
func TestStreamDeleted(t *testing.T) {
	t.Run("operator", func(t *testing.T) {
		url := contribBroker(t)
		la, lc := newLocal(), newLocal()
		a := runNode(t, Config{Servers: []string{url}, Name: "pbx-a", User: "pbx-a", Password: "pbx-a-secret"}, la)
		c := runNode(t, Config{Servers: []string{url}, Name: "pbx-c", User: "pbx-c", Password: "pbx-c-secret"}, lc)
		eventually(t, 10*time.Second, "a and c caught up", func() bool { return a.Stats().CaughtUp && c.Stats().CaughtUp })
		before := testBan("198.51.100.1/32", time.Hour)
		la.setOwn(before)
		a.Publish(before)
		eventually(t, 5*time.Second, "c has a's ban", func() bool { return lc.has("198.51.100.1/32") })

		_, js := rawClient(t, url, nats.UserInfo("admin", "admin-secret"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, DefaultStream); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 15*time.Second, "both see the stream missing", func() bool {
			return strings.Contains(a.Stats().StreamError, "does not exist") && strings.Contains(c.Stats().StreamError, "does not exist")
		})
		t.Logf("stream deletion seen in %v", took)
		lc.mu.Lock()
		clear(lc.bans)
		lc.mu.Unlock()
		a.Publish(testBan("198.51.100.2/32", time.Hour))
		time.Sleep(time.Second)
		if st := a.Stats(); st.Queued != 1 || st.PublishErrors != 0 || st.Connected != true {
			t.Fatalf("a while the stream is missing: %+v", st)
		}
		createStream(t, url, contribStream(t))
		took = eventually(t, 15*time.Second, "c has a's bans from the new stream", func() bool {
			return lc.has("198.51.100.1/32") && lc.has("198.51.100.2/32")
		})
		t.Logf("recovered %v after the stream came back", took)
		if st := a.Stats(); st.StreamError != "" || st.PublishErrors != 0 {
			t.Fatalf("a after: %+v", st)
		}
	})
	t.Run("create_stream", func(t *testing.T) {
		br := newBroker(t)
		a, _, la, lb := pair(t, br.url)
		x := testBan("198.51.100.1/32", time.Hour)
		la.setOwn(x)
		a.Publish(x)
		eventually(t, 5*time.Second, "b has a's ban", func() bool { return lb.has("198.51.100.1/32") })
		_, js := rawClient(t, br.url)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		created := func() time.Time {
			s, err := js.Stream(ctx, DefaultStream)
			if err != nil {
				return time.Time{}
			}
			return s.CachedInfo().Created
		}
		first := created()
		if err := js.DeleteStream(ctx, DefaultStream); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 15*time.Second, "a node created the stream again", func() bool {
			c := created()
			return !c.IsZero() && !c.Equal(first)
		})
		t.Logf("stream created again %v after its deletion", took)
		a.Publish(testBan("198.51.100.2/32", time.Hour))
		eventually(t, 15*time.Second, "b reads the new stream", func() bool { return lb.has("198.51.100.2/32") })
		lc := newLocal()
		runNode(t, Config{Servers: []string{br.url}, Name: "pbx-c"}, lc)
		eventually(t, 10*time.Second, "a's ban in force is in the new stream", func() bool { return lc.has("198.51.100.1/32") })
	})
}

// TestClockSkew: pbx-b's clock is 10 minutes ahead. It sees so itself
// (against the server's time) and pbx-a sees it from pbx-b's messages:
// both show it and log a warning. pbx-a's own clock is right.
func TestClockSkew(t *testing.T) {
	url := contribBroker(t)
	logsA, logsB := make(logLines, 1000), make(logLines, 1000)
	a := startNode(t, Config{Servers: []string{url}, Name: "pbx-a", User: "pbx-a", Password: "pbx-a-secret"}, newLocal(), zerolog.New(logsA), nil)
	ahead := func() time.Time { return time.Now().Add(10 * time.Minute) }
	b := startNode(t, Config{Servers: []string{url}, Name: "pbx-b", User: "pbx-b", Password: "pbx-b-secret"}, newLocal(), zerolog.New(logsB), ahead)
	eventually(t, 10*time.Second, "a and b caught up", func() bool { return a.Stats().CaughtUp && b.Stats().CaughtUp })
	near := func(d, want time.Duration) bool { return (d - want).Abs() < 5*time.Second }
	eventually(t, 10*time.Second, "b measured its clock", func() bool { return near(b.Stats().ClockSkew, 10*time.Minute) })
	if st := a.Stats(); !near(st.ClockSkew, 0) || st.ClockChecked.IsZero() {
		t.Fatalf("a's clock: %v at %v", st.ClockSkew, st.ClockChecked)
	}
	b.Publish(testBan("198.51.100.7/32", time.Hour))
	eventually(t, 10*time.Second, "a shows b's skew", func() bool { return near(a.Stats().PeerSkews["pbx-b"], 10*time.Minute) })
	warned := func(logs logLines, what string) bool {
		for len(logs) > 0 {
			if line := <-logs; strings.Contains(line, `"level":"warn"`) && strings.Contains(line, what) {
				return true
			}
		}
		return false
	}
	if !warned(logsB, "this node's clock differs") {
		t.Error("b did not warn of its own clock")
	}
	if !warned(logsA, "another node's clock differs") {
		t.Error("a did not warn of b's clock")
	}
	if len(b.Stats().PeerSkews) != 0 {
		t.Errorf("b shows skewed peers: %v", b.Stats().PeerSkews)
	}
}

// TestPublishDenied: a node whose credentials do not allow its subjects
// (pbx-d's, read-only, with share on) has its bans refused for good: the
// server's permissions drop them without a reply. They are dropped after
// a few tries and counted as refused, not retried for ever ahead of the
// rest.
func TestPublishDenied(t *testing.T) {
	t.Parallel()
	url := contribBroker(t)
	d := runNode(t, Config{Servers: []string{url}, Name: "pbx-d", User: "pbx-d", Password: "pbx-d-secret"}, newLocal())
	eventually(t, 10*time.Second, "d caught up", func() bool { return d.Stats().CaughtUp })
	d.Publish(testBan("198.51.100.7/32", time.Hour))
	eventually(t, 90*time.Second, "d's ban refused for good", func() bool {
		st := d.Stats()
		return st.PublishErrors == 1 && st.Queued == 0
	})
	if st := d.Stats(); st.Published != 0 || !strings.Contains(st.LastError, "ermission") && !strings.Contains(st.LastError, "timeout") {
		t.Fatalf("status: %+v", st)
	}
}
