/* capture_bpf: live capture through the sipscope socket filter (bpf/sipscope.bpf.c). It loads the
 * program, fills its SIP port map, attaches it to AF_PACKET sockets and turns ring buffer records
 * into capture frames. It does not decode frames and does not reassemble IP fragments.
 *
 * Privileges: loading needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN; without CAP_PERFMON the
 * verifier's Spectre hardening makes the program too complex to load), the packet sockets need
 * CAP_NET_RAW. CAP_NET_ADMIN is not needed (a socket filter is not a "networking admin" program
 * type, and promiscuous mode is a membership of the packet socket).
 * Only Ethernet-framed interfaces are supported (lo included, which frames with zero MACs). */
#ifndef SIPSCOPE_CAPTURE_BPF_H
#define SIPSCOPE_CAPTURE_BPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture.h"
#include "portset.h"

#define CAPTURE_BPF_MAX_IFACES 64      /* interfaces in one configuration */
/* Longest sleep between two looks at the ring buffer while frames come. Past the backlog the
 * program wakes the consumer itself, so this bounds only how long a trickle of traffic waits:
 * 50 ms is nothing to a metric, while each wakeup costs some 70 us of a VM's CPU (at 10 ms, 0.7%
 * of a core). With no frame for longer, no look is needed (capture_bpf_fd). */
#define CAPTURE_BPF_POLL_MS 50
#define CAPTURE_BPF_DEFAULT_RINGBUF (16u << 20)
/* Snap lengths (capture_bpf_config.snaplen), the program's (bpf/sipscope_event.h): the largest,
 * the default, holds a whole loopback or GRO frame (up to 14 + 65,536 bytes on lo, whose MTU
 * is 65,536; 64 KiB - 1 cut it) and a BIG TCP one up to 256 KiB. */
#define CAPTURE_BPF_MIN_SNAPLEN 128
#define CAPTURE_BPF_MAX_SNAPLEN (256u * 1024)
/* Frames per capture_bpf_poll call. The caller's housekeeping (clock, kernel counters,
 * signals) waits for the call, and rules can make one frame cost up to their budget (5 ms by
 * default): 256 such frames return within about a second, while a poll per 256 frames costs
 * nothing next to them. */
#define CAPTURE_BPF_DEFAULT_BUDGET 256
/* The iface of a frame from an interface the capture does not know, and of the kernel counts
 * of the interfaces the counters map had no room for; capture_bpf_iface_name calls it "other". */
#define CAPTURE_BPF_IFACE_UNKNOWN UINT32_MAX
#define CAPTURE_BPF_IFINDEX_OTHER 0 /* the ifindex of those counts (no interface has it) */
#define CAPTURE_BPF_MAX_HOLD 63 /* capture_bpf_hold's frames at most */

struct capture_bpf;

struct capture_bpf_config {
    /* Interface names, borrowed for the duration of capture_bpf_open. None (n_ifaces == 0), or
     * the single name "any", captures on all interfaces of the network namespace through one
     * unbound socket; otherwise one socket is bound to each named interface. As with
     * tcpdump -i any, a packet that crosses two devices (a VLAN or bond device and its parent, a
     * veth pair inside one namespace) is captured once per device. A named interface that is
     * deleted later stops delivering until capture_bpf_follow binds its socket to a new
     * interface of that name. */
    const char *const *ifaces;
    size_t n_ifaces;
    /* SIP ports (portset_parse), matched against the source or the destination port; at least
     * one. Borrowed for the duration of capture_bpf_open. */
    const struct portset *ports;
    uint32_t snaplen;        /* bytes kept per frame; 0: CAPTURE_BPF_MAX_SNAPLEN; else
                              * CAPTURE_BPF_MIN_SNAPLEN..CAPTURE_BPF_MAX_SNAPLEN */
    uint32_t ringbuf_size;   /* bytes; 0: CAPTURE_BPF_DEFAULT_RINGBUF; a power of two >= a page */
    uint32_t wakeup_backlog; /* bytes waiting before the consumer is woken; 0: 256 KiB (at most
                              * a quarter of the ring) */
    uint32_t poll_budget;    /* frames per capture_bpf_poll at most; 0: default */
    /* Interfaces the kernel counters hold, "other" included; 0: SIPSCOPE_DEFAULT_COUNTED_IFACES.
     * Raised to the named interfaces and "other" if smaller. */
    uint32_t counted_ifaces;
    unsigned decap;          /* DECODE_VXLAN | DECODE_GRE: tunnels whose inner SIP ports are
                              * matched; DECODE_HEP: HEP packets are all taken */
    /* Each named interface in promiscuous mode while its socket is open, for a mirror (SPAN)
     * port, whose frames are addressed to other hosts: a NIC drops them otherwise. Taken as a
     * membership of the socket (PACKET_MR_PROMISC), which the kernel counts and drops with the
     * socket: no exit, not even SIGKILL, leaves an interface promiscuous, and an administrator's
     * own setting is left alone. Refused with "any", which names no interface. */
    bool promisc;
};

/* Loads the program and attaches it. Returns the capture, or NULL with errno set and a one-line
 * reason in err[errlen]: a missing capability (named), an unknown or non-Ethernet interface, a
 * kernel without BPF ring buffers, a rejected configuration. Free with capture_bpf_free. */
struct capture_bpf *capture_bpf_open(const struct capture_bpf_config *cfg, char *err,
                                     size_t errlen);

/* Called once per frame. frame->data points into the ring buffer and is valid until fn returns, or
 * longer with capture_bpf_hold. frame->link is CAPTURE_LINK_ETHERNET; frame->dir is the packet
 * type (loopback's outgoing copies never appear: the filter drops them); frame->iface is the
 * position of the interface in cfg->ifaces, or, when capturing on all interfaces, the kernel
 * ifindex (which capture_bpf_iface_name turns into a name). frame->ts_ns is wall-clock time. A
 * VLAN tag the kernel had stripped is back in the frame, after the MAC addresses. */
typedef void (*capture_bpf_frame_fn)(void *ctx, const struct capture_frame *frame);

/* Called with the poll's ctx once fn may no longer read any frame it was given. */
typedef void (*capture_bpf_flush_fn)(void *ctx);

/* Lets fn keep reading the frames it was given after it returns: a frame's bytes then stay in
 * the ring buffer until `frames` more frames have been delivered, and at most until flush
 * returns. capture_bpf_poll calls flush before it returns whenever it delivered frames. The
 * kernel cannot reuse the room of the frames held meanwhile. frames 0 (the default): valid
 * until fn returns, no flush. Returns 0, or -EINVAL past CAPTURE_BPF_MAX_HOLD or without a
 * flush. */
int capture_bpf_hold(struct capture_bpf *cap, uint32_t frames, capture_bpf_flush_fn flush);

/* Delivers waiting frames to fn. When none are waiting it waits up to timeout_ms (0: do not
 * wait; -1: until a frame comes), looking at the ring buffer every CAPTURE_BPF_POLL_MS, and
 * returns as soon as a look finds frames. Returns the number of frames delivered, at most the
 * poll budget (when it equals the budget, more may be waiting: call again with timeout 0), or
 * -EINTR when a signal interrupted the wait, or another -errno. */
int capture_bpf_poll(struct capture_bpf *cap, int timeout_ms, capture_bpf_frame_fn fn, void *ctx);

/* A file descriptor for the caller's epoll set. It becomes readable once the backlog passes
 * cfg->wakeup_backlog, and for the first frame after a quiet spell (SIPSCOPE_DEFAULT_QUIET_NS,
 * shorter than CAPTURE_BPF_POLL_MS), not for every frame: the program avoids a wakeup per
 * packet. So a caller that sleeps on it must call capture_bpf_poll at least every
 * CAPTURE_BPF_POLL_MS while frames come; once a call delivered none and CAPTURE_BPF_POLL_MS
 * have passed since the last call that delivered some, it may sleep until the descriptor wakes
 * it: every frame since came after a spell longer than the quiet one. Owned by the capture. */
int capture_bpf_fd(const struct capture_bpf *cap);

/* A file descriptor for the caller's poll set that becomes readable when an interface is
 * created, deleted, renamed or changes state (the kernel's link notifications), so that the
 * caller reads the interfaces' states and calls capture_bpf_follow at once rather than at its
 * next tick: an interface created again stays unbound until then, and what crosses it meanwhile
 * is not captured, nor counted anywhere. -1 with "any" (its one socket takes every interface)
 * or when the kernel refused the subscription (the caller's tick still follows). Owned by the
 * capture; empty it with capture_bpf_link_drain each time it is readable. */
int capture_bpf_link_fd(const struct capture_bpf *cap);

/* Reads and discards every notification waiting on capture_bpf_link_fd (their content is not
 * needed: the caller reads each named interface's state itself, and an overrun of the socket's
 * queue only means there were more). Returns true when there was at least one, or an overrun. */
bool capture_bpf_link_drain(struct capture_bpf *cap);

/* Kernel counters of one interface, summed over CPUs. */
struct capture_bpf_iface_stats {
    uint32_t ifindex;
    uint32_t iface;        /* numbered like capture_frame.iface */
    uint64_t seen;         /* packets the filter ran on (loopback's outgoing copies excluded) */
    uint64_t matched;      /* selected: a SIP port, or an IP fragment that may carry SIP */
    uint64_t ringbuf_full; /* selected but dropped: the ring buffer had no room */
    uint64_t truncated;    /* delivered cut at the snap length */
};

/* Reads the kernel counters into out[max], one entry per interface with counters, sorted by
 * ifindex. Bound interfaces are always present (zeros until traffic). Interfaces seen once the
 * map was full are counted together under ifindex CAPTURE_BPF_IFINDEX_OTHER (iface
 * CAPTURE_BPF_IFACE_UNKNOWN), present once it counted something. With "any", once the map is
 * half full, the keys of interfaces that no longer exist are taken out of it (a container
 * host creates interfaces without end): their last counts are in this call's entries, and
 * later calls leave them out. Returns the number of interfaces found, which may exceed max
 * (only max are written), or -errno. */
int capture_bpf_counters(struct capture_bpf *cap, struct capture_bpf_iface_stats *out, size_t max);

/* What the kernel counted since the previous call (since the capture opened, on the first),
 * per interface: capture_bpf_counters's entries, matched to the previous call's by iface (which
 * a named interface keeps when it is created again), sorted by iface. An interface whose counts
 * went back (its keys taken out, its index given to a new one) counts from zero. Sets *n and
 * returns the capture's own array, valid until the next call; NULL with *n = 0 on failure. */
const struct capture_bpf_iface_stats *capture_bpf_counter_deltas(struct capture_bpf *cap,
                                                                 size_t *n);

/* Where a named interface stands for its capture. */
enum capture_iface_state {
    CAPTURE_IFACE_UP,      /* up with a carrier (IFF_UP and IFF_RUNNING): packets can come */
    CAPTURE_IFACE_DOWN,    /* still there, but down or without a carrier: none come until it
                            * is up again, and then the capture resumes by itself */
    CAPTURE_IFACE_REMOVED, /* deleted (or another interface has its name now): its socket is
                            * bound to an index that is no longer that name's, until
                            * capture_bpf_follow binds it to the name's new interface */
};
/* An interface renamed away, while no interface has its old name, is still the one captured:
 * its socket is bound to its index, its packets are counted under the old name, and its state
 * is read under its new name (up or down, not removed), until an interface takes the old name
 * and is followed. */

/* The state of each interface named at open into out[max] (out[i] is frame iface i), read from
 * the kernel now (an ioctl per interface, no privilege needed). Returns how many were named (0
 * with all interfaces: "any" follows every interface by itself), or -errno. */
int capture_bpf_iface_states(const struct capture_bpf *cap, enum capture_iface_state *out,
                             size_t max);

/* Follows named interface i (frame iface i) to the interface that has its name now, when that
 * is another one than the socket is bound to: deleted and created again (a VPN or a container
 * restarting, a VLAN set up again), or renamed and replaced. Binds the interface's socket to it;
 * that needs no capability, so it works after service_drop_privileges. Its kernel counters go on
 * from where they were. Returns 1 when it bound the socket anew, 0 when there was nothing to do
 * (no interface of that name, or the same one), or -errno with err set: a link type the program
 * does not parse, the name now on another captured interface, or the bind failed. */
int capture_bpf_follow(struct capture_bpf *cap, size_t i, char *err, size_t errlen);

/* Ring buffer records that were malformed and skipped (never expected; a non-zero value is a bug
 * in the program or a kernel quirk). */
uint64_t capture_bpf_bad_records(const struct capture_bpf *cap);

/* Writes the name of frame iface number `iface` into buf[len]: the configured name, or with all
 * interfaces the kernel's current name for that ifindex. Returns 0, -ENOENT when unknown (e.g.
 * the interface is gone), -ENOSPC when buf is too small. */
int capture_bpf_iface_name(const struct capture_bpf *cap, uint32_t iface, char *buf, size_t len);

/* The current time on the frames' clock (monotonic time plus the offset taken at open), for the
 * engine's idle ticks: a tick never runs ahead of the packets it is interleaved with. */
uint64_t capture_bpf_now_ns(const struct capture_bpf *cap);

/* How far the wall clock has been stepped since the capture opened: the offset of the real-time
 * clock from the monotonic one now, minus the one taken at open. Frames keep the offset taken at
 * open, so that a step (NTP setting a clock that was wrong at boot, a VM resumed from a pause)
 * never moves the engine's clock, whose timers would all fire at once; what writes wall times
 * adds this. NTP's slewing moves both clocks alike: the value only changes with a step (within
 * a microsecond or so of sampling noise). */
int64_t capture_bpf_clock_step(const struct capture_bpf *cap);

/* Detaches and frees everything: sockets, ring buffer, program and maps. NULL is accepted. */
void capture_bpf_free(struct capture_bpf *cap);

#endif
