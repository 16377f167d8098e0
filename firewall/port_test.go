package firewall_test

import (
	"testing"

	"github.com/sipguard/sipguard/firewall"
)

func TestParsePort(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		for _, tc := range []struct {
			in   string
			want firewall.Port
		}{
			{"5060/udp", firewall.Port{Proto: "udp", Port: 5060, Last: 5060}},
			{"5061/tcp", firewall.Port{Proto: "tcp", Port: 5061, Last: 5061}},
			{"5061/TCP", firewall.Port{Proto: "tcp", Port: 5061, Last: 5061}},
			{"5060/Udp", firewall.Port{Proto: "udp", Port: 5060, Last: 5060}},
			{"1/udp", firewall.Port{Proto: "udp", Port: 1, Last: 1}},
			{"65535/tcp", firewall.Port{Proto: "tcp", Port: 65535, Last: 65535}},
			{"05060/udp", firewall.Port{Proto: "udp", Port: 5060, Last: 5060}},
			{"10000-20000/udp", firewall.Port{Proto: "udp", Port: 10000, Last: 20000}},
			{"5060-5060/tcp", firewall.Port{Proto: "tcp", Port: 5060, Last: 5060}},
			{"1-65535/TCP", firewall.Port{Proto: "tcp", Port: 1, Last: 65535}},
		} {
			got, err := firewall.ParsePort(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("ParsePort(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		}
	})
	t.Run("String", func(t *testing.T) {
		for _, s := range []string{"5060/udp", "5061/tcp", "1/udp", "65535/tcp", "10000-20000/udp"} {
			p, err := firewall.ParsePort(s)
			if err != nil || p.String() != s {
				t.Errorf("ParsePort(%q).String() = %q, %v; want %q", s, p.String(), err, s)
			}
		}
	})
	t.Run("Err", func(t *testing.T) {
		for _, tc := range []struct{ in, want string }{
			{"", `"" is not a port such as "5060/udp" or "5061/tcp" (or a range: "10000-20000/udp")`},
			{"5060", `"5060" is not a port such as "5060/udp" or "5061/tcp" (or a range: "10000-20000/udp")`},
			{"/udp", `"/udp" is not a port such as "5060/udp" or "5061/tcp" (or a range: "10000-20000/udp")`},
			{"x/udp", `"x/udp" is not a port such as "5060/udp" or "5061/tcp" (or a range: "10000-20000/udp")`},
			{" 5060/udp", `" 5060/udp" is not a port such as "5060/udp" or "5061/tcp" (or a range: "10000-20000/udp")`},
			{"+5060/udp", `"+5060/udp" is not a port such as "5060/udp" or "5061/tcp" (or a range: "10000-20000/udp")`},
			{"5060-/udp", `"5060-/udp" is not a port such as "5060/udp" or "5061/tcp" (or a range: "10000-20000/udp")`},
			{"5060-5070-5080/udp", `"5060-5070-5080/udp" is not a port such as "5060/udp" or "5061/tcp" (or a range: "10000-20000/udp")`},
			{"20000-10000/udp", `"20000-10000/udp": the range ends before it starts`},
			{"0-10/udp", `"0-10/udp": port 0 is out of range 1-65535`},
			{"10-70000/udp", `"10-70000/udp": port 70000 is out of range 1-65535`},
			{"5060/sctp", `"5060/sctp": protocol "sctp" is not tcp or udp`},
			{"5060/", `"5060/": protocol "" is not tcp or udp`},
			{"5060/udp ", `"5060/udp ": protocol "udp " is not tcp or udp`},
			{"5060/UDP/x", `"5060/UDP/x": protocol "UDP/x" is not tcp or udp`},
			{"0/udp", `"0/udp": port 0 is out of range 1-65535`},
			{"65536/tcp", `"65536/tcp": port 65536 is out of range 1-65535`},
			{"70000/udp", `"70000/udp": port 70000 is out of range 1-65535`},
			{"99999999999999999999/udp", `"99999999999999999999/udp": port 99999999999999999999 is out of range 1-65535`},
		} {
			_, err := firewall.ParsePort(tc.in)
			if err == nil || err.Error() != tc.want {
				t.Errorf("ParsePort(%q) error = %v; want %s", tc.in, err, tc.want)
			}
		}
	})
}

// TestPortsKey: lists that drop the same traffic have one key (merged,
// sorted, tcp first); an empty list has "".
func TestPortsKey(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"443/tcp", "80/tcp"}, "80/tcp,443/tcp"},
		{[]string{"80/TCP", "443/tcp", "80/tcp"}, "80/tcp,443/tcp"},
		{[]string{"5060/udp", "5061/tcp", "5060/tcp"}, "5060-5061/tcp,5060/udp"},
		{[]string{"10000-10010/udp", "10005-20000/udp", "20001/udp"}, "10000-20001/udp"},
	} {
		var ports []firewall.Port
		for _, s := range tc.in {
			p, err := firewall.ParsePort(s)
			if err != nil {
				t.Fatal(err)
			}
			ports = append(ports, p)
		}
		if got, err := firewall.PortsKey(ports); err != nil || got != tc.want {
			t.Errorf("PortsKey(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := firewall.PortsKey([]firewall.Port{{Proto: "sctp", Port: 1}}); err == nil {
		t.Error("PortsKey of an sctp port: no error")
	}
}
