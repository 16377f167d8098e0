package cluster

import "time"

// Stats is a node's view of its cluster: connection and counters.
type Stats struct {
	Node      string
	Servers   []string
	Stream    string
	Share     bool
	Accept    bool
	Connected bool
	Server    string    // connected to
	Since     time.Time // connected or disconnected since
	CaughtUp  bool      // has read the bans in force
	// StreamError: why the stream is not used (missing, not as expected,
	// unavailable); empty while it is.
	StreamError string
	// ClockSkew is this node's clock minus the server's, as last measured
	// (at ClockChecked); PeerSkews the other nodes' beyond 30 s.
	ClockSkew    time.Duration
	ClockChecked time.Time
	PeerSkews    map[string]time.Duration
	Resyncs      int64 // times this node's bans were published again
	// Outgoing: this node's bans and cluster unbans.
	Published     int64
	Queued        int   // waiting for the broker
	QueueDropped  int64 // the queue was full
	Expired       int64 // over before the broker came back
	PublishErrors int64 // refused by the server for good, dropped
	// PublishRetries: messages the server could not store at once (its
	// storage full, the stream away), tried again later.
	PublishRetries int64
	// Incoming: other nodes' messages.
	Received    int64
	Applied     int64
	Ignored     map[string]int64 // own, allowlisted, known, unbanned, ...
	Malformed   int64
	Oversize    int64
	LastError   string
	LastErrorAt time.Time
}
