/* capture_pcap: reads frames from a pcap or pcapng file (offline input): classic pcap in place
 * from a mapping, the rest through libpcap. It does not decode; it only reports frames, the link
 * type and how the file ended. */
#ifndef SIPSCOPE_CAPTURE_PCAP_H
#define SIPSCOPE_CAPTURE_PCAP_H

#include <stdbool.h>
#include <stddef.h>

#include "capture.h"

struct capture_pcap;

/* Opens path ("-" for standard input). Returns the reader, or NULL with a one-line reason in
 * err[errlen] (missing file, not a capture, unsupported link type). The caller frees it with
 * capture_pcap_free. */
struct capture_pcap *capture_pcap_open(const char *path, char *err, size_t errlen);

/* Reads the next frame into *frame; frame->data stays valid until the next call.
 * Returns 1 for a frame, 0 at a clean end of file, -EIO when the file ends inside a record
 * (truncated capture), -EBADMSG for a record or block libpcap refuses (or a read error); then
 * err[errlen] holds libpcap's reason. */
int capture_pcap_next(struct capture_pcap *cap, struct capture_frame *frame, char *err,
                      size_t errlen);

/* The link type of the file (enum capture_link value). */
int capture_pcap_link(const struct capture_pcap *cap);

/* True when the file is read in place (a classic pcap file mapped into memory, no copy per
 * record), false when libpcap reads it (pcapng, standard input, rare pcap variants). Both give
 * the same frames and the same errors. */
bool capture_pcap_in_place(const struct capture_pcap *cap);

/* Closes the file. NULL is accepted. */
void capture_pcap_free(struct capture_pcap *cap);

#endif
