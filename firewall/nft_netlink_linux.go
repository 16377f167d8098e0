//go:build linux

package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// This file talks raw nfnetlink where google/nftables v0.3.0 falls short:
//   - set element dumps: GetSetElements reads with page-sized buffers, so the
//     kernel restarts its set walk every ~4 KiB of output (100,000 elements:
//     about 4 s on the test VM); reading with 64 KiB buffers lets the kernel
//     fill 32 KiB per walk (about 0.5 s);
//   - the monitor: element events in v0.3.0 carry neither the table nor the
//     set name, and its filter only works for MonitorObjectAny.

const nfnlSubsysShift = 8

// dialNetfilter opens a NETLINK_NETFILTER socket in the namespace nsFD
// (0: the current one).
func dialNetfilter(nsFD int) (*netlink.Conn, error) {
	return netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsFD})
}

// sockControl runs f on c's file descriptor.
func sockControl(c *netlink.Conn, f func(fd int) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// setBuffer sets a socket buffer to size bytes. As root, the *FORCE
// options bypass net.core.[rw]mem_max (212992 on stock Debian); without
// CAP_NET_ADMIN the plain option is used, capped by the sysctl.
func setBuffer(c *netlink.Conn, write bool, size int) error {
	force, plain := unix.SO_RCVBUFFORCE, unix.SO_RCVBUF
	if write {
		force, plain = unix.SO_SNDBUFFORCE, unix.SO_SNDBUF
	}
	return sockControl(c, func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size); err == nil {
			return nil
		}
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
	})
}

// sendBuffer returns the kernel's send buffer size of c (twice what was
// set).
func sendBuffer(c *netlink.Conn) (int, error) {
	var n int
	err := sockControl(c, func(fd int) error {
		var err error
		n, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
		return err
	})
	return n, err
}

// portID returns the netlink port id of c: the kernel stamps it on the
// notifications of every transaction c commits.
func portID(c *netlink.Conn) (uint32, error) {
	var id uint32
	err := sockControl(c, func(fd int) error {
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return err
		}
		nl, ok := sa.(*unix.SockaddrNetlink)
		if !ok {
			return errors.New("not a netlink socket")
		}
		id = nl.Pid
		return nil
	})
	return id, err
}

// kelem is a set element as read from the kernel.
type kelem struct {
	addr    netip.Addr
	end     bool          // interval end
	expires time.Duration // time left; 0 if the element has no timeout
}

// errDumpInterrupted says the ruleset changed during a dump, which may then
// have missed or repeated elements.
var errDumpInterrupted = errors.New("dump interrupted by a ruleset change")

// dumper reads set elements over its own socket.
type dumper struct {
	mu      sync.Mutex // one dump at a time
	nsFD    int
	timeout time.Duration // of each reply
	hook    func(fd int, role string) error
	// c is replaced after a dump that timed out, and closed by close
	// without mu (to end a dump under way): atomic, with closed.
	c      atomic.Pointer[netlink.Conn]
	closed atomic.Bool
	seq    uint32
	buf    []byte
}

func newDumper(nsFD int, timeout time.Duration, hook func(fd int, role string) error) (*dumper, error) {
	d := &dumper{nsFD: nsFD, timeout: timeout, hook: hook, buf: make([]byte, 64<<10)}
	c, err := d.dial()
	if err != nil {
		return nil, err
	}
	d.c.Store(c)
	return d, nil
}

func (d *dumper) dial() (*netlink.Conn, error) {
	c, err := dialNetfilter(d.nsFD)
	if err != nil {
		return nil, err
	}
	if err := hookSocket(d.hook, c, "dumps"); err != nil {
		c.Close()
		return nil, err
	}
	// Dump replies are produced as they are read, so a modest buffer is
	// enough; it only has to hold one 32 KiB skb and the final ack.
	_ = setBuffer(c, false, 1<<20)
	return c, nil
}

// redial replaces the socket. Whichever of redial and close comes last
// sees the other: no socket is left open after close.
func (d *dumper) redial() {
	c, err := d.dial()
	if err != nil {
		return // the next dump tries the old socket
	}
	d.c.Swap(c).Close()
	if d.closed.Load() {
		c.Close()
	}
}

func (d *dumper) close() error {
	d.closed.Store(true)
	return d.c.Load().Close()
}

// elements dumps the elements of set in table (family inet). Interval end
// elements are returned too (end: true). A dump whose next reply does not
// come within d.timeout fails with ErrNoAnswer, and the socket is
// replaced: the kernel would refuse the next dump (EBUSY) while the
// abandoned one is not read to its end.
func (d *dumper) elements(table, set string) ([]kelem, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	els, err := d.dump(table, set)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		d.redial()
		return nil, noAnswer(d.timeout)
	}
	return els, err
}

// elements dumps the elements of set in table (family inet). Interval end
// elements are returned too (end: true).
func (d *dumper) dump(table, set string) ([]kelem, error) {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(table + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(set + "\x00")},
	})
	if err != nil {
		return nil, err
	}
	d.seq++
	seq := d.seq
	req := make([]byte, unix.NLMSG_HDRLEN+4+len(attrs))
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], uint16(unix.NFNL_SUBSYS_NFTABLES<<nfnlSubsysShift|unix.NFT_MSG_GETSETELEM))
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], seq)
	req[16] = unix.NFPROTO_INET
	req[17] = unix.NFNETLINK_V0
	copy(req[20:], attrs)

	c := d.c.Load()
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	deadline := func() error { return c.SetDeadline(time.Now().Add(d.timeout)) }
	if err := deadline(); err != nil {
		return nil, err
	}
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		werr = unix.Sendto(int(fd), req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return werr != unix.EAGAIN
	}); err != nil {
		return nil, err
	}
	if werr != nil {
		return nil, fmt.Errorf("send dump request: %w", werr)
	}

	var out []kelem
	var intr bool
	for {
		var n int
		var rerr error
		if err := deadline(); err != nil {
			return nil, err
		}
		if err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), d.buf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return nil, err
		}
		if rerr != nil {
			return nil, fmt.Errorf("receive dump: %w", rerr)
		}
		msgs, err := syscall.ParseNetlinkMessage(d.buf[:n])
		if err != nil {
			return nil, fmt.Errorf("parse dump: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue // a stale reply of an abandoned dump
			}
			if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
				intr = true
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				if intr {
					return out, errDumpInterrupted
				}
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
						return nil, syscall.Errno(-errno)
					}
				}
				return out, nil
			}
			if len(m.Data) < 4 {
				continue
			}
			out, err = appendElements(out, m.Data[4:])
			if err != nil {
				return nil, err
			}
		}
	}
}

// setElemMsg is the part of a NEWSETELEM/DELSETELEM message we use.
type setElemMsg struct {
	table, set string
	elems      []kelem
}

// parseSetElemMsg parses the attributes (after the nfgenmsg) of a set
// element message.
func parseSetElemMsg(b []byte) (setElemMsg, error) {
	var m setElemMsg
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return m, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_LIST_TABLE:
			m.table = ad.String()
		case unix.NFTA_SET_ELEM_LIST_SET:
			m.set = ad.String()
		case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
			m.elems, err = appendElementList(m.elems, ad.Bytes())
			if err != nil {
				return m, err
			}
		}
	}
	return m, ad.Err()
}

// appendElements appends the elements of a dump message's attributes.
func appendElements(out []kelem, b []byte) ([]kelem, error) {
	m, err := parseSetElemMsg(b)
	if err != nil {
		return nil, err
	}
	return append(out, m.elems...), nil
}

func appendElementList(out []kelem, b []byte) ([]kelem, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	for ad.Next() {
		if ad.Type() != unix.NFTA_LIST_ELEM {
			continue
		}
		e, err := parseElement(ad.Bytes())
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, ad.Err()
}

func parseElement(b []byte) (kelem, error) {
	var e kelem
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return e, err
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_KEY:
			kd, err := netlink.NewAttributeDecoder(ad.Bytes())
			if err != nil {
				return e, err
			}
			for kd.Next() {
				if kd.Type() == unix.NFTA_DATA_VALUE {
					e.addr, _ = netip.AddrFromSlice(kd.Bytes())
				}
			}
			if err := kd.Err(); err != nil {
				return e, err
			}
		case unix.NFTA_SET_ELEM_FLAGS:
			e.end = ad.Uint32()&unix.NFT_SET_ELEM_INTERVAL_END != 0
		case unix.NFTA_SET_ELEM_EXPIRATION:
			ms := ad.Uint64()
			if ms > uint64(MaxTimeout/time.Millisecond) {
				ms = uint64(MaxTimeout / time.Millisecond)
			}
			e.expires = time.Duration(ms) * time.Millisecond
		}
	}
	return e, ad.Err()
}

// monEvent summarises the changes that other processes made to our table
// in one or more transactions.
type monEvent struct {
	lost       bool     // notifications were lost: check everything
	structural []string // table, chain, rule or set changes
	deleted    map[string][]netip.Addr
}

func (e *monEvent) empty() bool {
	return !e.lost && len(e.structural) == 0 && len(e.deleted) == 0
}

// monitor follows the nftables notifications of a namespace.
type monitor struct {
	c       *netlink.Conn
	table   string
	banSets map[string]setRef // the ban sets of every profile, by name
	ours    *atomic.Uint32    // port id of our writing socket

	mu     sync.Mutex
	joined bool
	closed bool
}

func newMonitor(nsFD int, table string, banSets map[string]setRef, ours *atomic.Uint32) (*monitor, error) {
	c, err := dialNetfilter(nsFD)
	if err != nil {
		return nil, err
	}
	// A foreign flush of a 100,000-element set sends 100,000 notifications:
	// give them room (as root the sysctl cap does not apply).
	_ = setBuffer(c, false, 32<<20)
	m := &monitor{c: c, table: table, banSets: banSets, ours: ours}
	if err := m.join(true); err != nil {
		c.Close()
		return nil, err
	}
	return m, nil
}

// join subscribes to (or leaves) the nftables notification group. While
// any socket is subscribed, the kernel builds a notification per set
// element changed, which makes a 100,000-element transaction several times
// slower; bulk writes leave the group for their duration.
func (m *monitor) join(on bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.joined == on {
		return nil
	}
	var err error
	if on {
		err = m.c.JoinGroup(unix.NFNLGRP_NFTABLES)
	} else {
		err = m.c.LeaveGroup(unix.NFNLGRP_NFTABLES)
	}
	if err == nil {
		m.joined = on
	}
	return err
}

func (m *monitor) close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return m.c.Close()
}

// run reads notifications until the monitor is closed, sending a summary
// of the foreign changes to our table at the end of each transaction.
func (m *monitor) run(out chan<- monEvent, stop <-chan struct{}) error {
	ev := monEvent{}
	flush := func() {
		if !ev.empty() {
			select {
			case out <- ev:
			case <-stop:
			}
		}
		ev = monEvent{}
	}
	for {
		msgs, err := m.c.Receive()
		if err != nil {
			m.mu.Lock()
			closed := m.closed
			m.mu.Unlock()
			if closed {
				return nil
			}
			if errors.Is(err, unix.ENOBUFS) {
				ev.lost = true
				flush()
				continue
			}
			return fmt.Errorf("receive notifications: %w", err)
		}
		for _, msg := range msgs {
			if int(msg.Header.Type)>>nfnlSubsysShift != unix.NFNL_SUBSYS_NFTABLES || len(msg.Data) < 4 {
				continue
			}
			typ := int(msg.Header.Type) & 0xff
			if typ == unix.NFT_MSG_NEWGEN {
				flush()
				continue
			}
			if msg.Header.PID == m.ours.Load() || msg.Data[0] != unix.NFPROTO_INET {
				continue
			}
			m.note(&ev, typ, msg.Data[4:])
		}
	}
}

// note records one foreign change if it concerns our table.
func (m *monitor) note(ev *monEvent, typ int, b []byte) {
	verb := "add"
	switch typ {
	case unix.NFT_MSG_DELTABLE, unix.NFT_MSG_DELCHAIN, unix.NFT_MSG_DELRULE,
		unix.NFT_MSG_DELSET, unix.NFT_MSG_DELSETELEM:
		verb = "delete"
	}
	switch typ {
	case unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_DELSETELEM:
		sm, err := parseSetElemMsg(b)
		if err != nil {
			ev.lost = true
			return
		}
		if sm.table != m.table {
			return
		}
		if _, ban := m.banSets[sm.set]; !ban {
			ev.structural = append(ev.structural, verb+" elements of set "+sm.set)
			return
		}
		if typ == unix.NFT_MSG_NEWSETELEM {
			return // elements added to our sets by others are left alone
		}
		if ev.deleted == nil {
			ev.deleted = map[string][]netip.Addr{}
		}
		for _, e := range sm.elems {
			if !e.end && e.addr.IsValid() {
				ev.deleted[sm.set] = append(ev.deleted[sm.set], e.addr)
			}
		}
	case unix.NFT_MSG_NEWTABLE, unix.NFT_MSG_DELTABLE, unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_DELCHAIN,
		unix.NFT_MSG_NEWRULE, unix.NFT_MSG_DELRULE, unix.NFT_MSG_NEWSET, unix.NFT_MSG_DELSET:
		// Attribute 1 is the table name in all four kinds of object.
		table, name := attrStrings(b)
		if table != m.table {
			return
		}
		what := map[int]string{
			unix.NFT_MSG_NEWTABLE: "table", unix.NFT_MSG_DELTABLE: "table",
			unix.NFT_MSG_NEWCHAIN: "chain", unix.NFT_MSG_DELCHAIN: "chain",
			unix.NFT_MSG_NEWRULE: "rule in chain", unix.NFT_MSG_DELRULE: "rule in chain",
			unix.NFT_MSG_NEWSET: "set", unix.NFT_MSG_DELSET: "set",
		}[typ]
		switch typ {
		case unix.NFT_MSG_NEWTABLE, unix.NFT_MSG_DELTABLE:
			name = "inet " + table
		case unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_DELCHAIN:
			name = attrString(b, unix.NFTA_CHAIN_NAME)
		}
		ev.structural = append(ev.structural, verb+" "+what+" "+name)
	}
}

// attrStrings returns the string attributes 1 and 2 of b.
func attrStrings(b []byte) (a1, a2 string) {
	return attrString(b, 1), attrString(b, 2)
}

func attrString(b []byte, typ uint16) string {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return ""
	}
	for ad.Next() {
		if ad.Type() == typ {
			return ad.String()
		}
	}
	return ""
}
