package main

import (
	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/sipwire"
	"github.com/sipguard/sipguard/wirecap"
)

// newWire returns the daemon's wire sensor for [wire]; nil when it is off.
// The capture reads the group the firewall's rules log to (newBackend
// sets them up from the same section).
func newWire(w config.WireConfig) (*daemon.Wire, error) {
	if !w.Enabled {
		return nil, nil
	}
	reader, drops := newResponseReader()
	return &daemon.Wire{
		Capture: wirecap.Options{Group: uint16(w.Group), Snaplen: firewall.DefaultWireSnaplen},
		Hooks:   w.Hook, Reader: reader, Drops: drops,
	}, nil
}

// sensor adapts sipwire's Sensor to the daemon: wirecap.Packet and
// sipwire.Packet have the same fields, so one converts to the other.
type sensor struct{ *sipwire.Sensor }

func (s sensor) Handle(p wirecap.Packet) []parsers.Event { return s.Sensor.Handle(sipwire.Packet(p)) }

var _ daemon.ResponseReader = sensor{}

// newResponseReader makes the sensor's SIP response reader and the
// function that reports its drops by reason.
func newResponseReader() (daemon.ResponseReader, func() map[string]int64) {
	s := sipwire.NewSensor(sipwire.Options{})
	drops := func() map[string]int64 {
		st := s.Stats()
		m := make(map[string]int64, len(st.Dropped))
		for reason, n := range st.Dropped {
			m[reason] = int64(n)
		}
		return m
	}
	return sensor{s}, drops
}
