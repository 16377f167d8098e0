package daemon

import (
	"time"

	"github.com/sipguard/sipguard/bans"
)

// Special-purpose addresses (bans.Special: loopback, link-local,
// multicast, ...) are never banned, whatever decides the ban:
//
//   - the engine drops their events, counted (engine.Stats.Special);
//   - manual bans and imports refuse them with why; feeds skip them,
//     counted (feeds.List.Special); the cluster's bans of them are
//     ignored (counted "special");
//   - ban, the one way bans reach the firewall, refuses any that gets
//     there all the same, counted (specialRefused);
//   - bans of them found at start (made by an older sipguard, or in the
//     kernel) are lifted, not restored (liftSpecial).

// UnbanSpecial is the unban reason of a ban lifted because it covers
// special-purpose addresses.
const UnbanSpecial = "special"

// liftSpecial forgets the bans in the ledger that cover special-purpose
// addresses; the restore then leaves them out of the kernel.
func (d *Daemon) liftSpecial(now time.Time) {
	type lift struct {
		r   *bans.Record
		why string
	}
	var out []lift
	d.ledger.Targets(func(r *bans.Record) bool {
		if why, bad := bans.Special(r.Target); bad && r.InForce(now) {
			out = append(out, lift{r, why})
		}
		return true
	})
	for _, l := range out {
		d.unbanned(l.r.Target, UnbanSpecial, "it is "+l.why+": never banned")
	}
}
