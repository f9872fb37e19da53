/* pcap_same: capture_pcap against libpcap itself, record by record. capture_pcap.h promises
 * that its in-place reader of classic pcap files gives the frames libpcap gives and ends a file
 * the same way, and its pcapng reader too wherever libpcap reads the file; the unit test checks
 * it on crafted files, the file fuzzer on anything. */
#ifndef SIPSCOPE_TEST_PCAP_SAME_H
#define SIPSCOPE_TEST_PCAP_SAME_H

#include <stdbool.h>
#include <stddef.h>

/* Reads path with capture_pcap and with libpcap directly until the end or the first
 * difference: the frames (time, lengths, bytes), how the file ends (clean, -EIO or -EBADMSG)
 * and the error text. Returns the number of frames both gave alike; why[whylen] is empty when
 * the two agreed to the end, else it says where and how they differ. When a reader cannot open
 * the file, returns -1 (capture_pcap could not: libpcap could not either, or the link type is
 * one sipscope does not decode) or -2 (libpcap alone could not), with why saying so.
 * *in_place (may be NULL) is set to whether capture_pcap read the file in place.
 *
 * pcapng: capture_pcap reads more than libpcap 1.10 does, and differs from it on purpose in a
 * few places, which are no difference here: libpcap cannot open the file (it has a packet
 * before its first interface, or none; another minor version) while capture_pcap can: -2 with
 * why empty; libpcap stops (interfaces of several link types or snap lengths, a packet longer
 * than its snap length, a section in the other byte order than the first) where capture_pcap
 * reads on: the frames before count; a Simple Packet Block's time (capture_pcap gives the time
 * of the frame before), or a resolution finer than 2^-34 s (libpcap's 64-bit scaling
 * overflows); the bytes and original length of link types decode does not handle, or of Linux
 * cooked frames in a section of the other byte order (libpcap rewrites parts of those headers:
 * USB, NFLOG, CAN). */
int pcap_same_as_libpcap(const char *path, bool *in_place, char *why, size_t whylen);

#endif
