package fwtest_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/firewall/fwtest"
)

// clock is a manual clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newFake() (*fwtest.Fake, *clock) {
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return fwtest.New(c.now), c
}

func pfx(s string) netip.Prefix {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p
	}
	a := netip.MustParseAddr(s)
	return netip.PrefixFrom(a, a.BitLen())
}

func ban(s string, d time.Duration) firewall.Ban { return firewall.Ban{Prefix: pfx(s), Timeout: d} }

var ctx = context.Background()

func TestFake_Ban(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		f, c := newFake()
		if err := f.Ban(ctx, ban("198.51.100.7", time.Minute), ban("2001:db8::/64", time.Hour)); err != nil {
			t.Fatal(err)
		}
		if !f.Has(pfx("198.51.100.7")) || !f.Has(pfx("2001:db8::/64")) {
			t.Fatalf("got %v; want both bans", f.Entries())
		}
		c.advance(time.Minute)
		if f.Has(pfx("198.51.100.7")) {
			t.Error("ban still in force after its timeout")
		}
		if got := f.State(ctx).Bans; got != 1 {
			t.Errorf("State.Bans = %d; want 1", got)
		}
	})
	t.Run("Reban", func(t *testing.T) {
		f, c := newFake()
		f.Ban(ctx, ban("198.51.100.7", time.Hour))
		f.Ban(ctx, ban("198.51.100.7", time.Minute))
		if exp, _ := f.Expiry(pfx("198.51.100.7")); !exp.Equal(c.t.Add(time.Minute)) {
			t.Errorf("expiry %v; want the new timeout", exp)
		}
	})
	t.Run("Normalize", func(t *testing.T) {
		f, c := newFake()
		if err := f.Ban(ctx, ban("::ffff:192.0.2.1", 1500*time.Microsecond), ban("203.0.113.77/24", time.Hour)); err != nil {
			t.Fatal(err)
		}
		if exp, ok := f.Expiry(pfx("192.0.2.1")); !ok || !exp.Equal(c.t.Add(2*time.Millisecond)) {
			t.Errorf("192.0.2.1: expiry %v, %v; want mapped address unmapped, timeout rounded up to 2ms", exp, ok)
		}
		if !f.Has(pfx("203.0.113.0/24")) {
			t.Errorf("got %v; want 203.0.113.0/24", f.Entries())
		}
	})
	t.Run("ErrOverlap", func(t *testing.T) {
		f, _ := newFake()
		f.Ban(ctx, ban("10.0.0.0/16", time.Hour))
		err := f.Ban(ctx, ban("192.0.2.1", time.Hour), ban("10.0.5.0/24", time.Hour))
		var oe *firewall.OverlapError
		if !errors.Is(err, firewall.ErrOverlap) || !errors.As(err, &oe) || oe.With != pfx("10.0.0.0/16") {
			t.Fatalf("got %v; want an OverlapError with 10.0.0.0/16", err)
		}
		if f.Has(pfx("192.0.2.1")) {
			t.Error("a refused call banned something")
		}
		if err := f.Ban(ctx, ban("172.16.0.0/12", time.Hour), ban("172.16.1.0/24", time.Hour)); !errors.Is(err, firewall.ErrOverlap) {
			t.Errorf("overlap within one call: got %v; want ErrOverlap", err)
		}
		if err := f.Ban(ctx, ban("10.0.0.1", time.Hour), ban("10.0.0.0/16", 2*time.Hour)); err != nil {
			t.Errorf("host inside a network and re-ban of the network: %v", err)
		}
	})
	t.Run("OverlapAfterExpiry", func(t *testing.T) {
		f, c := newFake()
		f.Ban(ctx, ban("10.0.0.0/16", time.Minute))
		c.advance(time.Minute)
		if err := f.Ban(ctx, ban("10.0.5.0/24", time.Hour)); err != nil {
			t.Errorf("got %v; want the expired network ignored", err)
		}
	})
	t.Run("ErrInvalidBan", func(t *testing.T) {
		f, _ := newFake()
		for _, b := range []firewall.Ban{{Timeout: time.Hour}, ban("192.0.2.1", 0), ban("192.0.2.1", -time.Second)} {
			if err := f.Ban(ctx, b); !errors.Is(err, firewall.ErrInvalidBan) {
				t.Errorf("Ban(%v): got %v; want ErrInvalidBan", b, err)
			}
		}
	})
	t.Run("MaxTimeout", func(t *testing.T) {
		f, c := newFake()
		f.Ban(ctx, ban("192.0.2.1", time.Duration(1<<63-1)))
		if exp, _ := f.Expiry(pfx("192.0.2.1")); !exp.Equal(c.t.Add(firewall.MaxTimeout)) {
			t.Errorf("expiry %v; want capped at MaxTimeout", exp)
		}
	})
	t.Run("BanFunc", func(t *testing.T) {
		f, _ := newFake()
		boom := errors.New("boom")
		f.BanFunc = func([]firewall.Ban) error { return boom }
		if err := f.Ban(ctx, ban("192.0.2.1", time.Hour)); !errors.Is(err, boom) {
			t.Fatalf("got %v; want the injected error", err)
		}
		if len(f.Entries()) != 0 {
			t.Error("a failed Ban changed the state")
		}
	})
}

func TestFake_Unban(t *testing.T) {
	f, _ := newFake()
	f.Ban(ctx, ban("192.0.2.1", time.Hour), ban("2001:db8::/64", time.Hour))
	if err := f.Unban(ctx, pfx("::ffff:192.0.2.1"), pfx("198.51.100.1")); err != nil {
		t.Fatal(err)
	}
	if f.Has(pfx("192.0.2.1")) || !f.Has(pfx("2001:db8::/64")) {
		t.Errorf("got %v; want only 2001:db8::/64", f.Entries())
	}
	boom := errors.New("boom")
	f.UnbanFunc = func([]netip.Prefix) error { return boom }
	if err := f.Unban(ctx, pfx("2001:db8::/64")); !errors.Is(err, boom) || !f.Has(pfx("2001:db8::/64")) {
		t.Errorf("got %v, %v; want the injected error and no change", err, f.Entries())
	}
}

func TestFake_Sync(t *testing.T) {
	f, c := newFake()
	f.Ban(ctx, ban("198.51.100.1", time.Hour))
	err := f.Sync(ctx, []firewall.Entry{
		{Prefix: pfx("192.0.2.1"), Expires: c.t.Add(time.Hour)},
		{Prefix: pfx("192.0.2.2"), Expires: c.t.Add(-time.Second)},
		{Prefix: pfx("10.1.0.0/16"), Expires: c.t.Add(time.Hour)},
		{Prefix: pfx("10.0.0.0/8"), Expires: c.t.Add(time.Hour)},
	})
	var oe *firewall.OverlapError
	if !errors.As(err, &oe) || oe.Prefix != pfx("10.1.0.0/16") {
		t.Fatalf("got %v; want an OverlapError for 10.1.0.0/16", err)
	}
	got := f.Entries()
	if len(got) != 2 || got[0].Prefix != pfx("10.0.0.0/8") || got[1].Prefix != pfx("192.0.2.1") {
		t.Errorf("got %v; want 10.0.0.0/8 and 192.0.2.1", got)
	}
	list, _ := f.List(ctx)
	if len(list) != 2 {
		t.Errorf("List: %v", list)
	}
}

func TestFake_Close(t *testing.T) {
	f, _ := newFake()
	f.Ban(ctx, ban("192.0.2.1", time.Hour))
	f.Close()
	if err := f.Ban(ctx, ban("192.0.2.2", time.Hour)); !errors.Is(err, firewall.ErrClosed) {
		t.Errorf("Ban after Close: got %v; want ErrClosed", err)
	}
	if _, err := f.List(ctx); !errors.Is(err, firewall.ErrClosed) {
		t.Errorf("List after Close: got %v; want ErrClosed", err)
	}
	if err := f.Reconcile(ctx); !errors.Is(err, firewall.ErrClosed) {
		t.Errorf("Reconcile after Close: got %v; want ErrClosed", err)
	}
	if !f.Has(pfx("192.0.2.1")) {
		t.Error("Close lifted the bans; they stay, as in the kernel")
	}
}

func TestFake_SetAllow(t *testing.T) {
	f, _ := newFake()
	if err := f.SetAllow(ctx, []netip.Prefix{pfx("192.0.2.7/24"), pfx("::ffff:198.51.100.1")}); err != nil {
		t.Fatal(err)
	}
	if got := f.Allowlist(); len(got) != 2 || got[0] != pfx("192.0.2.0/24") || got[1] != pfx("198.51.100.1") {
		t.Errorf("Allowlist: %v; want normalised", got)
	}
	if err := f.SetAllow(ctx, []netip.Prefix{pfx("192.0.2.1"), {}}); !errors.Is(err, firewall.ErrInvalidBan) {
		t.Errorf("invalid entry: got %v; want ErrInvalidBan", err)
	}
	injected := errors.New("injected")
	f.AllowFunc = func([]netip.Prefix) error { return injected }
	if err := f.SetAllow(ctx, nil); err != injected {
		t.Errorf("injected: got %v", err)
	}
	if got := f.Allowlist(); len(got) != 2 {
		t.Errorf("a failed SetAllow changed the allowlist: %v", got)
	}
	f.AllowFunc = nil
	f.Close()
	if err := f.SetAllow(ctx, nil); !errors.Is(err, firewall.ErrClosed) {
		t.Errorf("SetAllow after Close: got %v; want ErrClosed", err)
	}
}

// TestFake_Profiles: bans are kept per ports profile, overlaps refused
// within one only; UnbanIn lifts one profile's ban, Unban every one; Sync
// keeps the profiles.
func TestFake_Profiles(t *testing.T) {
	const gui = "80/tcp,443/tcp"
	f, _ := newFake()
	guiBan := ban("203.0.113.0/24", time.Hour)
	guiBan.Ports = gui
	if err := f.Ban(ctx, guiBan, ban("203.0.113.0/25", time.Hour), ban("198.51.100.7", time.Hour)); err != nil {
		t.Fatalf("a network in another profile: %v", err)
	}
	inside := ban("203.0.113.0/26", time.Hour)
	inside.Ports = gui
	if err := f.Ban(ctx, inside); !errors.Is(err, firewall.ErrOverlap) {
		t.Errorf("a network inside the GUI profile's /24: %v; want ErrOverlap", err)
	}
	same := ban("198.51.100.7", time.Hour)
	same.Ports = gui
	if err := f.Ban(ctx, same); err != nil {
		t.Fatal(err)
	}
	if !f.Has(pfx("198.51.100.7")) || !f.HasIn(gui, pfx("198.51.100.7")) || f.Has(pfx("203.0.113.0/24")) || !f.HasIn(gui, pfx("203.0.113.0/24")) {
		t.Errorf("Has/HasIn: %+v", f.Entries())
	}
	if err := f.UnbanIn(ctx, gui, pfx("198.51.100.7")); err != nil {
		t.Fatal(err)
	}
	if !f.Has(pfx("198.51.100.7")) || f.HasIn(gui, pfx("198.51.100.7")) {
		t.Errorf("UnbanIn lifted the wrong profile: %+v", f.Entries())
	}
	es := f.Entries()
	f2, _ := newFake()
	if err := f2.Sync(ctx, es); err != nil {
		t.Fatal(err)
	}
	if !f2.HasIn(gui, pfx("203.0.113.0/24")) || !f2.Has(pfx("203.0.113.0/25")) {
		t.Errorf("Sync lost a profile: %+v", f2.Entries())
	}
	if err := f2.Unban(ctx, pfx("203.0.113.0/24"), pfx("203.0.113.0/25")); err != nil {
		t.Fatal(err)
	}
	if f2.HasIn(gui, pfx("203.0.113.0/24")) || f2.Has(pfx("203.0.113.0/25")) {
		t.Errorf("Unban left a ban: %+v", f2.Entries())
	}
}
