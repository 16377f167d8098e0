package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/sipguard/sipguard/internal/natstest"
)

// TestCredentials connects nodes with the other two kinds of credentials
// [cluster] takes: an nkey seed file, and a .creds file of NATS accounts
// (an operator, an account with JetStream, a user signed by it).
func TestCredentials(t *testing.T) {
	t.Run("nkey", func(t *testing.T) {
		dir := t.TempDir()
		seeds := map[string]string{}
		users := ""
		for _, name := range []string{"pbx-a", "pbx-b"} {
			kp, _ := nkeys.CreateUser()
			pub, _ := kp.PublicKey()
			seed, _ := kp.Seed()
			seeds[name] = filepath.Join(dir, name+".nk")
			os.WriteFile(seeds[name], seed, 0o600)
			users += fmt.Sprintf("{nkey: %q}\n", pub)
		}
		conf := fmt.Sprintf("listen: \"127.0.0.1:-1\"\njetstream { store_dir: %q }\naccounts { SIPGUARD { jetstream: enabled, users: [\n%s] } }\n",
			filepath.Join(dir, "js"), users)
		sharePair(t, dir, conf, func(name string) Config { return Config{NKey: seeds[name]} })
	})
	t.Run("creds", func(t *testing.T) {
		dir := t.TempDir()
		okp, _ := nkeys.CreateOperator()
		opub, _ := okp.PublicKey()
		ojwt, err := jwt.NewOperatorClaims(opub).Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		akp, _ := nkeys.CreateAccount()
		apub, _ := akp.PublicKey()
		ac := jwt.NewAccountClaims(apub)
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		ajwt, err := ac.Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		skp, _ := nkeys.CreateAccount() // the system account, which operator mode needs
		spub, _ := skp.PublicKey()
		sjwt, err := jwt.NewAccountClaims(spub).Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		creds := map[string]string{}
		for _, name := range []string{"pbx-a", "pbx-b"} {
			ukp, _ := nkeys.CreateUser()
			upub, _ := ukp.PublicKey()
			uc := jwt.NewUserClaims(upub)
			uc.Name = name
			ujwt, err := uc.Encode(akp)
			if err != nil {
				t.Fatal(err)
			}
			seed, _ := ukp.Seed()
			data, err := jwt.FormatUserConfig(ujwt, seed)
			if err != nil {
				t.Fatal(err)
			}
			creds[name] = filepath.Join(dir, name+".creds")
			os.WriteFile(creds[name], data, 0o600)
		}
		conf := fmt.Sprintf("listen: \"127.0.0.1:-1\"\njetstream { store_dir: %q }\noperator: %q\nsystem_account: %s\n"+
			"resolver: MEMORY\nresolver_preload: { %s: %q, %s: %q }\n",
			filepath.Join(dir, "js"), ojwt, spub, apub, ajwt, spub, sjwt)
		sharePair(t, dir, conf, func(name string) Config { return Config{Creds: creds[name]} })
	})
}

// sharePair runs a server from conf and two nodes with the credentials
// auth gives them, and checks a ban goes from one to the other.
func sharePair(t *testing.T, dir, conf string, auth func(name string) Config) {
	t.Helper()
	path := filepath.Join(dir, "nats-server.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	url := natstest.Start(t, path).ClientURL()
	locals := map[string]*fakeLocal{}
	nodes := map[string]*Node{}
	for _, name := range []string{"pbx-a", "pbx-b"} {
		cfg := auth(name)
		cfg.Servers, cfg.Name = []string{url}, name
		locals[name] = newLocal()
		nodes[name] = runNode(t, cfg, locals[name])
	}
	eventually(t, 10*time.Second, "both caught up", func() bool {
		return nodes["pbx-a"].Stats().CaughtUp && nodes["pbx-b"].Stats().CaughtUp
	})
	nodes["pbx-a"].Publish(testBan("198.51.100.7/32", time.Hour))
	eventually(t, 5*time.Second, "b has a's ban", func() bool { return locals["pbx-b"].has("198.51.100.7/32") })
}
