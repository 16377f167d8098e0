package daemon_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/firewall"
)

// TestGeoIP_BadDatabase: a daemon does not start on a missing or corrupt
// country database, and says which file and why.
func TestGeoIP_BadDatabase(t *testing.T) {
	e := newEnv(t)
	corrupt := filepath.Join(e.dir, "corrupt.mmdb")
	os.WriteFile(corrupt, []byte("\xab\xcd\xefMaxMind.com garbage"), 0o644)
	for _, c := range []struct{ path, want string }{
		{filepath.Join(e.dir, "none.mmdb"), "no such file"},
		{corrupt, "MaxMind DB"},
	} {
		cfg := e.config()
		cfg.GeoIP = c.path
		log := zerolog.Nop()
		_, err := daemon.New(cfg, firewall.NewDryRun(log, nil), log, nil)
		if err == nil || !strings.Contains(err.Error(), "[geoip]") || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New with %s: %v; want [geoip], the path and %q", c.path, err, c.want)
		}
	}
}
