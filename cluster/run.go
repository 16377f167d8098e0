package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ensureStream returns the stream's creation time, creating the stream
// when it is missing (if this node may: a read-only node waits for one).
func (n *Node) ensureStream(ctx context.Context, js jetstream.JetStream) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, n.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:              n.cfg.Stream,
			Description:       "sipguard bans in force, one message per node and target",
			Subjects:          []string{n.cfg.Subject + ".ban.>", n.cfg.Subject + ".unban.>"},
			Storage:           jetstream.FileStorage,
			MaxMsgsPerSubject: 1,
			AllowMsgTTL:       true,
			MaxAge:            n.cfg.MaxAge,
			MaxMsgSize:        MaxMessage,
			Duplicates:        2 * time.Minute,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, n.cfg.Stream) // another node was quicker
		} else if err == nil {
			n.log.Info().Str("stream", n.cfg.Stream).Msg("created the cluster's stream")
		}
	}
	if err != nil {
		return time.Time{}, err
	}
	info := s.CachedInfo()
	if c := info.Config; !c.AllowMsgTTL || c.MaxMsgsPerSubject != 1 {
		// Made by hand, differently: bans would not leave it when they
		// end, or old ones would pile up.
		n.log.Error().Str("stream", c.Name).Bool("allow_msg_ttl", c.AllowMsgTTL).Int64("max_msgs_per_subject", c.MaxMsgsPerSubject).
			Msg("the cluster's stream needs allow_msg_ttl and max_msgs_per_subject = 1 (docs/cluster.md)")
	}
	return info.Created, nil
}

// subscriber reads the stream from its bans in force on, and again from
// scratch whenever the stream was recreated (a broker that lost its
// storage), until ctx is done.
func (n *Node) subscriber(ctx context.Context, js jetstream.JetStream) {
	in := make(chan Update, 1024)
	done := make(chan struct{})
	go func() { defer close(done); n.applier(ctx, in) }()
	defer func() { <-done }()

	var created time.Time
	var stop func()
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		session, ok := n.waitConnected(ctx)
		if !ok {
			return
		}
		c, err := n.ensureStream(ctx, js)
		if err != nil {
			n.fail(err)
			n.log.Error().Err(err).Str("stream", n.cfg.Stream).Msg("cluster stream unavailable; retrying")
			sleep(ctx, 2*time.Second)
			continue
		}
		if !c.Equal(created) {
			if stop != nil {
				stop()
				n.log.Warn().Msg("the cluster's stream was recreated: reading it again, publishing this node's bans again")
			}
			created = c
			if stop, err = n.consume(ctx, js, in); err != nil {
				stop = nil
				created = time.Time{}
				n.fail(err)
				n.log.Error().Err(err).Msg("cannot read the cluster's stream; retrying")
				sleep(ctx, 2*time.Second)
				continue
			}
		}
		// Check again after the next reconnection.
		for n.sessionIs(session) {
			if !sleep(ctx, time.Second) {
				return
			}
		}
	}
}

func (n *Node) caughtUp() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.st.CaughtUp
}

func (n *Node) sessionIs(s int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.session == s
}

// consume starts reading the stream (the last message of every subject,
// then what comes) into in. Once it has read what was there, this node's
// own bans are published again, in case the stream lost them.
func (n *Node) consume(ctx context.Context, js jetstream.JetStream, in chan<- Update) (func(), error) {
	filters := []string{n.cfg.Subject + ".unban.>"}
	if n.cfg.Accept {
		filters = append(filters, n.cfg.Subject+".ban.>")
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(cctx, n.cfg.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
	})
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
		n.receive(ctx, m, in)
		if md, err := m.Metadata(); err == nil && md.NumPending == 0 && !n.caughtUp() {
			n.log.Info().Uint64("sequence", md.Sequence.Stream).Msg("caught up with the cluster's bans")
			caughtUp()
		}
	},
		// Short pulls and heartbeats: after the server restarts, the
		// consumer (held in its memory) is gone, and the client finds out
		// from a missed heartbeat: 2 s rather than the default 15.
		jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, context.Canceled) {
				return // the connection is down: logged already
			}
			n.fail(err)
			n.log.Warn().Err(err).Msg("reading the cluster's stream")
		}))
	if err != nil {
		return nil, err
	}
	return cc.Stop, nil
}

// receive checks a message and hands it to the applier.
func (n *Node) receive(ctx context.Context, m jetstream.Msg, in chan<- Update) {
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
	if u.Ban.Origin == n.cfg.Name || u.Unban.Origin == n.cfg.Name {
		n.ignore("own", 1) // done here already
		return
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
	batch := make([]Update, 0, most)
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

// publisher sends the queue to the stream while connected, a batch at a
// time; what fails goes back to the front of the queue and is tried again,
// up to maxTries while the connection is up (a message the server refuses,
// for want of permission, must not hold up the rest for ever).
func (n *Node) publisher(ctx context.Context, js jetstream.JetStream) {
	const batchSize = 512
	const maxTries = 5
	for {
		if _, ok := n.waitConnected(ctx); !ok {
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
		failed, expired, sent := n.send(ctx, js, batch)
		var dropped int
		keep := failed[:0]
		for _, o := range failed {
			if o.tries >= maxTries {
				dropped++
				continue
			}
			keep = append(keep, o)
		}
		n.mu.Lock()
		n.st.Published += int64(sent)
		n.st.Expired += int64(expired)
		n.st.PublishErrors += int64(dropped)
		if len(keep) > 0 {
			n.queue = append(keep, n.queue...)
			if over := len(n.queue) - n.cfg.Queue; over > 0 {
				n.queue = n.queue[over:]
				n.st.QueueDropped += int64(over)
			}
		}
		n.mu.Unlock()
		if dropped > 0 {
			n.log.Error().Int("messages", dropped).Msg("the NATS server refused bans to share; dropped (permissions?)")
		}
		if len(keep) > 0 {
			sleep(ctx, time.Second)
		}
	}
}

// send publishes a batch and waits for the server's acknowledgements. It
// returns what failed, how many expired while waiting, how many were sent.
func (n *Node) send(ctx context.Context, js jetstream.JetStream, batch []outgoing) (failed []outgoing, expired, sent int) {
	type inflight struct {
		o outgoing
		f jetstream.PubAckFuture
	}
	var fl []inflight
	now := n.now()
	for i, o := range batch {
		ttl := o.expires.Sub(now)
		if ttl < time.Second {
			expired++
			continue
		}
		f, err := js.PublishAsync(o.subject, o.data, jetstream.WithMsgID(o.id), jetstream.WithMsgTTL(ttl.Round(time.Second)))
		if err != nil {
			n.fail(err)
			for _, o := range batch[i:] {
				failed = append(failed, o)
			}
			break
		}
		fl = append(fl, inflight{o, f})
	}
	for _, x := range fl {
		select {
		case <-x.f.Ok():
			sent++
		case err := <-x.f.Err():
			n.fail(err)
			if n.Stats().Connected {
				x.o.tries++ // refused, not cut off
			}
			failed = append(failed, x.o)
		case <-ctx.Done():
			failed = append(failed, x.o)
		}
	}
	return failed, expired, sent
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
