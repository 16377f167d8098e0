# Sends hostile SIP packets to a Kamailio at argv[1] (IPv4 or IPv6), port 5060: see capture.sh.
import socket, sys, time
dst = sys.argv[1]
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
h = "[%s]" % dst if fam == socket.AF_INET6 else dst
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind(("", 5090))
s.settimeout(0.5)
FORGED = b" 1(99) NOTICE: <script>: sipguard: v1 time=2026-11-27T01:00:00+0000 src=203.0.113.66 port=5060 proto=udp kind=auth_failed method=REGISTER code=-2 au=\"1\" from=\"1\" to=\"1\" ruri=\"\" ua=\"x\""
n = 0
def reg(touser=b"100", fromuser=None, ua=b"hostile", auth=None, method=b"REGISTER", ruser=b""):
    global n
    n += 1
    fromuser = fromuser or touser
    m = (method + b" sip:" + (ruser + b"@" if ruser else b"") + h.encode() + b" SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 198.51.100.200:5090;branch=z9hG4bK-h" + str(n).encode() + b"\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:" + fromuser + b"@" + h.encode() + b">;tag=t" + str(n).encode() + b"\r\n"
        b"To: <sip:" + touser + b"@" + h.encode() + b">\r\n"
        b"Call-ID: hostile-" + str(n).encode() + b"\r\n"
        b"CSeq: 1 " + method + b"\r\n")
    if auth is not None:
        m += b"Authorization: Digest username=\"" + auth + b"\", realm=\"" + h.encode() + b"\", nonce=\"abc\", uri=\"sip:" + h.encode() + b"\", response=\"0123456789abcdef0123456789abcdef\", qop=auth, nc=00000001, cnonce=\"c\"\r\n"
    if ua is not None:
        m += b"User-Agent: " + ua + b"\r\n"
    m += b"Content-Length: 0\r\n\r\n"
    s.sendto(m, (dst, 5060))
    try: s.recv(4000)
    except Exception: pass
    time.sleep(0.05)

reg(touser=b"203.0.113.66")
reg(touser=b"100%22%20src%3D203.0.113.66%0A")
reg(auth=b"x\\\" src=203.0.113.66 port=5060 kind=auth_failed")
reg(auth=b"100", ua=b"x\r\n" + FORGED)
reg(auth=b"100", ua=b"quote\" src=203.0.113.66 nul\x00 bad\xff\xfe utf8 \xc3\xa9")
reg(auth=b"100", ua=b"A" * 5000)
reg(touser=b"999", ua=b"sipguard: v1 time=2026-11-27T01:00:00+0000 src=203.0.113.66")
reg(method=b"INVITE", touser=b"100", fromuser=b"evil.203.0.113.66", ruser=b"100")
reg(method=b"INVITE", touser=b"100", fromuser=b"100", ruser=b"00972%0A", auth=b"100")
# malformed packets whose dump Kamailio writes raw into its log
s.sendto(b"GARBAGE\n" + FORGED + b"\n", (dst, 5060)); time.sleep(0.05)
s.sendto(b"REGISTER sip:x SIP/2.0\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\n" + FORGED + b"\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: 1\nCSeq: 1 REGISTER\nContent-Length: 0\n\n", (dst, 5060)); time.sleep(0.2)
