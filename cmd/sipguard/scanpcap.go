package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/sipwire"
	"github.com/sipguard/sipguard/sipwire/pcapfile"
)

// scanPcap replays the SIP responses of a capture through the wire
// sensor and the rules, as the daemon's sensor would have seen them: each
// event's source is the capture and its line the packet's number. The
// sensor's clock is the packets' times, so a challenge still unanswered
// when the capture ends is not reported: nobody knows whether it would
// have been answered.
func (m *Main) scanPcap(ctx context.Context, cfg *config.Config, o scanOptions) error {
	start := time.Now()
	opts, err := cfg.EngineOptions(m.HostAddrs)
	if err != nil {
		return err
	}
	eng, err := engine.New(opts)
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	name, in := o.pcap, m.Stdin
	if o.pcap == "-" {
		name = "stdin"
	} else {
		f, err := os.Open(o.pcap)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	rd, err := pcapfile.NewReader(in)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	sensor := sipwire.NewSensor(sipwire.Options{})
	out := bufio.NewWriterSize(m.Stdout, 64<<10)
	p := newScanPrinter(out, o.json)
	var successes int64
	observe := func(evs []parsers.Event, line int64) {
		for i := range evs {
			ev := &evs[i]
			ev.Source, ev.Line = name, line
			if ev.Kind == parsers.AuthSucceeded {
				successes++
			}
			p.observe(eng, ev, o.events)
		}
	}
	// A capture cut short (a file still being written) ends in an error
	// after the packets before it: their output is written all the same.
	var readErr error
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		pkt, num, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("%s: %w", name, err)
			break
		}
		observe(sensor.Expire(pkt.Time), 0)
		observe(sensor.Handle(pkt), num)
	}
	if err := p.flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	m.pcapSummary(name, rd.Stats(), sensor.Stats(), eng.Stats(), successes, time.Since(start))
	return readErr
}

// pcapSummary prints the counts of a capture scan to stderr.
func (m *Main) pcapSummary(name string, rs pcapfile.Stats, ss sipwire.Stats, st engine.Stats, successes int64, elapsed time.Duration) {
	w := m.Stderr
	fmt.Fprintf(w, "scanned capture %s: %d packets (%.1f MiB), %d with SIP responses, %d responses, %d events, %d bans in %.3fs\n",
		name, rs.Packets, float64(rs.Bytes)/(1<<20), rs.Responses, ss.Responses, ss.Events, st.Bans, elapsed.Seconds())
	fmt.Fprintf(w, "packets skipped: %d %s, %d %s, %d %s, %d %s\n", rs.Skipped[pcapfile.SkipNoResponse], pcapfile.SkipNoResponse,
		rs.Skipped[pcapfile.SkipNotIP], pcapfile.SkipNotIP, rs.Skipped[pcapfile.SkipFragment], pcapfile.SkipFragment,
		rs.Skipped[pcapfile.SkipLinkType], pcapfile.SkipLinkType)
	fmt.Fprintf(w, "responses dropped:")
	for i, r := range sipwire.Reasons() {
		sep := ","
		if i == len(sipwire.Reasons())-1 {
			sep = "\n"
		}
		fmt.Fprintf(w, " %d %s%s", ss.Dropped[r], r, sep)
	}
	m.engineSummary(st, successes)
}
