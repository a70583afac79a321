#!/usr/bin/env python3
"""A tiny authoritative DNS server for Roster's domain-verification tests (tests/api/dns_harness.rs).

Listens on 127.0.0.1, UDP and TCP on the same port (a free one unless --port is given), and
prints that port on its first line of output once it answers; it stops when its standard
input closes (the test that started it ended). What it answers comes from a
JSON file (--zone) that it reads again on every query, so a test changes the records by
rewriting the file (atomically: write, then rename):

    {"txt": {"_roster-challenge.acme.test": ["roster-verification=..."]},
     "servfail": ["broken.test"], "slow": ["slow.test"]}

Names are compared in lower case without the trailing dot. A name under "txt" answers its
records (an empty list: the name exists but has no TXT record), and any other record type
there answers NOERROR with nothing; "servfail" names answer SERVFAIL; "slow" names are answered
after 30 seconds (a resolver gives up first); every other name is NXDOMAIN.

Needs dnslib (tools/requirements.txt).
"""

import argparse
import json
import socket
import sys
import time

from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.server import DNSServer


class ZoneFile:
    def __init__(self, path):
        self.path = path

    def read(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}


def norm(name):
    return str(name).rstrip(".").lower()


class Resolver:
    def __init__(self, zone):
        self.zone = zone

    def resolve(self, request, handler):
        reply = request.reply()
        zone = self.zone.read()
        name = norm(request.q.qname)
        if name in [norm(n) for n in zone.get("slow", [])]:
            time.sleep(30)
        if name in [norm(n) for n in zone.get("servfail", [])]:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        records = {norm(k): v for k, v in zone.get("txt", {}).items()}
        if name not in records:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if request.q.qtype in (QTYPE.TXT, QTYPE.ANY):
            for value in records[name]:
                # One character-string is at most 255 bytes: split longer values.
                data = value.encode("utf-8")
                chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, ttl=1, rdata=TXT(chunks)))
        return reply


class QuietLogger:
    def __getattr__(self, _name):
        return lambda *args, **kwargs: None


def free_port():
    """A port free on 127.0.0.1 for both UDP and TCP."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            udp.close()
            tcp.close()
    raise SystemExit("no free port for UDP and TCP")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zone", required=True, help="the JSON file of records, read on every query")
    parser.add_argument("--port", type=int, default=0, help="0: a free one")
    args = parser.parse_args()
    resolver = Resolver(ZoneFile(args.zone))
    for attempt in range(20):
        port = args.port or free_port()
        try:
            udp = DNSServer(resolver, address="127.0.0.1", port=port, logger=QuietLogger())
            tcp = DNSServer(resolver, address="127.0.0.1", port=port, tcp=True, logger=QuietLogger())
            break
        except OSError:
            if args.port or attempt == 19:
                raise
    udp.start_thread()
    tcp.start_thread()
    print(port, flush=True)
    # Until the test that started it closes our stdin (or dies): no server outlives its test.
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
