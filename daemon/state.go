package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/store"
)

// State files in [daemon] state_dir. Bans change rarely and positions
// constantly, so they live apart: a busy log does not rewrite the bans.
// The bans file's format is package bans's (bans.Encode).
const (
	bansFile      = "bans.state"
	positionsFile = "positions.json"
	stateVersion  = 1
)

type positionsState struct {
	Version int                      `json:"version"`
	Saved   time.Time                `json:"saved"`
	Sources map[string]savedPosition `json:"sources"`
}

// restore loads the saved state: the bans still in force go back into the
// firewall (which may have lost them: rebooted, flushed, never loaded),
// the offence history into the engine, the positions to the followers.
func (d *Daemon) restore(ctx context.Context) error {
	start := time.Now()
	bansPath := filepath.Join(d.cfg.StateDir, bansFile)
	saved, skipped, err := readBans(bansPath)
	empty := len(saved.Bans) == 0 && len(saved.Lifts) == 0 && len(saved.Offences) == 0
	if err == nil && skipped.Lines > 0 && empty {
		err = fmt.Errorf("%s: %w", bansPath, skipped.First)
	}
	switch {
	case err != nil:
		// Writes are atomic, so this is outside damage: keep the file for
		// inspection and start afresh rather than not protecting at all.
		aside := fmt.Sprintf("%s.corrupt-%d", bansPath, d.now().Unix())
		os.Rename(bansPath, aside)
		d.log.Error().Err(err).Str("kept_as", aside).Int("skipped_lines", skipped.Lines).
			Msg("saved bans unreadable; starting without them")
		saved = bans.Snapshot{}
	case skipped.Lines > 0:
		d.log.Error().Err(skipped.First).Int("skipped_lines", skipped.Lines).Str(fieldPath, bansPath).
			Msg("saved bans damaged: lines skipped, the others restored")
	}
	now := d.now()
	for p, u := range saved.Lifts {
		if u.Until.After(now) {
			d.ledger.Remember(p, u)
		}
	}
	// The allowlist first: no ban restored below may drop it, even for a
	// moment.
	if err := d.setAllow(ctx); err != nil {
		return err
	}
	for _, r := range saved.Bans {
		if !r.Target.IsValid() || !r.InForce(now) {
			continue
		}
		r.Reason = bans.CleanReason(r.Reason) // written by an older version
		r.Ports = d.knownPorts(r)
		d.ledger.Put(r)
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
			if _, known := d.ledger.GetIn(e.Prefix, e.Ports); known || !e.Expires.After(now) {
				continue
			}
			d.ledger.Put(&bans.Record{Target: e.Prefix, Origin: bans.ByKernel, Since: now, Expires: e.Expires, Ports: e.Ports,
				Reason: "in the kernel at start but not in the saved state (the daemon stopped before saving it)"})
			adopted++
		}
		if adopted > 0 {
			d.bansDirty = true
			d.log.Warn().Int("bans", adopted).Msg("kept bans found in the kernel but missing from the saved state")
		}
	}
	// Bans made before their address was allowlisted (or by an older
	// sipguard) are lifted or narrowed, not restored; so are bans of
	// special-purpose addresses.
	d.fitted(d.misfits(now), now)
	d.liftSpecial(now)
	// One entry per target and ports profile: the longest of its records
	// there.
	longest := make(map[bans.Replaced]time.Time, d.ledger.Len())
	d.ledger.All(func(r *bans.Record) bool {
		k := bans.Replaced{Target: r.Target, Ports: r.Ports}
		if r.Expires.After(longest[k]) {
			longest[k] = r.Expires
		}
		return true
	})
	entries := make([]firewall.Entry, 0, len(longest))
	for k, exp := range longest {
		if _, covered := d.ledger.Covering(k.Target, k.Ports, now); covered && exp.After(now) {
			continue // a wider ban holds it (flush: covered bans)
		}
		entries = append(entries, firewall.Entry{Prefix: k.Target, Expires: exp, Ports: k.Ports})
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
	d.eng.Restore(saved.Offences)

	var ps positionsState
	if _, err := store.Load(filepath.Join(d.cfg.StateDir, positionsFile), &ps); err != nil {
		d.log.Error().Err(err).Msg("saved log positions unreadable; following the logs as at first start")
	}
	for name, p := range ps.Sources {
		d.positions[name] = p
	}
	return nil
}

// knownPorts returns the ports profile a saved record is restored in: its
// own when the firewall has it, else its rule's own ports now (the rule's
// ports changed while the daemon was stopped), else the default.
func (d *Daemon) knownPorts(r *bans.Record) string {
	if r.Ports == "" {
		return ""
	}
	for _, ports := range d.cfg.RulePorts {
		if ports == r.Ports {
			return r.Ports
		}
	}
	if r.Origin == bans.ByRule {
		return d.cfg.RulePorts[r.Rule]
	}
	return ""
}

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

// readBans reads the bans file: a regular file of bounded size
// (store.ReadFile), whose bad lines are skipped.
func readBans(path string) (bans.Snapshot, bans.Skipped, error) {
	data, err := store.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return bans.Snapshot{}, bans.Skipped{}, nil
	}
	if err != nil {
		return bans.Snapshot{}, bans.Skipped{}, err
	}
	s, skipped, err := bans.Decode(data)
	if err != nil {
		return bans.Snapshot{}, bans.Skipped{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, skipped, nil
}

// saveJob is a snapshot of the state to write. Ban records are never
// changed once made (a new ban replaces the record), so the saver can
// encode them while the core goes on; the core copies them in O(1)
// (bans.Ledger.Copy): with 100,000 bans of the cluster, listing them took
// milliseconds, in front of the log's next ban.
type saveJob struct {
	gen       uint64
	bans      *bansJob                 // nil: unchanged
	positions map[string]savedPosition // nil: unchanged
	at        time.Time
}

// bansJob is the bans file to write: the saver lists the records.
type bansJob struct {
	records  bans.RecordSet
	lifts    map[netip.Prefix]bans.Lift
	offences []engine.Offence
}

type saveResult struct {
	job      saveJob
	err      error
	bansTook time.Duration // encoding and writing the bans file
}

// saveInterval is how often the bans file is written at most, given how
// long the last write took: once a second, and no more than a tenth of the
// time, so that a cluster's 100,000 bans (a file of tens of megabytes)
// do not keep a core busy rewriting it. A change someone waits for (a
// manual ban, an unban) is written at once all the same, and the log
// positions every second.
func saveInterval(took time.Duration) time.Duration {
	return min(max(10*took, time.Second), 30*time.Second)
}

// saver writes snapshots into dir, one at a time, off the core goroutine.
// dir is given, not read from d.cfg, which the core goroutine replaces on
// reload (the state directory changes only on restart).
func (d *Daemon) saver(dir string, jobs <-chan saveJob, results chan<- saveResult) {
	for job := range jobs {
		var err error
		var took time.Duration
		if job.bans != nil {
			start := time.Now()
			b := job.bans
			snap := bans.Snapshot{Bans: b.records.Records(), Lifts: b.lifts, Offences: b.offences}
			err = store.WriteFile(filepath.Join(dir, bansFile), bans.Encode(snap))
			took = time.Since(start)
		}
		if job.positions != nil && err == nil {
			err = store.Save(filepath.Join(dir, positionsFile),
				positionsState{Version: stateVersion, Saved: job.at, Sources: job.positions})
		}
		results <- saveResult{job, err, took}
	}
}

// save hands what changed to the saver, at most once a second (the bans
// file: saveInterval) unless now is set, and never while a save is under
// way.
func (d *Daemon) save(now bool) {
	t := d.now()
	if d.saving || !now && t.Sub(d.lastTry) < time.Second {
		return
	}
	bansDue := d.bansDirty && (now || t.Sub(d.bansTry) >= d.bansEvery)
	if !bansDue && !d.posDirty {
		return
	}
	d.lastTry = t
	job := saveJob{gen: d.gen, at: t}
	if d.bansDirty && !bansDue {
		job.gen = 0 // the bans someone may wait for are not in it
	}
	if bansDue {
		d.bansTry = t
		job.bans = &bansJob{records: d.ledger.Copy(), lifts: d.ledger.Lifts(), offences: d.eng.Offences()}
		d.bansDirty = false
	}
	if d.posDirty {
		job.positions = make(map[string]savedPosition, len(d.positions))
		for k, v := range d.positions {
			job.positions[k] = v
		}
	}
	d.posDirty, d.saving = false, true
	d.saveJobs <- job
}

// saved takes a save's result. A failure (disk full, read-only) is logged
// when it starts and ends; the daemon keeps enforcing and retries.
func (d *Daemon) saved(r saveResult) {
	d.saving = false
	if r.job.bans != nil {
		d.bansEvery = saveInterval(r.bansTook)
	}
	if r.err != nil {
		d.bansDirty = d.bansDirty || r.job.bans != nil
		d.bansFailed = d.bansFailed || r.job.bans != nil
		d.posDirty = d.posDirty || r.job.positions != nil
		if d.saveErr != r.err.Error() {
			d.saveErr = r.err.Error()
			d.log.Error().Err(r.err).Msg("state not saved; bans stay enforced, retrying every second")
		}
		return
	}
	if r.job.bans != nil {
		d.bansFailed = false
	}
	// A save of the log positions alone does not end a failure to write
	// the bans file: status would say saved while the bans are not.
	if d.saveErr != "" && !d.bansFailed {
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
