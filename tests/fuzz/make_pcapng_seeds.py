#!/usr/bin/env python3
"""Writes the pcapng seeds of fuzz_pcap_file (beside the classic captures of tests/fixtures/pcap)
from the committed fixtures, so that the fuzzer starts from every kind of block capture_pcap's
pcapng reader knows:
- multilink.pcapng: tests/offline/pcapng_multilink.py's file (two sections in both byte orders,
  five interfaces of four link types, one of them unsupported, skipped blocks);
- blocks.pcapng: one SIP frame of each fixture kind in every packet block (Enhanced, Simple, the
  obsolete Packet Block), interfaces with if_tsresol in powers of 10 and 2 and if_tsoffset, a
  second section in the other byte order, name resolution, statistics and custom blocks;
- one-link.pcapng: a single Ethernet interface in nanoseconds (what libpcap reads too, so that
  the fuzzer compares the two readers on it from the start).

usage: make_pcapng_seeds.py OUTDIR   (the committed seeds are tests/fuzz/pcapng_corpus)
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "offline"))
import pcapng_multilink as ml  # noqa: E402


def fixture(name):
    return ml.read_pcap(os.path.join(TOP, "tests", "fixtures", "pcap", name + ".pcap"))


def interface(w, order, linktype, tsresol=None, tsoffset=None, snaplen=0):
    opts = b""
    if tsresol is not None:
        opts += struct.pack(order + "HHB3x", 9, 1, tsresol)
    if tsoffset is not None:
        opts += struct.pack(order + "HHq", 14, 8, tsoffset)
    if opts:
        opts += struct.pack(order + "HH", 0, 0)
    w.block(1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts, order)


def simple(w, order, frame):
    w.block(3, struct.pack(order + "I", len(frame)) + frame, order)


def old_packet(w, order, iface, ticks, frame):
    w.block(2, struct.pack(order + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF,
                           len(frame), len(frame)) + frame, order)


def blocks():
    invite = fixture("answered-udp4")[0]  # (time in us, Ethernet frame)
    register = fixture("deregister-udp4")[0]
    w = ml.Writer()
    w.section("<")
    interface(w, "<", ml.LINKTYPE_ETHERNET, snaplen=65535)
    interface(w, "<", ml.LINKTYPE_RAW, tsresol=0x80 | 20, tsoffset=1)
    w.block(4, struct.pack("<HH4s", 1, 4, bytes([10, 0, 0, 1])) + b"\0\0\0\0", "<")
    simple(w, "<", invite[1])
    w.packet("<", 0, invite[0], invite[1])
    t = invite[0] // 1000000 - 1
    w.packet("<", 1, t << 20 | 1 << 19, ml.strip_ethernet(register[1]))
    old_packet(w, "<", 0, register[0], register[1])
    w.block(5, struct.pack("<III", 0, 0, 0) + struct.pack("<HH", 0, 0), "<")
    w.section(">")
    interface(w, ">", ml.LINKTYPE_LINUX_SLL, tsresol=9)
    interface(w, ">", ml.LINKTYPE_USER0, tsresol=3)
    w.packet(">", 0, register[0] * 1000, ml.to_cooked(register[1]))
    w.packet(">", 1, register[0] // 1000, b"not decoded")
    w.block(0x00000BAD, struct.pack(">I", 32473) + b"custom", ">")
    return bytes(w.out)


def one_link():
    w = ml.Writer()
    w.section("<")
    interface(w, "<", ml.LINKTYPE_ETHERNET, tsresol=9)
    for t, frame in fixture("options-udp4"):
        w.packet("<", 0, t * 1000, frame)
    return bytes(w.out)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    fixtures = {name: os.path.join(TOP, "tests", "fixtures", "pcap", "%s.pcap" % f)
                for name, f in (("answered", "answered-udp4"), ("busy", "busy-udp6"),
                                ("options", "options-udp4"), ("cancelled", "cancelled-tcp4"))}
    for name, data in (("multilink.pcapng", ml.build(fixtures)), ("blocks.pcapng", blocks()),
                       ("one-link.pcapng", one_link())):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
