/* capture_pcap: reads frames from a pcap or pcapng file (offline input): classic pcap in place
 * from a mapping, pcapng natively (in place when mapped, else through one read buffer), and the
 * rest through libpcap. It does not decode; it only reports frames, each with its link type,
 * and how the file ended. */
#ifndef SIPSCOPE_CAPTURE_PCAP_H
#define SIPSCOPE_CAPTURE_PCAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture.h"

struct capture_pcap;

/* The largest pcapng block read (libpcap's limit too): a longer one is refused (-EBADMSG)
 * before it is read, so that reading standard input needs at most this much memory. */
#define CAPTURE_PCAPNG_MAX_BLOCK (16u << 20)

/* The most interfaces a pcapng section may describe; one more is refused (-EBADMSG). */
#define CAPTURE_PCAPNG_MAX_IFACES 65536u

/* Opens path ("-" for standard input; a named pipe is opened once and read as it comes).
 * Returns the reader, or NULL with a one-line reason in err[errlen] (missing file, not a
 * capture, a classic pcap file of an unsupported link type, a pcapng file whose first section
 * header is malformed). A pcapng interface of an unsupported link type is no reason: its frames
 * come out with that link type (see capture_frame.link), for decode to count and skip. The
 * caller frees the reader with capture_pcap_free. */
struct capture_pcap *capture_pcap_open(const char *path, char *err, size_t errlen);

/* Reads the next frame into *frame; frame->data stays valid until the next call.
 * Returns 1 for a frame, 0 at a clean end of file, -EIO when the file ends inside a record or
 * block (truncated capture), -EBADMSG for a record or block that is malformed or refused (a
 * block whose length fields disagree or are not a multiple of 4, a packet of an interface the
 * section never described...) or a read error, -ENOMEM when memory for the interfaces or the
 * read buffer runs out; then err[errlen] holds the reason, in libpcap's words where libpcap has
 * them. After an error, further calls return 0.
 *
 * pcapng: every section (each Section Header Block, in either byte order) describes its own
 * interfaces; each frame carries its interface's link type, mapped as libpcap maps the link
 * type of a file, or, for a type sipscope does not decode, the LINKTYPE_ value as written.
 * Times follow the interface's if_tsresol (a power of 10 or of 2; microseconds without it) and
 * if_tsoffset. A Simple Packet Block has no time: its frame gets the time of the frame before it
 * in the file (0 for the first), so that the engine's clock neither stops nor steps back. Its
 * captured length is its original length, at most the first interface's snap length (libpcap's
 * maximum, 262144, when that is 0). Blocks other than packets, interfaces and sections (name
 * resolution, statistics, secrets, custom) are skipped by their length. */
int capture_pcap_next(struct capture_pcap *cap, struct capture_frame *frame, char *err,
                      size_t errlen);

/* True when the file is read in place (a classic pcap or pcapng file mapped into memory, no
 * copy per record): then every frame's data stays valid until capture_pcap_free, not only until
 * the next call. False when it is read through a buffer or by libpcap (standard input, a pipe,
 * rare pcap variants). Either way the frames and the errors are the same. */
bool capture_pcap_in_place(const struct capture_pcap *cap);

/* Records read so far that held more bytes than the file header's snap length, cut to it as
 * libpcap cuts them, with that snap length in *snaplen: the file has the bytes, its header is
 * wrong (a writer's error), and a capture with a larger snap length would not help. Only the
 * in-place classic pcap reader can tell: 0 for pcapng (a longer packet is read whole there) and
 * for what libpcap reads (standard input, a pipe, rare variants), where such a record looks
 * like one cut when captured. */
uint64_t capture_pcap_overlong(const struct capture_pcap *cap, uint32_t *snaplen);

/* Closes the file (never standard input itself). NULL is accepted. */
void capture_pcap_free(struct capture_pcap *cap);

#endif
