/* pcap_same: the in-place reader of classic pcap files (capture_pcap) against libpcap itself,
 * record by record. capture_pcap.h promises that both give the same frames and end a file the
 * same way; the unit test checks it on crafted files, the file fuzzer on anything. */
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
 * *in_place (may be NULL) is set to whether capture_pcap read the file in place. */
int pcap_same_as_libpcap(const char *path, bool *in_place, char *why, size_t whylen);

#endif
