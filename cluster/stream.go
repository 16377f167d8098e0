package cluster

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The stream's limits, as the documented setup creates it
// (contrib/nats/stream.json). A node accepts other values of the limits
// (the operator sizes the stream), but not their absence: an unbounded
// stream is one a compromised node can fill.
const (
	// StreamMaxMsgs: one message per node and target in force.
	StreamMaxMsgs = 1_000_000
	// StreamMaxBytes fits the server's max_file_store of
	// contrib/nats/nats-server.conf (1 GiB).
	StreamMaxBytes = 512 << 20
	// StreamMaxConsumers: each node reads through one ordered consumer,
	// two for a moment when it reconnects.
	StreamMaxConsumers = 10_000
	// StreamDuplicates is how long the stream remembers message IDs, so
	// that a retried publish is stored once.
	StreamDuplicates = 2 * time.Minute
	// StreamConsumerInactive: a consumer nobody reads from goes after it,
	// durable or not, so that consumers made and left do not pile up.
	StreamConsumerInactive = 2 * time.Minute
)

// Bounds of what a node accepts of the limits the operator chose.
const (
	maxDuplicates       = time.Hour
	maxConsumerInactive = 10 * time.Minute
)

// StreamConfig is the stream a node of cfg expects, with the documented
// limits: what `create_stream` makes and contrib/nats/stream.json holds.
func StreamConfig(cfg Config) jetstream.StreamConfig {
	cfg = cfg.withDefaults()
	return jetstream.StreamConfig{
		Name:              cfg.Stream,
		Description:       "sipguard bans in force, one message per node and target",
		Subjects:          []string{cfg.Subject + ".ban.>", cfg.Subject + ".unban.>"},
		Retention:         jetstream.LimitsPolicy,
		MaxConsumers:      StreamMaxConsumers,
		MaxMsgs:           StreamMaxMsgs,
		MaxBytes:          StreamMaxBytes,
		Discard:           jetstream.DiscardOld,
		MaxAge:            cfg.MaxAge,
		MaxMsgsPerSubject: 1,
		MaxMsgSize:        MaxMessage,
		Storage:           jetstream.FileStorage,
		Replicas:          1,
		Duplicates:        StreamDuplicates,
		AllowMsgTTL:       true,
		ConsumerLimits:    jetstream.StreamConsumerLimits{InactiveThreshold: StreamConsumerInactive},
	}
}

// errStreamDiffers: the stream is not the one sipguard expects; the node
// neither reads nor publishes until an operator fixes it.
var errStreamDiffers = errors.New("the cluster's stream differs from what sipguard expects")

// checkStream compares the stream's configuration, got, with want, and
// returns what differs ("allow_rollup_hdrs: true, want false"), nothing
// when the stream may be used. Every setting is compared, so that one
// added to NATS later and set on the stream is refused too, except those
// the operator chooses freely (storage, replicas, placement, description,
// compression, metadata, deny_delete/purge, direct gets, persistence)
// and the limits, which must be set and within bounds but may differ.
// What the compared settings would allow a node to do: a subject
// transform maps one node's subjects onto another's (forgery), rollups
// purge the stream with one header, republish and sources copy other
// messages in, other retentions delete bans when read, no acks lose them,
// delete markers and counters put messages of other shapes in it.
func checkStream(got, want jetstream.StreamConfig) []string {
	norm := want
	norm.Description, norm.Storage, norm.Replicas, norm.Placement = got.Description, got.Storage, got.Replicas, got.Placement
	norm.Compression, norm.Metadata, norm.FirstSeq, norm.Template = got.Compression, got.Metadata, got.FirstSeq, got.Template
	norm.DenyDelete, norm.DenyPurge, norm.AllowDirect, norm.MirrorDirect = got.DenyDelete, got.DenyPurge, got.AllowDirect, got.MirrorDirect
	norm.PersistMode = got.PersistMode
	// Limits: set, and within bounds.
	if got.MaxMsgs > 0 {
		norm.MaxMsgs = got.MaxMsgs
	}
	if got.MaxBytes > 0 {
		norm.MaxBytes = got.MaxBytes
	}
	if got.MaxAge > 0 {
		norm.MaxAge = got.MaxAge
	}
	if got.MaxConsumers > 0 {
		norm.MaxConsumers = got.MaxConsumers
	}
	if got.MaxMsgSize > 0 && got.MaxMsgSize <= MaxMessage {
		norm.MaxMsgSize = got.MaxMsgSize
	}
	if got.Duplicates > 0 && got.Duplicates <= maxDuplicates {
		norm.Duplicates = got.Duplicates
	}
	if t := got.ConsumerLimits.InactiveThreshold; t > 0 && t <= maxConsumerInactive {
		norm.ConsumerLimits.InactiveThreshold = t
	}
	norm.ConsumerLimits.MaxAckPending = got.ConsumerLimits.MaxAckPending
	// Discard old (a full stream forgets its oldest bans) or new (it
	// refuses new ones, which nodes retry): the operator's choice.
	norm.Discard = got.Discard
	// Subjects in any order.
	gotSubjects := slices.Sorted(slices.Values(got.Subjects))
	slices.Sort(norm.Subjects)
	got.Subjects = gotSubjects
	if len(got.Sources) == 0 {
		got.Sources = nil
	}

	var diffs []string
	g, w := reflect.ValueOf(got), reflect.ValueOf(norm)
	for i := range g.NumField() {
		if reflect.DeepEqual(g.Field(i).Interface(), w.Field(i).Interface()) {
			continue
		}
		name, _, _ := strings.Cut(g.Type().Field(i).Tag.Get("json"), ",")
		diffs = append(diffs, fmt.Sprintf("%s: %s, want %s", name, show(g.Field(i)), show(w.Field(i))))
	}
	return diffs
}

// show writes a setting for a log line.
func show(v reflect.Value) string {
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() == reflect.Pointer {
		return "none"
	}
	if d, ok := v.Interface().(time.Duration); ok {
		return d.String()
	}
	return clip(fmt.Sprintf("%+v", v.Interface()), 200)
}
