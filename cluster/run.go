package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// streamCheck is how often a node looks at the stream: one deleted,
// replaced or changed is found within it (sooner when reading or
// publishing fails).
const streamCheck = 5 * time.Second

// recreateAfter is how long a node that may create the stream
// (create_stream) waits before creating it again once it has gone: the
// server removes a deleted stream's store after answering the delete,
// and a stream created at once (nodes did, 0.1-0.8 ms after, woken by
// their consumers' deletion) could take publishes it never acknowledged
// (TestStreamDeleted, nats-server 2.15.2).
const recreateAfter = 2 * time.Second

// errStreamMissing: no stream of that name, and this node may not create
// it ([cluster] create_stream).
var errStreamMissing = errors.New("the cluster's stream does not exist (create it: docs/cluster.md)")

// stream looks the stream up, creating it when it is missing and create
// is set, and checks its configuration. It also measures this node's
// clock against the server's (the time in the stream's info).
func (n *Node) stream(ctx context.Context, js jetstream.JetStream, create bool) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	asked := n.now()
	s, err := js.Stream(ctx, n.cfg.Stream)
	answered := n.now()
	if err == nil {
		if ts := s.CachedInfo().TimeStamp; !ts.IsZero() {
			n.clock(asked.Add(answered.Sub(asked) / 2).Sub(ts))
		}
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) && create {
		s, err = js.CreateStream(ctx, StreamConfig(n.cfg))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, n.cfg.Stream) // another node was quicker
		} else if err == nil {
			n.log.Info().Str("stream", n.cfg.Stream).Msg("created the cluster's stream")
		}
	}
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, errStreamMissing
	case err != nil:
		return nil, err
	}
	info := s.CachedInfo()
	if diffs := checkStream(info.Config, StreamConfig(n.cfg)); len(diffs) > 0 {
		return nil, fmt.Errorf("%w (docs/cluster.md): %s", errStreamDiffers, strings.Join(diffs, "; "))
	}
	return info, nil
}

// subscriber checks the stream every streamCheck and reads it: from its
// bans in force on, and again from scratch whenever the stream was
// recreated (a broker that lost its storage, an operator who deleted it).
// A stream missing or not as expected is neither read nor published to,
// and the node says so (status, log, metrics) until it is fixed.
func (n *Node) subscriber(ctx context.Context, js jetstream.JetStream) {
	in := make(chan Update, 1024)
	done := make(chan struct{})
	go func() { defer close(done); n.applier(ctx, in) }()
	defer func() { <-done }()

	var created time.Time
	var gone time.Time // when a stream this node read was found missing
	var stop func()
	halt := func() {
		if stop != nil {
			stop()
			stop = nil
		}
		created = time.Time{}
	}
	defer halt()
	for {
		if _, ok := n.waitConnected(ctx); !ok {
			return
		}
		// A stream this node reads and finds gone is created again
		// only recreateAfter later (create_stream); one never read, at
		// once.
		create := n.cfg.CreateStream && (created.IsZero() && gone.IsZero() || !gone.IsZero() && time.Since(gone) >= recreateAfter)
		info, err := n.stream(ctx, js, create)
		wait := streamCheck
		switch {
		case errors.Is(err, errStreamMissing) || errors.Is(err, errStreamDiffers):
			if errors.Is(err, errStreamMissing) && !created.IsZero() {
				gone = time.Now()
			}
			if n.cfg.CreateStream && !gone.IsZero() {
				wait = recreateAfter
			}
			halt()
			n.streamProblem(err)
		case err != nil && created.IsZero():
			n.streamProblem(fmt.Errorf("cluster stream unavailable: %w", err))
		case err != nil:
			// Checked before, and being read: a slow or busy server is
			// no reason to stop publishing. The next check decides.
			n.fail(fmt.Errorf("checking the cluster's stream: %w", err))
		case !info.Created.Equal(created):
			if stop != nil {
				n.log.Warn().Msg("the cluster's stream was recreated: reading it again, publishing this node's bans again")
			}
			halt()
			if stop, err = n.consume(ctx, js, in, info.Config.ConsumerLimits.InactiveThreshold); err != nil {
				stop = nil
				n.streamProblem(fmt.Errorf("cannot read the cluster's stream: %w", err))
				break
			}
			created, gone = info.Created, time.Time{}
			n.streamFine()
		default:
			n.streamFine()
		}
		select {
		case <-ctx.Done():
			return
		case <-n.recheck:
		case <-time.After(wait):
		}
	}
}

// checkSoon asks the subscriber to look at the stream now.
func (n *Node) checkSoon() {
	select {
	case n.recheck <- struct{}{}:
	default:
	}
}

func (n *Node) caughtUp() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.st.CaughtUp
}

// consume starts reading the stream (the last message of every subject,
// then what comes) into in. Once it has read what was there, this node's
// own bans are published again, in case the stream lost them. inactive
// is the stream's limit of a consumer's inactivity.
func (n *Node) consume(ctx context.Context, js jetstream.JetStream, in chan<- Update, inactive time.Duration) (func(), error) {
	filters := []string{n.cfg.Subject + ".unban.>"}
	if n.cfg.Accept {
		filters = append(filters, n.cfg.Subject+".ban.>")
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy}
	if inactive > 0 && inactive < 5*time.Minute {
		cfg.InactiveThreshold = inactive // the client's default is over the stream's limit
	}
	cons, err := js.OrderedConsumer(cctx, n.cfg.Stream, cfg)
	if err != nil {
		return nil, err
	}
	n.count(func(st *Stats) { st.CaughtUp = false })
	caughtUp := func() {
		n.count(func(st *Stats) { st.CaughtUp = true })
		n.resync()
	}
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
		caughtUp()
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			md = nil
		}
		n.receive(ctx, m, md, in)
		if md != nil && md.NumPending == 0 && !n.caughtUp() {
			n.log.Info().Uint64("sequence", md.Sequence.Stream).Msg("caught up with the cluster's bans")
			caughtUp()
		}
	},
		// Short pulls and heartbeats: after the server restarts, the
		// consumer (held in its memory) is gone, and the client finds out
		// from a missed heartbeat: 2 s rather than the default 15.
		jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			n.checkSoon() // the stream may be gone
			if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, context.Canceled) {
				return // the connection is down: logged already
			}
			n.fail(err)
			n.log.Warn().Err(err).Msg("reading the cluster's stream")
		}))
	if err != nil {
		return nil, err
	}
	return func() {
		cc.Stop()
		// Delete the consumer rather than leave it to the stream's
		// inactivity limit (2 minutes): a fleet whose nodes all restart
		// at once (an upgrade) would otherwise hold twice its consumers
		// for that long, against the stream's max_consumers. The server
		// may be away: a short wait at most.
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := js.DeleteConsumer(dctx, n.cfg.Stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				n.log.Debug().Err(err).Str("consumer", info.Name).Msg("cannot delete this node's consumer; the server will after its inactivity limit")
			}
		}
	}, nil
}

// receive checks a message and hands it to the applier. md is its
// metadata, nil if unreadable.
func (n *Node) receive(ctx context.Context, m jetstream.Msg, md *jetstream.MsgMetadata, in chan<- Update) {
	msg, err := decode(n.cfg.Subject, m.Subject(), m.Data())
	if err != nil {
		n.count(func(st *Stats) {
			if errors.Is(err, errOversize) {
				st.Oversize++
			} else {
				st.Malformed++
			}
		})
		n.log.Warn().Err(err).Str("subject", m.Subject()).Msg("cluster message dropped")
		return
	}
	n.count(func(st *Stats) { st.Received++ })
	var u Update
	switch msg.typ {
	case typeBan:
		u = Update{Kind: UpdateBan, Ban: msg.ban}
	case typeLifted:
		u = Update{Kind: UpdateLifted, Ban: msg.ban}
	case typeUnban:
		u = Update{Kind: UpdateUnban, Unban: msg.unban}
	}
	origin := u.Ban.Origin + u.Unban.Origin
	if origin == n.cfg.Name {
		n.ignore("own", 1) // done here already
		return
	}
	if md != nil && !msg.sent.IsZero() {
		n.peerClock(origin, msg.sent.Sub(md.Timestamp))
	}
	select {
	case in <- u:
	case <-ctx.Done():
	}
}

func (n *Node) ignore(why string, k int) {
	n.mu.Lock()
	n.ignored[why] += int64(k)
	n.mu.Unlock()
}

// applier hands updates to the daemon, as many at a time as have come:
// thousands of bans arriving at once become one firewall transaction.
func (n *Node) applier(ctx context.Context, in <-chan Update) {
	const most = 5000
	// Grown as bursts need, not made 5,000 long up front: that was
	// 1.2 MB per node (248 bytes an update) for nothing while it is idle (BenchmarkCluster:
	// 1,500 nodes in one process, docs/cluster.md#fleet-size).
	var batch []Update
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case u := <-in:
			batch = append(batch, u)
		}
	more:
		for len(batch) < most {
			select {
			case u := <-in:
				batch = append(batch, u)
			default:
				break more
			}
		}
		res, err := n.local.Apply(ctx, batch)
		if err != nil {
			if ctx.Err() == nil {
				n.fail(err)
				n.log.Error().Err(err).Int("updates", len(batch)).Msg("cluster bans not applied")
			}
			continue
		}
		n.mu.Lock()
		for why, k := range res {
			if why == "applied" {
				n.st.Applied += int64(k)
			} else {
				n.ignored[why] += int64(k)
			}
		}
		n.mu.Unlock()
	}
}

// resync asks the publisher to publish this node's bans in force again.
func (n *Node) resync() {
	n.mu.Lock()
	n.st.Resyncs++
	n.resyncWanted = true
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// publisher sends the queue to the stream while it is usable, a batch at a
// time. What the server could not store now (storage full, the stream
// away) goes back to the front of the queue and is tried again: at once
// while the server stores some of each batch (it is busy), else waiting
// longer each time (1 s to a minute); what it refuses for good (no
// permission, a message it will never take) is tried maxTries times,
// then dropped and counted, so that it does not hold up the rest.
func (n *Node) publisher(ctx context.Context, js jetstream.JetStream) {
	const batchSize = 512
	const maxTries = 5
	var backoff time.Duration
	for {
		if !n.waitReady(ctx) {
			return
		}
		n.mu.Lock()
		wanted := n.resyncWanted
		n.resyncWanted = false
		n.mu.Unlock()
		if wanted && n.cfg.Share {
			own, err := n.local.Own(ctx)
			if err != nil {
				n.log.Error().Err(err).Msg("cannot read this node's bans to publish them again")
			}
			for _, b := range own {
				n.Publish(b)
			}
			if len(own) > 0 {
				n.log.Info().Int("bans", len(own)).Msg("publishing this node's bans in force")
			}
		}
		n.mu.Lock()
		k := min(len(n.queue), batchSize)
		batch := append([]outgoing(nil), n.queue[:k]...)
		n.queue = n.queue[k:]
		n.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-n.wake:
			case <-time.After(time.Second):
			}
			continue
		}
		r := n.send(ctx, js, batch)
		var dropped int
		keep := r.failed[:0]
		for _, o := range r.failed {
			if o.tries >= maxTries {
				dropped++
				continue
			}
			keep = append(keep, o)
		}
		n.mu.Lock()
		n.st.Published += int64(r.sent)
		n.st.Expired += int64(r.expired)
		n.st.PublishErrors += int64(dropped)
		n.st.PublishRetries += int64(len(keep))
		if len(keep) > 0 {
			n.queue = append(keep, n.queue...)
			if over := len(n.queue) - n.cfg.Queue; over > 0 {
				n.queue = n.queue[over:]
				n.st.QueueDropped += int64(over)
			}
		}
		n.mu.Unlock()
		if dropped > 0 {
			n.log.Error().Err(r.refused).Int("messages", dropped).Msg("the NATS server refused bans to share; dropped")
		}
		if len(keep) == 0 || r.sent > 0 {
			// Stored, some at least: a busy server, not a stuck one.
			backoff = 0
			continue
		}
		backoff = min(max(2*backoff, time.Second), time.Minute)
		if r.retry != nil {
			n.log.Warn().Err(r.retry).Int("messages", len(keep)).Dur("retry_in", backoff).
				Msg("the NATS server did not store bans to share; retrying")
			n.checkSoon()
		}
		sleep(ctx, backoff)
	}
}

// sent is what came of a batch: what failed (to try again), how many
// expired while waiting, how many were stored, the last error of each
// kind.
type sent struct {
	failed         []outgoing
	expired, sent  int
	retry, refused error
}

// send publishes a batch and waits for the server's acknowledgements.
func (n *Node) send(ctx context.Context, js jetstream.JetStream, batch []outgoing) (r sent) {
	type inflight struct {
		o outgoing
		f jetstream.PubAckFuture
	}
	var fl []inflight
	start := time.Now()
	now := n.now()
	for i, o := range batch {
		ttl := o.expires.Sub(now)
		if ttl < time.Second {
			r.expired++
			continue
		}
		f, err := js.PublishAsync(o.subject, o.encode(now), jetstream.WithMsgID(o.id), jetstream.WithMsgTTL(ttl.Round(time.Second)))
		if err != nil {
			n.fail(err)
			r.retry = err
			r.failed = append(r.failed, batch[i:]...)
			break
		}
		fl = append(fl, inflight{o, f})
	}
	for _, x := range fl {
		select {
		case <-x.f.Ok():
			r.sent++
		case err := <-x.f.Err():
			n.fail(err)
			if n.refusedForGood(err, start) {
				x.o.tries++
				r.refused = err
			} else {
				r.retry = err
			}
			r.failed = append(r.failed, x.o)
		case <-ctx.Done():
			r.failed = append(r.failed, x.o)
		}
	}
	return r
}

// refusedForGood tells a publish the server will never take from one it
// could not store now. The server's permissions drop a publish without a
// reply: it times out, and the connection reports the violation.
func (n *Node) refusedForGood(err error, since time.Time) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case 10023, // insufficient resources: storage full
			10077, // storing failed: a limit of the stream reached (discard new)
			jetstream.JSErrCodeStreamNotFound:
			return false
		}
		return true // a message the stream refuses: too large, ...
	}
	if errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
		n.mu.Lock()
		defer n.mu.Unlock()
		return !n.denied.Before(since)
	}
	return false // no responders (the stream is away), disconnected
}

// sleep waits d or until ctx is done, and reports whether ctx is alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
