/* capture_pcapng: the pcapng reader behind capture_pcap (capture_pcap.h states what it does for
 * callers). Internal: only capture_pcap.c, which opens the file and picks the reader, uses it. */
#ifndef SIPSCOPE_CAPTURE_PCAPNG_H
#define SIPSCOPE_CAPTURE_PCAPNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture_pcap.h"

/* Starts a pcapng reader whose first four bytes (the block type of a Section Header Block) are
 * known: reads that first block. cap is either mapped (cap->map) or reads cap->fd through
 * cap->buf. Returns 0, or -1 with the reason in err. */
int capture_pcapng_start(struct capture_pcap *cap, const char *path, char *err, size_t errlen);

/* A pcapng reader over fd without a mapping, whose first npre bytes, already read, are pre.
 * Returns the reader (which closes fd when own), or NULL with the reason in err (fd then closed
 * when own). */
struct capture_pcap *capture_pcapng_open_stream(const char *path, int fd, bool own,
                                                const uint8_t *pre, size_t npre, char *err,
                                                size_t errlen);

/* The next frame of a started pcapng reader, as capture_pcap_next returns it. */
int capture_pcapng_next(struct capture_pcap *cap, struct capture_frame *frame, char *err,
                        size_t errlen);

#endif
