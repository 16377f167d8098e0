// Package natstest runs a real NATS server with JetStream, embedded, for
// the cluster's tests: in the test process, or as a helper process inside a
// network namespace.
package natstest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config writes a server config to dir: listening on listen
// ("127.0.0.1:-1" for any free port), JetStream stored in dir/js, and the
// users of usersConf (a file such as contrib/nats/users.conf; "" for none:
// anyone may connect, in the global account).
func Config(dir, listen, usersConf string) (string, error) {
	conf := fmt.Sprintf("listen: %q\njetstream { store_dir: %q }\n", listen, filepath.Join(dir, "js"))
	if usersConf != "" {
		data, err := os.ReadFile(usersConf)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "users.conf"), data, 0o600); err != nil {
			return "", err
		}
		conf += "include users.conf\n"
	}
	path := filepath.Join(dir, "nats-server.conf")
	return path, os.WriteFile(path, []byte(conf), 0o600)
}

// New starts a server from a config file.
func New(conf string) (*server.Server, error) {
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		return nil, err
	}
	opts.NoSigs, opts.NoLog = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server %s: not ready", conf)
	}
	return s, nil
}

// Start runs a server for a test, stopped when the test ends.
func Start(t testing.TB, conf string) *server.Server {
	t.Helper()
	s, err := New(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// CreateStream creates the stream of a JSON file (the nats CLI's format,
// such as contrib/nats/stream.json) on the server at url, as user: the
// operator's part of the documented setup.
func CreateStream(url, user, password, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var cfg jetstream.StreamConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	nc, err := nats.Connect(url, nats.UserInfo(user, password))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = js.CreateStream(ctx, cfg)
	return err
}

// Serve runs a server until SIGTERM or SIGINT: the body of a helper
// process. With stream set (a JSON file), it creates that stream as the
// user "admin" (password "admin-secret", of contrib/nats/users.conf) if
// missing. It prints "ready <url>" on stdout once it accepts clients.
func Serve(conf, stream string) {
	s, err := New(conf)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if stream != "" {
		if err := CreateStream(s.ClientURL(), "admin", "admin-secret", stream); err != nil {
			fmt.Fprintln(os.Stderr, "create the stream:", err)
			os.Exit(1)
		}
	}
	fmt.Println("ready", s.ClientURL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	s.Shutdown()
	s.WaitForShutdown()
	os.Exit(0)
}
