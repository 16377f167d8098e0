package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// RequireEnv names the environment variable that turns a missing
// prerequisite from a skip into a failure: test.sh sets
// SIPGUARD_REQUIRE=all, because CI installs everything the tests need and
// runs them as root, so a test that skips there has not proved what CI
// claims it proves (a namespace test passing as SKIP is a silent pass).
const RequireEnv = "SIPGUARD_REQUIRE"

// required reports whether missing prerequisites fail tests.
func required() bool { return os.Getenv(RequireEnv) == "all" }

// Missing skips t for want of a prerequisite (root, a command, a file or
// a kernel feature the test uses), or fails it when RequireEnv is "all".
// Every test that skips for a missing prerequisite goes through here, so
// CI cannot pass by skipping.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if required() {
		t.Fatalf("%s (%s=all: a missing prerequisite fails the test)", why, RequireEnv)
	}
	t.Skip(why)
}

// NeedRoot is Missing unless the test runs as root.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root: %s", why)
	}
}

// NeedCommands is Missing unless every command is on PATH; install says
// where they come from.
func NeedCommands(t testing.TB, install string, commands ...string) {
	t.Helper()
	for _, c := range commands {
		if _, err := exec.LookPath(c); err != nil {
			Missing(t, "needs %s (%s)", c, install)
		}
	}
}

// SkipShort skips t under -short: a choice of whoever runs the tests
// (test.sh's -race pass uses it), not a missing prerequisite, so it skips
// even when RequireEnv is set.
func SkipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: " + why)
	}
}

// SubprocessOnly skips t unless the environment variable env is set: t
// is the body a test runs in a child process of its own test binary
// (as another user, say), not a test by itself.
func SubprocessOnly(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		t.Skip("runs only as the subprocess of another test (" + env + ")")
	}
	return v
}

// OptIn skips t unless the environment variable env is set, and returns
// its value: a test that needs what the repository cannot ship (Asterisk's
// GPL sample configs, say), run when someone points it there. A choice,
// not a missing prerequisite: it skips even when RequireEnv is set.
func OptIn(t testing.TB, env, why string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		t.Skip(env + " not set: " + why)
	}
	return v
}
