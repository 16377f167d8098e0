package main

import (
	"errors"

	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/wirecap"
)

// newWire returns the daemon's wire sensor for [wire]; nil when it is off.
// The capture reads the group the firewall's rules log to (newBackend
// sets them up from the same section).
func newWire(w config.WireConfig) (*daemon.Wire, error) {
	if !w.Enabled {
		return nil, nil
	}
	reader, drops, err := newResponseReader(w)
	if err != nil {
		return nil, err
	}
	return &daemon.Wire{
		Capture: wirecap.Options{Group: uint16(w.Group), Snaplen: firewall.DefaultWireSnaplen},
		Hooks:   w.Hook, Reader: reader, Drops: drops,
	}, nil
}

// errNoReader: this build has the capture but not the reader.
var errNoReader = errors.New("[wire]: this build has no SIP response reader (package sipwire): set enabled = false")

// newResponseReader makes the sensor's SIP response reader and the
// function that reports its drops by reason: the one place package
// sipwire plugs in (sipwire.NewSensor).
func newResponseReader(config.WireConfig) (daemon.ResponseReader, func() map[string]int64, error) {
	return nil, nil, errNoReader
}
