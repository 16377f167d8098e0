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
// sensor and the rules, as the daemon's sensor would have seen them
// (replayPcap).
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
	out := bufio.NewWriterSize(m.Stdout, 64<<10)
	p := newScanPrinter(out, o.json)
	var successes int64
	run, readErr := m.replayPcap(ctx, o.pcap, func(ev *parsers.Event) {
		if ev.Kind == parsers.AuthSucceeded {
			successes++
		}
		p.observe(eng, ev, o.events)
	})
	if run.name == "" { // the capture could not be opened
		return readErr
	}
	if err := p.flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	m.pcapSummary(run.name, run.reader, run.sensor, eng.Stats(), successes, time.Since(start))
	return readErr
}

// pcapRun is what a replay of a capture read: its name and counters.
type pcapRun struct {
	name   string
	reader pcapfile.Stats
	sensor sipwire.Stats
}

// replayPcap reads the capture at path ("-": standard input) through the
// wire sensor and hands each event to each, in packet order: its source
// is the capture, its line the packet's number. The sensor's clock is the
// packets' times, so a challenge still unanswered when the capture ends
// is not reported: nobody knows whether it would have been answered. A
// capture cut short (a file still being written) ends in an error after
// the events of the packets before it; run.name is empty when the capture
// could not be opened at all.
func (m *Main) replayPcap(ctx context.Context, path string, each func(*parsers.Event)) (run pcapRun, err error) {
	name, in := path, m.Stdin
	if path == "-" {
		name = "stdin"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return run, err
		}
		defer f.Close()
		in = f
	}
	rd, err := pcapfile.NewReader(in)
	if err != nil {
		return run, fmt.Errorf("%s: %w", name, err)
	}
	sensor := sipwire.NewSensor(sipwire.Options{})
	observe := func(evs []parsers.Event, line int64) {
		for i := range evs {
			evs[i].Source, evs[i].Line = name, line
			each(&evs[i])
		}
	}
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			err = ctx.Err()
			break
		}
		pkt, num, rerr := rd.Next()
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			err = fmt.Errorf("%s: %w", name, rerr)
			break
		}
		observe(sensor.Expire(pkt.Time), 0)
		observe(sensor.Handle(pkt), num)
	}
	return pcapRun{name: name, reader: rd.Stats(), sensor: sensor.Stats()}, err
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
