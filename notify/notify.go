package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Event types.
const (
	TypeBan        = "ban"
	TypeUnban      = "unban"
	TypeCompromise = "compromise"
	TypeFraud      = "fraud" // a toll-fraud rule fired: User is the account, Reason the call
	// TypeDropSurge: a surge of a log source's lines dropped as malformed
	// or injected (someone writing into the log on purpose); Target is
	// empty, Source, Count and Reason say which and how many.
	TypeDropSurge = "drop_surge"
	// TypeAudit: a finding of the scheduled `sipguard audit` that its
	// last run did not have; Rule is the check's ID, Reason what was
	// found and where. Target is empty.
	TypeAudit = "audit"
)

// Types lists the Event types a target's Events may name.
var Types = []string{TypeBan, TypeUnban, TypeCompromise, TypeFraud, TypeDropSurge, TypeAudit}

// Target kinds, as in TargetStats.Kind.
const (
	KindWebhook = "webhook"
	KindCommand = "command"
)

// Defaults for zero Webhook and Command fields.
const (
	DefaultQueue          = 1000
	DefaultWebhookTimeout = 5 * time.Second
	DefaultCommandTimeout = 10 * time.Second
)

// Retry waits: the first retry waits backoffBase, each further one twice as
// long, never more than backoffMax.
const (
	backoffBase = time.Second
	backoffMax  = 30 * time.Second
)

// warnEvery is how often, at most, drops are logged per target.
const warnEvery = time.Minute

// Log field names.
const (
	logHook    = "hook"
	logKind    = "kind"
	logEvent   = "event"
	logIP      = "ip"
	logDropped = "dropped"
)

var (
	// ErrUnknownEvent is returned by New for an Events entry that is not
	// one of Types.
	ErrUnknownEvent = errors.New("unknown event type")
	// ErrUnknownPlaceholder is returned by New for a "{name}" in a
	// command's Argv that is not one of Placeholders.
	ErrUnknownPlaceholder = errors.New("unknown placeholder")
)

// Event is what is sent: the JSON body of a webhook, and the standard input
// of a command.
type Event struct {
	Type     string    `json:"type"`           // TypeBan, TypeUnban, TypeCompromise, TypeFraud, TypeDropSurge, TypeAudit
	Target   string    `json:"target"`         // address or CIDR: "198.51.100.7", "2001:db8::/64"; empty for fraud and drop_surge
	Addr     string    `json:"addr,omitempty"` // the address whose events triggered it
	Rule     string    `json:"rule,omitempty"` // rule name, or "manual"
	Reason   string    `json:"reason,omitempty"`
	Source   string    `json:"source,omitempty"` // log source name
	User     string    `json:"user,omitempty"`   // compromise: the account that logged in; fraud: the account that called
	Count    int       `json:"count,omitempty"`
	Offences int       `json:"offences,omitempty"`
	Time     time.Time `json:"time"` // Notify sets it to now when zero
	Expires  time.Time `json:"expires,omitzero"`
	Host     string    `json:"host,omitempty"` // this node's host name; Notify fills it when empty
	// Country is the ISO 3166-1 code of Addr (or of the target) when the
	// daemon has a [geoip] database and it knows the address.
	Country string `json:"country,omitempty"`
}

// Webhook is an HTTP endpoint that receives Events as JSON POSTs.
type Webhook struct {
	Name    string
	URL     string            // http:// or https://
	Events  []string          // the Types sent; empty: all
	Headers map[string]string // added to each request, e.g. Authorization
	Timeout time.Duration     // per attempt (0: DefaultWebhookTimeout)
	Retries int               // attempts after the first, for 408, 429, 5xx and network errors
	Queue   int               // Events waiting at most (0: DefaultQueue)
}

// Command is a program run once per Event, without a shell.
type Command struct {
	Name string
	// Argv is the program (an absolute path, without placeholders) and its
	// arguments, which may hold Placeholders.
	Argv    []string
	Events  []string      // the Types sent; empty: all
	Timeout time.Duration // killed after it (0: DefaultCommandTimeout)
	Queue   int           // Events waiting at most (0: DefaultQueue)
}

// TargetStats are the counters of one webhook or command. Every Event the
// target accepted is in exactly one of Sent, Failed, Dropped, Queued and
// InFlight.
type TargetStats struct {
	Name string
	Kind string // KindWebhook or KindCommand
	Sent int64  // delivered: a 2xx answer, or a command that exited 0
	// Failed counts Events given up on: after the last attempt, on a status
	// that is not retried, or a command that failed or timed out.
	Failed int64
	// Dropped counts Events never delivered because the queue was full,
	// or because Run stopped while they were queued or in flight.
	Dropped       int64
	Queued        int // waiting now
	InFlight      int // being delivered now: 0 or 1
	LastError     string
	LastErrorTime time.Time
}

// Dispatcher sends Events to webhooks and commands in the background. Make
// one with New, call Run, then Notify from anywhere.
type Dispatcher struct {
	targets []*target
	host    string
	log     zerolog.Logger
	started atomic.Bool

	// Tunables, changed by tests only.
	backoffBase, backoffMax time.Duration
	warnEvery               time.Duration
}

// deliverer sends one Event. ctx is done when Run stops.
type deliverer interface {
	deliver(ctx context.Context, ev Event) error
}

// target is one webhook or command: its filter, queue, counters and worker.
type target struct {
	name, kind string
	events     []string // nil: all
	max        int      // queue bound
	out        deliverer
	log        zerolog.Logger
	ready      chan struct{} // signalled when the queue may have become non-empty

	mu       sync.Mutex
	queue    ring
	busy     bool // an Event is being delivered
	stopped  bool // Run returned: no worker will take Events any more
	sent     int64
	failed   int64
	dropped  int64
	lastErr  string
	lastErrT time.Time
	warnedAt time.Time // last drop warning
	warnedN  int64     // dropped at the last warning
}

// New validates hooks and cmds and returns a Dispatcher for them. Every
// problem is reported, each naming its target. Nothing runs until Run.
func New(hooks []Webhook, cmds []Command, log zerolog.Logger) (*Dispatcher, error) {
	d := &Dispatcher{
		log:         log,
		backoffBase: backoffBase,
		backoffMax:  backoffMax,
		warnEvery:   warnEvery,
	}
	var errs []error
	names := map[string]bool{}
	// valid reports whether a target is valid, adding its problems to
	// errs, each naming the target.
	valid := func(kind string, i int, name string, problems func() []error) bool {
		switch {
		case name == "":
			errs = append(errs, fmt.Errorf("%s[%d]: name: empty", kind, i))
			return false
		case names[name]:
			errs = append(errs, fmt.Errorf("%s %q: name: used twice", kind, name))
			return false
		}
		names[name] = true
		bad := problems()
		for _, err := range bad {
			errs = append(errs, fmt.Errorf("%s %q: %w", kind, name, err))
		}
		return len(bad) == 0
	}
	for i, h := range hooks {
		if valid(KindWebhook, i, h.Name, h.problems) {
			d.add(h.Name, KindWebhook, h.Events, h.Queue, newWebhook(h, d))
		}
	}
	for i, c := range cmds {
		if valid(KindCommand, i, c.Name, c.problems) {
			d.add(c.Name, KindCommand, c.Events, c.Queue, newCommand(c))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// A host name that cannot be read is no reason not to notify.
	d.host, _ = os.Hostname()
	return d, nil
}

// FieldError is a problem with one field of a Webhook or Command. Field
// is the field's name in lower case: "name", "url", "events", "headers",
// "timeout", "retries", "queue" or "argv"; Index is the element of Argv at
// fault, or -1.
type FieldError struct {
	Field string
	Index int
	Err   error
}

func (e *FieldError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("%s[%d]: %v", e.Field, e.Index, e.Err)
	}
	return e.Field + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// fieldError returns a *FieldError of a field that is not Argv.
func fieldError(field string, err error) error { return &FieldError{Field: field, Index: -1, Err: err} }

// Validate reports every problem of h, each a *FieldError, joined. New
// also checks that each target's name is unique.
func (h Webhook) Validate() error { return errors.Join(h.problems()...) }

// Validate reports every problem of c, each a *FieldError, joined. New
// also checks that each target's name is unique.
func (c Command) Validate() error { return errors.Join(c.problems()...) }

// checkCommon validates the fields webhooks and commands share.
func checkCommon(name string, events []string, timeout time.Duration, queue int) []error {
	var errs []error
	if name == "" {
		errs = append(errs, fieldError("name", errors.New("empty")))
	}
	for _, e := range events {
		if !slices.Contains(Types, e) {
			errs = append(errs, fieldError("events", fmt.Errorf("%w %q (known: %q)", ErrUnknownEvent, e, Types)))
		}
	}
	if timeout < 0 {
		errs = append(errs, fieldError("timeout", fmt.Errorf("must be >= 0 (got %v)", timeout)))
	}
	if queue < 0 {
		errs = append(errs, fieldError("queue", fmt.Errorf("must be >= 0 (got %d)", queue)))
	}
	return errs
}

func (d *Dispatcher) add(name, kind string, events []string, queue int, out deliverer) {
	if queue == 0 {
		queue = DefaultQueue
	}
	if len(events) == 0 {
		events = nil
	}
	d.targets = append(d.targets, &target{
		name:   name,
		kind:   kind,
		events: slices.Clone(events),
		max:    queue,
		out:    out,
		log:    d.log.With().Str(logHook, name).Str(logKind, kind).Logger(),
		ready:  make(chan struct{}, 1),
	})
}

// Run delivers queued Events, one worker goroutine per target, until ctx is
// done. It then cancels what is in flight, waits for the workers, and
// counts what is left as Dropped. Run must be called once.
func (d *Dispatcher) Run(ctx context.Context) {
	if !d.started.CompareAndSwap(false, true) {
		panic("notify: Dispatcher.Run called twice")
	}
	var wg sync.WaitGroup
	for _, t := range d.targets {
		wg.Go(func() { t.work(ctx) })
	}
	<-ctx.Done()
	wg.Wait()
	for _, t := range d.targets {
		if n := t.stop(); n > 0 {
			t.log.Warn().Int(logDropped, n).Msg("notifications dropped at shutdown")
		}
	}
}

// Notify queues ev for every target whose Events accept ev.Type. It never
// waits for a delivery: an Event a full queue has no room for is dropped
// and counted (and logged, at most once a minute per target). Notify fills
// ev.Host and ev.Time when empty. It may be called before Run, whose
// workers then deliver what was queued, and from any goroutine. A nil
// Dispatcher notifies no one.
func (d *Dispatcher) Notify(ev Event) {
	if d == nil {
		return
	}
	if ev.Host == "" {
		ev.Host = d.host
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	for _, t := range d.targets {
		if t.events == nil || slices.Contains(t.events, ev.Type) {
			t.push(ev, d.warnEvery)
		}
	}
}

// Stats returns the counters of every target, webhooks first, each in the
// order given to New. It may be called from any goroutine.
func (d *Dispatcher) Stats() []TargetStats {
	if d == nil {
		return nil
	}
	out := make([]TargetStats, 0, len(d.targets))
	for _, t := range d.targets {
		out = append(out, t.stats())
	}
	return out
}

// push queues ev, or drops it when the queue is full or Run has stopped.
func (t *target) push(ev Event, every time.Duration) {
	t.mu.Lock()
	if t.stopped || t.queue.n >= t.max {
		t.dropped++
		// Warn on the first drop, then at most once per every: a dead
		// endpoint under an attack would otherwise log once per ban.
		// Not after Run: shutdown already logged its drops.
		var warn bool
		var total, since int64
		if now := time.Now(); !t.stopped && (t.warnedAt.IsZero() || now.Sub(t.warnedAt) >= every) {
			warn, total, since = true, t.dropped, t.dropped-t.warnedN
			t.warnedAt, t.warnedN = now, t.dropped
		}
		t.mu.Unlock()
		if warn {
			t.log.Warn().Int64(logDropped, since).Int64("dropped_total", total).Int("queue", t.max).
				Msg("notification queue full; dropping")
		}
		return
	}
	t.queue.push(ev, t.max)
	t.mu.Unlock()
	select {
	case t.ready <- struct{}{}:
	default: // already signalled
	}
}

// work is a target's worker: it delivers Events one at a time, in order,
// until ctx is done.
func (t *target) work(ctx context.Context) {
	if c, ok := t.out.(interface{ close() }); ok {
		defer c.close()
	}
	for {
		ev, ok := t.next(ctx)
		if !ok {
			return
		}
		err := t.out.deliver(ctx, ev)
		t.done(ctx, ev, err)
	}
}

// next takes the oldest queued Event and marks the target busy, waiting
// for one; false when ctx is done.
func (t *target) next(ctx context.Context) (Event, bool) {
	for {
		if ctx.Err() != nil {
			return Event{}, false
		}
		t.mu.Lock()
		if t.queue.n > 0 {
			ev := t.queue.pop()
			t.busy = true
			t.mu.Unlock()
			return ev, true
		}
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return Event{}, false
		case <-t.ready:
		}
	}
}

// done counts a delivery's outcome.
func (t *target) done(ctx context.Context, ev Event, err error) {
	t.mu.Lock()
	t.busy = false
	switch {
	case err == nil:
		t.sent++
	case ctx.Err() != nil:
		// Cut short by shutdown: the target did not fail.
		t.dropped++
	default:
		t.failed++
		t.lastErr, t.lastErrT = err.Error(), time.Now()
	}
	t.mu.Unlock()
	switch {
	case err == nil:
		t.log.Debug().Str(logEvent, ev.Type).Str(logIP, ev.Target).Msg("notified")
	case ctx.Err() == nil:
		t.log.Warn().Str(logEvent, ev.Type).Str(logIP, ev.Target).Err(err).Msg("notification failed")
	}
}

// stop drops what is still queued and makes push drop from now on. It
// returns the number dropped.
func (t *target) stop() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	n := t.queue.n
	t.queue = ring{}
	t.dropped += int64(n)
	return n
}

func (t *target) stats() TargetStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := TargetStats{
		Name:          t.name,
		Kind:          t.kind,
		Sent:          t.sent,
		Failed:        t.failed,
		Dropped:       t.dropped,
		Queued:        t.queue.n,
		LastError:     t.lastErr,
		LastErrorTime: t.lastErrT,
	}
	if t.busy {
		s.InFlight = 1
	}
	return s
}

// ring is a FIFO of Events. It grows as needed up to the bound its caller
// enforces, and lets its storage go when it empties, so that an idle
// target holds no memory for its burst.
type ring struct {
	buf     []Event
	head, n int
}

func (r *ring) push(ev Event, limit int) {
	if r.n == len(r.buf) {
		buf := make([]Event, min(max(2*len(r.buf), 16), limit))
		for i := range r.n {
			buf[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = buf, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = ev
	r.n++
}

func (r *ring) pop() Event {
	ev := r.buf[r.head]
	r.buf[r.head] = Event{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	if r.n == 0 && len(r.buf) > 16 {
		*r = ring{}
	}
	return ev
}

// backoff is the wait before retry number n (0 for the first retry).
func (d *Dispatcher) backoff(n int) time.Duration {
	w := d.backoffBase
	for range n {
		if w >= d.backoffMax {
			break
		}
		w *= 2
	}
	return min(w, d.backoffMax)
}
