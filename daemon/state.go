package daemon

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/store"
)

// State files in [daemon] state_dir. Bans change rarely and positions
// constantly, so they live apart: a busy log does not rewrite the bans.
// Bans use a line format rather than JSON: 100,000 bans encode in tens of
// milliseconds instead of half a second, and restore as fast.
const (
	bansFile      = "bans.state"
	positionsFile = "positions.json"
	stateVersion  = 1
	bansHeader    = "# sipguard bans v1"
)

type positionsState struct {
	Version int                      `json:"version"`
	Saved   time.Time                `json:"saved"`
	Sources map[string]savedPosition `json:"sources"`
}

// encodeBans writes bans and offences, one per line, tab-separated, text
// fields quoted:
//
//	ban	<target>	<rule>	<since ms>	<expires ms>	<count>	<offences>	"<source>"	"<addr>"	"<reason>"	["<origin>"]
//
// The origin (a fleet node) is written only for other nodes' bans, and
// lifted records exist only in a fleet: the files of a daemon without
// [cluster] still read with older versions.
//
//	offence	<prefix>	<count>	<last ms>	<until ms>
//	lifted	<target>	<at ms>	<until ms>
//
// A lifted record keeps other nodes' bans of target made before at from
// being enforced again until until: they were lifted here, by a cluster
// unban or a plain one.
func encodeBans(bans []*banRecord, offences []engine.Offence, lifted map[netip.Prefix]clusterUnban) []byte {
	b := make([]byte, 0, 64+len(bans)*120+len(offences)*60)
	b = append(b, bansHeader...)
	b = append(b, '\n')
	for _, r := range bans {
		b = append(b, "ban\t"...)
		b = r.Target.AppendTo(b)
		b = append(b, '\t')
		b = strconv.AppendQuote(b, r.Rule)
		for _, n := range []int64{r.Since.UnixMilli(), r.Expires.UnixMilli(), int64(r.Count), int64(r.Offences)} {
			b = append(b, '\t')
			b = strconv.AppendInt(b, n, 10)
		}
		for _, s := range []string{r.Source, r.Addr, r.Reason} {
			b = append(b, '\t')
			b = strconv.AppendQuote(b, s)
		}
		if r.Origin != "" {
			b = append(b, '\t')
			b = strconv.AppendQuote(b, r.Origin)
		}
		b = append(b, '\n')
	}
	for p, u := range lifted {
		b = append(b, "lifted\t"...)
		b = p.AppendTo(b)
		// at rounded up: a ban of the same millisecond stays lifted.
		for _, n := range []int64{(u.at.UnixNano() + 999_999) / 1e6, u.until.UnixMilli()} {
			b = append(b, '\t')
			b = strconv.AppendInt(b, n, 10)
		}
		b = append(b, '\n')
	}
	for _, o := range offences {
		b = append(b, "offence\t"...)
		b = o.Prefix.AppendTo(b)
		for _, n := range []int64{int64(o.Count), o.Last.UnixMilli(), o.Until.UnixMilli()} {
			b = append(b, '\t')
			b = strconv.AppendInt(b, n, 10)
		}
		b = append(b, '\n')
	}
	return b
}

// decodeBans reads what encodeBans wrote.
func decodeBans(data []byte) ([]*banRecord, []engine.Offence, map[netip.Prefix]clusterUnban, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() || sc.Text() != bansHeader {
		return nil, nil, nil, fmt.Errorf("not a sipguard bans file (want %q first)", bansHeader)
	}
	var bans []*banRecord
	var offences []engine.Offence
	lifted := map[netip.Prefix]clusterUnban{}
	for n := 2; sc.Scan(); n++ {
		f := strings.Split(sc.Text(), "\t")
		var err error
		switch {
		case f[0] == "ban" && (len(f) == 10 || len(f) == 11):
			r := &banRecord{}
			var nums [4]int64
			r.Target, err = netip.ParsePrefix(f[1])
			if err == nil {
				r.Rule, err = strconv.Unquote(f[2])
			}
			for i := range nums {
				if err == nil {
					nums[i], err = strconv.ParseInt(f[3+i], 10, 64)
				}
			}
			fields := []*string{&r.Source, &r.Addr, &r.Reason}
			if len(f) == 11 {
				fields = append(fields, &r.Origin)
			}
			for i, dst := range fields {
				if err == nil {
					*dst, err = strconv.Unquote(f[7+i])
				}
			}
			r.Since, r.Expires = time.UnixMilli(nums[0]), time.UnixMilli(nums[1])
			r.Count, r.Offences = int(nums[2]), int(nums[3])
			bans = append(bans, r)
		case f[0] == "offence" && len(f) == 5:
			var o engine.Offence
			var nums [3]int64
			o.Prefix, err = netip.ParsePrefix(f[1])
			for i := range nums {
				if err == nil {
					nums[i], err = strconv.ParseInt(f[2+i], 10, 64)
				}
			}
			o.Count, o.Last, o.Until = int(nums[0]), time.UnixMilli(nums[1]), time.UnixMilli(nums[2])
			offences = append(offences, o)
		case f[0] == "lifted" && len(f) == 4:
			var p netip.Prefix
			var nums [2]int64
			p, err = netip.ParsePrefix(f[1])
			for i := range nums {
				if err == nil {
					nums[i], err = strconv.ParseInt(f[2+i], 10, 64)
				}
			}
			lifted[p] = clusterUnban{at: time.UnixMilli(nums[0]), until: time.UnixMilli(nums[1])}
		default:
			err = fmt.Errorf("unknown record %q", f[0])
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
	}
	return bans, offences, lifted, sc.Err()
}

// restore loads the saved state: the bans still in force go back into the
// firewall (which may have lost them: rebooted, flushed, never loaded),
// the offence history into the engine, the positions to the followers.
func (d *Daemon) restore(ctx context.Context) error {
	start := time.Now()
	bansPath := filepath.Join(d.cfg.StateDir, bansFile)
	bans, offences, lifted, err := readBans(bansPath)
	if err != nil {
		// Writes are atomic, so this is outside damage: keep the file for
		// inspection and start afresh rather than not protecting at all.
		aside := fmt.Sprintf("%s.corrupt-%d", bansPath, d.now().Unix())
		os.Rename(bansPath, aside)
		d.log.Error().Err(err).Str("kept_as", aside).Msg("saved bans unreadable; starting without them")
		bans, offences, lifted = nil, nil, nil
	}
	now := d.now()
	for p, u := range lifted {
		if u.until.After(now) {
			d.clusterUnbans[p] = u
		}
	}
	var entries []firewall.Entry
	for _, r := range bans {
		if !r.Target.IsValid() || !r.Expires.After(now) {
			continue
		}
		d.bans[r.Target] = r
		entries = append(entries, firewall.Entry{Prefix: r.Target, Expires: r.Expires})
	}
	// Bans are saved a moment after they are enforced: after a crash the
	// kernel may hold bans the state does not. Keep them.
	if k, ok := d.fw.(kernelReader); ok {
		held, err := k.Kernel(ctx)
		if err != nil {
			d.log.Warn().Err(err).Msg("could not read the bans in the kernel; restoring the saved ones only")
		}
		adopted := 0
		for _, e := range held {
			if _, known := d.bans[e.Prefix]; known || !e.Expires.After(now) {
				continue
			}
			d.bans[e.Prefix] = &banRecord{Target: e.Prefix, Rule: adoptedRule, Since: now, Expires: e.Expires,
				Reason: "in the kernel at start but not in the saved state (the daemon stopped before saving it)"}
			entries = append(entries, e)
			adopted++
		}
		if adopted > 0 {
			d.bansDirty = true
			d.log.Warn().Int("bans", adopted).Msg("kept bans found in the kernel but missing from the saved state")
		}
	}
	read := time.Since(start)
	if l, ok := d.fw.(loader); ok {
		// In force now; read back while the daemon already runs.
		if err := l.Load(ctx, entries); err != nil {
			return fmt.Errorf("restore %d bans into the firewall: %w", len(entries), err)
		}
		d.verify = l.Verify
	} else if err := d.fw.Sync(ctx, entries); err != nil {
		return fmt.Errorf("restore %d bans into the firewall: %w", len(entries), err)
	}
	d.log.Info().Int("bans", len(entries)).Dur("took", time.Since(start)).Dur("read", read).Msg("bans restored")
	d.eng.Restore(offences)

	var ps positionsState
	if _, err := store.Load(filepath.Join(d.cfg.StateDir, positionsFile), &ps); err != nil {
		d.log.Error().Err(err).Msg("saved log positions unreadable; following the logs as at first start")
	}
	for name, p := range ps.Sources {
		d.positions[name] = p
	}
	return nil
}

// adoptedRule names the bans found in the kernel at start that the saved
// state did not know.
const adoptedRule = "adopted"

// kernelReader is a backend that can read what the kernel enforces.
type kernelReader interface {
	Kernel(ctx context.Context) ([]firewall.Entry, error)
}

// loader is a backend whose Sync comes in two steps: Load puts the bans in
// force, Verify reads the kernel back without holding up new bans.
type loader interface {
	Load(ctx context.Context, entries []firewall.Entry) error
	Verify(ctx context.Context) error
}

func readBans(path string) ([]*banRecord, []engine.Offence, map[netip.Prefix]clusterUnban, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	bans, offences, lifted, err := decodeBans(data)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return bans, offences, lifted, nil
}

// saveJob is a snapshot of the state to write. Ban records are never
// changed once made (a new ban replaces the record), so the saver can
// encode them while the core goes on.
type saveJob struct {
	gen       uint64
	bans      []*banRecord // nil: unchanged
	offences  []engine.Offence
	lifted    map[netip.Prefix]clusterUnban
	positions map[string]savedPosition // nil: unchanged
	at        time.Time
}

type saveResult struct {
	job saveJob
	err error
}

// saver writes snapshots, one at a time, off the core goroutine.
func (d *Daemon) saver(jobs <-chan saveJob, results chan<- saveResult) {
	for job := range jobs {
		var err error
		if job.bans != nil {
			err = store.WriteFile(filepath.Join(d.cfg.StateDir, bansFile), encodeBans(job.bans, job.offences, job.lifted))
		}
		if job.positions != nil && err == nil {
			err = store.Save(filepath.Join(d.cfg.StateDir, positionsFile),
				positionsState{Version: stateVersion, Saved: job.at, Sources: job.positions})
		}
		results <- saveResult{job, err}
	}
}

// save hands what changed to the saver, at most once a second unless now
// is set, and never while a save is under way.
func (d *Daemon) save(now bool) {
	t := d.now()
	if d.saving || !now && t.Sub(d.lastTry) < time.Second || !d.bansDirty && !d.posDirty {
		return
	}
	d.lastTry = t
	job := saveJob{gen: d.gen, at: t}
	if d.bansDirty {
		job.bans = make([]*banRecord, 0, len(d.bans))
		for _, r := range d.bans {
			job.bans = append(job.bans, r)
		}
		job.offences = d.eng.Offences()
		job.lifted = maps.Clone(d.clusterUnbans)
	}
	if d.posDirty {
		job.positions = make(map[string]savedPosition, len(d.positions))
		for k, v := range d.positions {
			job.positions[k] = v
		}
	}
	d.bansDirty, d.posDirty, d.saving = false, false, true
	d.saveJobs <- job
}

// saved takes a save's result. A failure (disk full, read-only) is logged
// when it starts and ends; the daemon keeps enforcing and retries.
func (d *Daemon) saved(r saveResult) {
	d.saving = false
	if r.err != nil {
		d.bansDirty = d.bansDirty || r.job.bans != nil
		d.posDirty = d.posDirty || r.job.positions != nil
		if d.saveErr != r.err.Error() {
			d.saveErr = r.err.Error()
			d.log.Error().Err(r.err).Msg("state not saved; bans stay enforced, retrying every second")
		}
		return
	}
	if d.saveErr != "" {
		d.saveErr = ""
		d.log.Info().Msg("state saved again")
	}
	d.lastSaved = r.job.at
	waiting := d.saveWaiters[:0]
	for _, w := range d.saveWaiters {
		if w.gen <= r.job.gen {
			close(w.ch)
		} else {
			waiting = append(waiting, w)
		}
	}
	d.saveWaiters = waiting
	if len(waiting) > 0 {
		d.save(true) // the change they wait for came after this snapshot
	}
}

// saveWaiter is closed once a snapshot of generation gen or later is
// written.
type saveWaiter struct {
	gen uint64
	ch  chan struct{}
}

// durable returns a channel closed once the state as it is now has been
// written. Called on the core goroutine.
func (d *Daemon) durable() <-chan struct{} {
	d.gen++
	ch := make(chan struct{})
	d.saveWaiters = append(d.saveWaiters, saveWaiter{d.gen, ch})
	d.save(true)
	return ch
}

// finalSave writes the state at stop, waiting for the saver.
func (d *Daemon) finalSave(results <-chan saveResult) {
	for attempt := 0; attempt < 3; attempt++ {
		if d.saving {
			d.saved(<-results)
		}
		if !d.bansDirty && !d.posDirty {
			return
		}
		d.save(true)
	}
	if d.saving {
		d.saved(<-results)
	}
}
