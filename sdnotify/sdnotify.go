// Package sdnotify speaks systemd's notification protocol (sd_notify(3)):
// datagrams such as "READY=1" sent to the unix socket named by
// $NOTIFY_SOCKET, and the watchdog interval systemd asks for in
// $WATCHDOG_USEC. Without $NOTIFY_SOCKET (not run by systemd with
// Type=notify) every call does nothing.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Messages of the protocol.
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
	Watchdog  = "WATCHDOG=1"
)

// Notify sends state (one or more "KEY=value" lines) to systemd. It
// returns nil, and does nothing, when $NOTIFY_SOCKET is not set.
func Notify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract namespace
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// ReloadingNow is the RELOADING=1 message with the MONOTONIC_USEC field
// that systemd 253 and later require for Type=notify-reload (older
// versions ignore the field).
func ReloadingNow() string {
	return Reloading + "\nMONOTONIC_USEC=" + strconv.FormatInt(monotonicUsec(), 10)
}

// WatchdogInterval returns the interval at which systemd expects
// WATCHDOG=1, or 0 when it expects none ($WATCHDOG_USEC unset, or
// $WATCHDOG_PID naming another process).
func WatchdogInterval() time.Duration {
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	return time.Duration(usec) * time.Microsecond
}

// Enabled reports whether systemd listens: $NOTIFY_SOCKET is set.
func Enabled() bool { return os.Getenv("NOTIFY_SOCKET") != "" }
