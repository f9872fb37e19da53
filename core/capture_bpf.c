/* capture_bpf: loads the sipscope socket filter, attaches it to AF_PACKET sockets and consumes its
 * ring buffer. The only file that includes the BPF skeleton. It does not decode frames. */
#include "capture_bpf.h"

#include <errno.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/capability.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf_ring.h"
#include "decode.h"
#include "log.h"
#include "sipscope_event.h"
#include "sipscope.skel.h"

#define MODULE "capture_bpf"
#define LOOPBACK_IFINDEX 1 /* lo has index 1 in every network namespace */

struct capture_bpf {
    struct sipscope_bpf *skel;
    struct bpf_ring *ring;
    bool any;     /* one unbound socket: frame iface is the ifindex */
    bool promisc; /* capture_bpf_config.promisc */
    size_t n_ifaces;
    int socks[CAPTURE_BPF_MAX_IFACES];
    size_t n_socks;
    int link_fd; /* rtnetlink link notifications (capture_bpf_link_fd); -1 when none */
    uint32_t ifindex[CAPTURE_BPF_MAX_IFACES];
    char names[CAPTURE_BPF_MAX_IFACES][IF_NAMESIZE];
    /* Named interfaces that were deleted and created again (capture_bpf_follow): the index
     * before (frames of it may still be in the ring), and the kernel counts of the indexes
     * before, by counter kind, so that the interface's counters never go back. */
    uint32_t prev_ifindex[CAPTURE_BPF_MAX_IFACES];
    uint64_t carried[CAPTURE_BPF_MAX_IFACES][SIPSCOPE_CNT_KINDS];
    int64_t mono_to_real_ns;
    uint32_t budget;

    int ncpus;
    uint64_t *percpu;                    /* one counter value per possible CPU */
    struct capture_bpf_iface_stats *agg; /* counter totals, agg_cap entries */
    size_t agg_cap;
    uint32_t counted; /* interfaces the counters map holds (capture_bpf_config.counted_ifaces) */
    /* capture_bpf_counter_deltas: the totals of its last call (n_last, sorted by iface), this
     * call's totals and the deltas it returns; agg_cap entries each. */
    struct capture_bpf_iface_stats *last, *totals, *deltas;
    size_t n_last;

    /* capture_bpf_hold: frames the callback still reads after it returns, and its flush. */
    uint32_t hold;
    capture_bpf_flush_fn flush;
    uint64_t ends[CAPTURE_BPF_MAX_HOLD + 1]; /* ring positions after recent frames, by number */

    uint64_t bad_records;
    bool bad_logged;
};

/* ---- port list ---------------------------------------------------------------------------- */


/* ---- opening ------------------------------------------------------------------------------ */

__attribute__((format(printf, 2, 0))) static int libbpf_log(enum libbpf_print_level level,
                                                            const char *fmt, va_list ap)
{
    va_list ap2;
    char *msg;
    int n;

    /* libbpf's debug stream is a trace of every step; warnings carry the verifier log, which
     * can be long: size the buffer to it. */
    if (level == LIBBPF_DEBUG)
        return 0;
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0 || !(msg = malloc((size_t)n + 1)))
        return 0;
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_msg(level == LIBBPF_WARN ? LOG_WARN : LOG_DEBUG, MODULE, "libbpf: %s", msg);
    free(msg);
    return 0;
}

/* Names the capabilities that are missing from the effective set, so that the error says which
 * one to grant rather than a bare EPERM, or the verifier's "too complex", from deep inside
 * libbpf. CAP_PERFMON because without it the verifier also walks the speculative path of every
 * branch (Spectre v1 hardening), and the program's parsers then pass its limit of 8,192 pending
 * branches. CAP_SYS_ADMIN stands for CAP_BPF and CAP_PERFMON (before Linux 5.8, the only one).
 * Returns 0 when all are there or when the set cannot be read (the later calls then report
 * whatever fails). */
static int check_capabilities(char *err, size_t errlen)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    static const struct {
        int cap;
        const char *text;
    } needed[] = {
        {CAP_BPF, "CAP_BPF (to load the BPF program)"},
        {CAP_PERFMON, "CAP_PERFMON (for the kernel to verify the program as a trusted one)"},
        {CAP_NET_RAW, "CAP_NET_RAW (to open packet sockets)"},
    };
    const char *missing[sizeof(needed) / sizeof(needed[0])];
    size_t n = 0, len;
    uint64_t eff;

    if (syscall(SYS_capget, &hdr, data) != 0)
        return 0;
    eff = (uint64_t)data[0].effective | (uint64_t)data[1].effective << 32;
    for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
        bool admin_will_do = needed[i].cap != CAP_NET_RAW && (eff >> CAP_SYS_ADMIN & 1);
        if (!(eff >> needed[i].cap & 1) && !admin_will_do)
            missing[n++] = needed[i].text;
    }
    if (n == 0)
        return 0;
    len = (size_t)snprintf(err, errlen, "missing capabilit%s ", n == 1 ? "y" : "ies");
    for (size_t i = 0; i < n && len < errlen; i++)
        len += (size_t)snprintf(err + len, errlen - len, "%s%s",
                                i == 0       ? ""
                                : i + 1 == n ? " and "
                                             : ", ",
                                missing[i]);
    if (len < errlen)
        snprintf(err + len, errlen - len, "; run as root or grant %s", n == 1 ? "it" : "them");
    return -EPERM;
}

/* Finds an interface and checks that the program parses its frames: Ethernet (lo's too, with
 * zero addresses), or none at all (tun, WireGuard: frames that start with their IP header). */
static int resolve_iface(const char *name, uint32_t *ifindex, char *err, size_t errlen)
{
    struct ifreq ifr;
    int fd, ret = 0;

    if (strlen(name) >= IF_NAMESIZE || (*ifindex = if_nametoindex(name)) == 0) {
        snprintf(err, errlen, "unknown interface '%s'", name);
        return -ENODEV;
    }
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ret = -errno;
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return ret;
    }
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, name, strlen(name));
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) {
        ret = -errno;
        snprintf(err, errlen, "interface '%s': %s", name, strerror(errno));
    } else if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER &&
               ifr.ifr_hwaddr.sa_family != ARPHRD_LOOPBACK &&
               ifr.ifr_hwaddr.sa_family != ARPHRD_NONE) {
        ret = -EPROTONOSUPPORT;
        snprintf(err, errlen,
                 "interface '%s' has link type %u; only Ethernet interfaces and those without "
                 "a link header (tun, WireGuard) are supported",
                 name, ifr.ifr_hwaddr.sa_family);
    }
    close(fd);
    return ret;
}

_Static_assert(CAPTURE_BPF_MIN_SNAPLEN == SIPSCOPE_MIN_SNAPLEN &&
                   CAPTURE_BPF_MAX_SNAPLEN == SIPSCOPE_MAX_SNAPLEN &&
                   SIPSCOPE_DEFAULT_SNAPLEN == SIPSCOPE_MAX_SNAPLEN,
               "the snap lengths of capture_bpf.h are the program's");

static int check_config(const struct capture_bpf_config *cfg, char *err, size_t errlen)
{
    long page = sysconf(_SC_PAGESIZE);
    uint32_t rb = cfg->ringbuf_size;

    if (!cfg->ports || cfg->ports->count == 0 || portset_has(cfg->ports, 0)) {
        snprintf(err, errlen, "no SIP ports configured");
        return -EINVAL;
    }
    if (cfg->snaplen != 0 &&
        (cfg->snaplen < SIPSCOPE_MIN_SNAPLEN || cfg->snaplen > SIPSCOPE_MAX_SNAPLEN)) {
        snprintf(err, errlen, "snap length %u is outside %u..%u", cfg->snaplen,
                 SIPSCOPE_MIN_SNAPLEN, SIPSCOPE_MAX_SNAPLEN);
        return -EINVAL;
    }
    /* The kernel requires a power of two and a whole number of pages. */
    if (rb != 0 && ((rb & (rb - 1)) != 0 || rb < (uint32_t)page)) {
        snprintf(err, errlen, "ring buffer size %u is not a power of two of at least %ld bytes", rb,
                 page);
        return -EINVAL;
    }
    if (cfg->n_ifaces > CAPTURE_BPF_MAX_IFACES) {
        snprintf(err, errlen, "more than %d interfaces", CAPTURE_BPF_MAX_IFACES);
        return -E2BIG;
    }
    return 0;
}

static int set_interfaces(struct capture_bpf *cap, const struct capture_bpf_config *cfg, char *err,
                          size_t errlen)
{
    int ret;

    if (cfg->n_ifaces == 0 || (cfg->n_ifaces == 1 && strcmp(cfg->ifaces[0], "any") == 0)) {
        if (cfg->promisc) {
            snprintf(err, errlen, "promiscuous mode needs named interfaces: 'any' names none");
            return -EINVAL;
        }
        cap->any = true;
        return 0;
    }
    for (size_t i = 0; i < cfg->n_ifaces; i++) {
        const char *name = cfg->ifaces[i];

        if (strcmp(name, "any") == 0) {
            snprintf(err, errlen, "'any' cannot be combined with other interfaces");
            return -EINVAL;
        }
        ret = resolve_iface(name, &cap->ifindex[i], err, errlen);
        if (ret)
            return ret;
        for (size_t j = 0; j < i; j++) {
            if (cap->ifindex[j] == cap->ifindex[i]) {
                snprintf(err, errlen, "interface '%s' is listed twice", name);
                return -EINVAL;
            }
        }
        memcpy(cap->names[i], name, strlen(name) + 1);
        cap->n_ifaces = i + 1;
    }
    return 0;
}

static int fill_ports(struct capture_bpf *cap, const struct capture_bpf_config *cfg)
{
    int fd = bpf_map__fd(cap->skel->maps.sip_ports);
    uint8_t one = 1;

    for (uint32_t p = 1; p <= 65535; p++) {
        uint16_t port = (uint16_t)p;
        int ret;
        if (!portset_has(cfg->ports, port))
            continue;
        ret = bpf_map_update_elem(fd, &port, &one, BPF_ANY);
        if (ret != 0)
            return ret;
    }
    return 0;
}

/* A bound interface gets its counter keys when it is bound, so that it shows zeros before any
 * traffic and the program only ever finds them. */
static int precreate_counters(struct capture_bpf *cap, uint32_t ifindex)
{
    int fd = bpf_map__fd(cap->skel->maps.counters);

    memset(cap->percpu, 0, sizeof(uint64_t) * (size_t)cap->ncpus);
    for (uint32_t k = 0; k < SIPSCOPE_CNT_KINDS; k++) {
        struct sipscope_counter_key key = {.ifindex = ifindex, .kind = k};
        int ret = bpf_map_update_elem(fd, &key, cap->percpu, BPF_NOEXIST);
        if (ret != 0 && ret != -EEXIST)
            return ret;
    }
    return 0;
}

static int load_program(struct capture_bpf *cap, const struct capture_bpf_config *cfg, char *err,
                        size_t errlen)
{
    int ret;

    ret = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL);
    if (ret == 0) {
        snprintf(err, errlen,
                 "this kernel has no BPF ring buffer (BPF_MAP_TYPE_RINGBUF needs "
                 "Linux 5.8 or later)");
        return -EOPNOTSUPP;
    }
    /* ret < 0: the probe itself failed; loading below will say why. */

    cap->skel = sipscope_bpf__open();
    if (!cap->skel) {
        ret = -errno;
        snprintf(err, errlen, "opening the BPF object failed: %s", strerror(-ret));
        return ret;
    }
    cap->skel->rodata->snaplen = cfg->snaplen ? cfg->snaplen : SIPSCOPE_DEFAULT_SNAPLEN;
    _Static_assert(SIPSCOPE_DECAP_VXLAN == DECODE_VXLAN && SIPSCOPE_DECAP_GRE == DECODE_GRE &&
                       SIPSCOPE_DECAP_HEP == DECODE_HEP,
                   "the program and decode agree on what --decapsulate opens");
    cap->skel->rodata->decap = cfg->decap & (DECODE_VXLAN | DECODE_GRE | DECODE_HEP);
    uint32_t ring = cfg->ringbuf_size ? cfg->ringbuf_size : CAPTURE_BPF_DEFAULT_RINGBUF;
    uint64_t backlog = cfg->wakeup_backlog ? cfg->wakeup_backlog : SIPSCOPE_DEFAULT_WAKEUP_BACKLOG;
    /* A small ring must wake the consumer while it still has room: at a quarter full at most. */
    cap->skel->rodata->wakeup_backlog = backlog < ring / 4 ? backlog : ring / 4;
    _Static_assert(CAPTURE_BPF_IFINDEX_OTHER == SIPSCOPE_IFINDEX_OTHER, "one \"other\" ifindex");
    /* The program's time of the last frame lags it by up to a millisecond: the quiet spell that
     * wakes must stay that much under the consumer's own (capture_bpf_fd). */
    _Static_assert(SIPSCOPE_DEFAULT_QUIET_NS + 1000000 <= CAPTURE_BPF_POLL_MS * 1000000ULL,
                   "a consumer quiet for CAPTURE_BPF_POLL_MS is woken by the next frame");
    if ((ret = bpf_map__set_max_entries(cap->skel->maps.counters,
                                        cap->counted * SIPSCOPE_CNT_KINDS)) ||
        (ret = bpf_map__set_max_entries(cap->skel->maps.stage, (uint32_t)cap->ncpus)) ||
        (ret = bpf_map__set_max_entries(cap->skel->maps.events, ring)) ||
        (ret = bpf_map__set_max_entries(cap->skel->maps.sip_ports, cfg->ports->count))) {
        snprintf(err, errlen, "sizing the BPF maps failed: %s", strerror(-ret));
        return ret;
    }
    ret = sipscope_bpf__load(cap->skel);
    if (ret) {
        if (ret == -EPERM)
            snprintf(err, errlen,
                     "loading the BPF program was refused (EPERM): it needs "
                     "CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN before Linux 5.8");
        else
            snprintf(err, errlen, "loading the BPF program failed: %s (libbpf logged why)",
                     strerror(-ret));
        return ret;
    }
    ret = fill_ports(cap, cfg);
    if (ret == 0)
        ret = precreate_counters(cap, SIPSCOPE_IFINDEX_OTHER);
    for (size_t i = 0; i < cap->n_ifaces && ret == 0; i++)
        ret = precreate_counters(cap, cap->ifindex[i]);
    if (ret)
        snprintf(err, errlen, "filling the BPF maps failed: %s", strerror(-ret));
    return ret;
}

/* Adds (or drops) the socket's promiscuous membership of interface ifindex. The kernel keeps
 * a count per interface, so the membership ends with the socket, or with the interface. */
static int set_promisc(int fd, uint32_t ifindex, bool on)
{
    struct packet_mreq mr;

    memset(&mr, 0, sizeof(mr));
    mr.mr_ifindex = (int)ifindex;
    mr.mr_type = PACKET_MR_PROMISC;
    if (setsockopt(fd, SOL_PACKET, on ? PACKET_ADD_MEMBERSHIP : PACKET_DROP_MEMBERSHIP, &mr,
                   sizeof(mr)) != 0)
        return -errno;
    return 0;
}

/* Opens one packet socket. It is created listening to no protocol, so nothing queues before the
 * filter is attached; bind then selects ETH_P_ALL and the interface (0: all interfaces). The
 * filter returns 0 for every packet, so the socket's own queue stays empty for its whole life. */
static int open_socket(struct capture_bpf *cap, uint32_t ifindex, const char *name, char *err,
                       size_t errlen)
{
    int prog = bpf_program__fd(cap->skel->progs.sipscope_filter);
    struct sockaddr_ll sll;
    int fd, ret;

    fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        ret = -errno;
        if (errno == EPERM)
            snprintf(err, errlen, "opening a packet socket was refused: it needs CAP_NET_RAW");
        else
            snprintf(err, errlen, "packet socket: %s", strerror(errno));
        return ret;
    }
    cap->socks[cap->n_socks++] = fd;
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &prog, sizeof(prog)) != 0) {
        ret = -errno;
        snprintf(err, errlen, "attaching the BPF program: %s", strerror(errno));
        return ret;
    }
    /* On lo the outgoing copy of each packet is a duplicate of the received one. The filter
     * drops it, but only after the kernel has cloned the packet for this socket: a socket bound
     * to lo asks not to be given outgoing packets at all (Linux 4.20+; older kernels refuse the
     * option and the filter still drops the copy). */
    if (ifindex == LOOPBACK_IFINDEX) {
        int one = 1;
        setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
    }
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = (int)ifindex;
    if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) != 0) {
        ret = -errno;
        snprintf(err, errlen, "binding the packet socket to '%s': %s", name, strerror(errno));
        return ret;
    }
    if (cap->promisc) {
        ret = set_promisc(fd, ifindex, true);
        if (ret) {
            snprintf(err, errlen, "putting '%s' in promiscuous mode: %s", name, strerror(-ret));
            return ret;
        }
        log_msg(LOG_INFO, MODULE, "interface %s: promiscuous mode on while capturing", name);
    }
    return 0;
}

/* Subscribes to the kernel's link notifications (RTMGRP_LINK, no privilege needed). Returns the
 * socket, or -1 (logged): following the interfaces then waits for the caller's tick. */
static int open_link_notifications(void)
{
    struct sockaddr_nl snl;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);

    if (fd < 0)
        goto fail;
    memset(&snl, 0, sizeof(snl));
    snl.nl_family = AF_NETLINK;
    snl.nl_groups = RTMGRP_LINK;
    if (bind(fd, (struct sockaddr *)&snl, sizeof(snl)) != 0)
        goto fail;
    return fd;

fail:
    log_msg(LOG_WARN, MODULE,
            "no link notifications (%s): an interface created again is captured within a second",
            strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static int64_t timespec_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* The real-time clock minus the monotonic one, which bpf_ktime_get_ns() reads. Frames take the
 * offset of the open: packet times then never go backwards when the wall clock is stepped,
 * which keeps the engine's packet-driven timers sane (capture_bpf_clock_step tells the step).
 * Each reading is a real-time read between two monotonic ones; the tightest of three is kept,
 * since a thread preempted between two reads would put the offset off by as long as it waited. */
static int64_t mono_to_real_offset(void)
{
    int64_t best = 0, best_gap = INT64_MAX;

    for (int i = 0; i < 3; i++) {
        struct timespec m1, r, m2;
        clock_gettime(CLOCK_MONOTONIC, &m1);
        clock_gettime(CLOCK_REALTIME, &r);
        clock_gettime(CLOCK_MONOTONIC, &m2);
        int64_t gap = timespec_ns(&m2) - timespec_ns(&m1);
        if (gap < best_gap) {
            best_gap = gap;
            best = timespec_ns(&r) - (timespec_ns(&m1) + timespec_ns(&m2)) / 2;
        }
    }
    return best;
}

struct capture_bpf *capture_bpf_open(const struct capture_bpf_config *cfg, char *err, size_t errlen)
{
    struct capture_bpf *cap;
    int ret;

    libbpf_set_print(libbpf_log); /* process-wide by libbpf's design; idempotent */
    ret = check_config(cfg, err, errlen);
    if (ret)
        goto fail_early;
    cap = calloc(1, sizeof(*cap));
    if (!cap) {
        ret = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail_early;
    }
    cap->link_fd = -1;
    cap->budget = cfg->poll_budget ? cfg->poll_budget : CAPTURE_BPF_DEFAULT_BUDGET;
    cap->promisc = cfg->promisc;
    ret = set_interfaces(cap, cfg, err, errlen);
    if (ret)
        goto fail;
    ret = check_capabilities(err, errlen);
    if (ret)
        goto fail;

    cap->ncpus = libbpf_num_possible_cpus();
    if (cap->ncpus <= 0) {
        ret = cap->ncpus < 0 ? cap->ncpus : -EINVAL;
        snprintf(err, errlen, "cannot count the possible CPUs: %s", strerror(-ret));
        goto fail;
    }
    cap->percpu = calloc((size_t)cap->ncpus, sizeof(uint64_t));
    cap->counted = cfg->counted_ifaces ? cfg->counted_ifaces : SIPSCOPE_DEFAULT_COUNTED_IFACES;
    if (cap->counted < cap->n_ifaces + 1)
        cap->counted = (uint32_t)cap->n_ifaces + 1; /* each named one, and "other" */
    /* An entry per key of the map (an interface may have a single one: seen, none matched),
     * and per named interface (its totals carried). */
    cap->agg_cap = (size_t)cap->counted * SIPSCOPE_CNT_KINDS + cap->n_ifaces;
    cap->agg = calloc(cap->agg_cap, sizeof(*cap->agg));
    cap->last = calloc(cap->agg_cap, sizeof(*cap->last));
    cap->totals = calloc(cap->agg_cap, sizeof(*cap->totals));
    cap->deltas = calloc(cap->agg_cap, sizeof(*cap->deltas));
    if (!cap->percpu || !cap->agg || !cap->last || !cap->totals || !cap->deltas) {
        ret = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }

    ret = load_program(cap, cfg, err, errlen);
    if (ret)
        goto fail;
    cap->ring = bpf_ring_open(bpf_map__fd(cap->skel->maps.events),
                              bpf_map__max_entries(cap->skel->maps.events));
    if (!cap->ring) {
        ret = -errno;
        snprintf(err, errlen, "setting up the ring buffer consumer: %s", strerror(errno));
        goto fail;
    }

    if (cap->any) {
        ret = open_socket(cap, 0, "any", err, errlen);
    } else {
        /* Before the sockets are bound: a change from then on is notified. */
        cap->link_fd = open_link_notifications();
        for (size_t i = 0; i < cap->n_ifaces && ret == 0; i++)
            ret = open_socket(cap, cap->ifindex[i], cap->names[i], err, errlen);
    }
    if (ret)
        goto fail;
    cap->mono_to_real_ns = mono_to_real_offset();
    return cap;

fail:
    capture_bpf_free(cap);
fail_early:
    errno = -ret;
    return NULL;
}

void capture_bpf_free(struct capture_bpf *cap)
{
    if (!cap)
        return;
    for (size_t i = 0; i < cap->n_socks; i++)
        close(cap->socks[i]);
    if (cap->link_fd >= 0)
        close(cap->link_fd);
    bpf_ring_free(cap->ring);
    sipscope_bpf__destroy(cap->skel);
    free(cap->percpu);
    free(cap->agg);
    free(cap->last);
    free(cap->totals);
    free(cap->deltas);
    free(cap);
}

/* ---- consuming ---------------------------------------------------------------------------- */

static uint32_t frame_iface(const struct capture_bpf *cap, uint32_t ifindex)
{
    if (cap->any)
        return ifindex;
    for (size_t i = 0; i < cap->n_ifaces; i++)
        if (cap->ifindex[i] == ifindex)
            return (uint32_t)i;
    /* Frames still in the ring from the index an interface had before it was created again.
     * Current indexes are matched first: an index may be one interface's former and another's
     * current (capture_bpf_follow carries the former's counts away when that happens). */
    for (size_t i = 0; i < cap->n_ifaces; i++)
        if (cap->prev_ifindex[i] != 0 && cap->prev_ifindex[i] == ifindex)
            return (uint32_t)i;
    return CAPTURE_BPF_IFACE_UNKNOWN;
}

/* Turns one ring record into a frame for fn. Returns false for a malformed record (counted). */
static bool deliver(struct capture_bpf *cap, const void *data, uint32_t size,
                    capture_bpf_frame_fn fn, void *ctx)
{
    const struct sipscope_event *ev = data;
    struct capture_frame frame;

    if (size < sizeof(*ev) || ev->cap_len > size - sizeof(*ev) || ev->cap_len > ev->wire_len) {
        cap->bad_records++;
        log_once(&cap->bad_logged, LOG_WARN, MODULE,
                 "malformed ring buffer record skipped (size %u); see bad records", size);
        return false;
    }
    frame.data = (const uint8_t *)(ev + 1);
    frame.caplen = ev->cap_len;
    frame.wirelen = ev->wire_len;
    frame.ts_ns = (uint64_t)((int64_t)ev->ts_ns + cap->mono_to_real_ns);
    frame.link = ev->flags & SIPSCOPE_EVENT_NO_LINK ? CAPTURE_LINK_RAW : CAPTURE_LINK_ETHERNET;
    frame.dir = ev->pkt_type <= CAPTURE_DIR_OUTGOING ? ev->pkt_type : CAPTURE_DIR_UNKNOWN;
    frame.iface = frame_iface(cap, ev->ifindex);
    frame.gso_size = ev->gso_size;
    fn(ctx, &frame);
    return true;
}

/* Delivers the records ready, up to the budget. Frame number i's record goes back to the kernel
 * once frame i + hold has been delivered; the rest after the flush, before returning. */
static uint32_t consume(struct capture_bpf *cap, capture_bpf_frame_fn fn, void *ctx)
{
    uint32_t delivered = 0;
    const void *data;
    uint32_t len;
    uint64_t end;

    while (delivered < cap->budget && bpf_ring_next(cap->ring, &data, &len, &end) == 1) {
        if (!deliver(cap, data, len, fn, ctx))
            continue; /* given back with the next frame's */
        cap->ends[delivered % (CAPTURE_BPF_MAX_HOLD + 1)] = end;
        if (delivered >= cap->hold)
            bpf_ring_release(cap->ring,
                             cap->ends[(delivered - cap->hold) % (CAPTURE_BPF_MAX_HOLD + 1)]);
        delivered++;
    }
    if (delivered && cap->flush)
        cap->flush(ctx);
    bpf_ring_release(cap->ring, bpf_ring_read_end(cap->ring));
    return delivered;
}

int capture_bpf_hold(struct capture_bpf *cap, uint32_t frames, capture_bpf_flush_fn flush)
{
    if (frames > CAPTURE_BPF_MAX_HOLD || (frames && !flush))
        return -EINVAL;
    cap->hold = frames;
    cap->flush = flush;
    return 0;
}

int capture_bpf_poll(struct capture_bpf *cap, int timeout_ms, capture_bpf_frame_fn fn, void *ctx)
{
    int epfd = bpf_ring_fd(cap->ring);
    int waited = 0;

    for (;;) {
        struct epoll_event ev;
        uint32_t delivered = consume(cap, fn, ctx);
        int step;

        if (delivered > 0)
            return (int)delivered;
        if (timeout_ms >= 0 && waited >= timeout_ms)
            return 0;
        /* The program wakes this epoll set past the backlog or after a quiet spell, not for
         * every frame (capture_bpf_fd), so sleep at most CAPTURE_BPF_POLL_MS and look again. */
        step = CAPTURE_BPF_POLL_MS;
        if (timeout_ms >= 0 && timeout_ms - waited < step)
            step = timeout_ms - waited;
        if (epoll_wait(epfd, &ev, 1, step) < 0)
            return -errno;
        waited += step;
    }
}

int capture_bpf_fd(const struct capture_bpf *cap)
{
    return bpf_ring_fd(cap->ring);
}

int capture_bpf_link_fd(const struct capture_bpf *cap)
{
    return cap->link_fd;
}

bool capture_bpf_link_drain(struct capture_bpf *cap)
{
    char buf[8192];
    bool any = false;

    if (cap->link_fd < 0)
        return false;
    for (;;) {
        ssize_t n = recv(cap->link_fd, buf, sizeof(buf), 0);
        if (n > 0 || (n < 0 && errno == ENOBUFS)) { /* ENOBUFS: notifications were lost */
            any = true;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return any; /* EAGAIN: empty */
    }
}

int capture_bpf_iface_states(const struct capture_bpf *cap, enum capture_iface_state *out,
                             size_t max)
{
    int fd;

    if (cap->any)
        return 0;
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    for (size_t i = 0; i < cap->n_ifaces && i < max; i++) {
        struct ifreq ifr;
        const unsigned want = IFF_UP | IFF_RUNNING;

        const char *now = cap->names[i];
        char renamed[IF_NAMESIZE];
        unsigned named = if_nametoindex(cap->names[i]);

        /* The socket is bound to the index: another interface that took the name is not it.
         * With the name free, the index may still be there under another name (renamed away):
         * still captured, so its own state counts. */
        if (named == 0 && if_indextoname(cap->ifindex[i], renamed))
            now = renamed;
        else if (named != cap->ifindex[i]) {
            out[i] = CAPTURE_IFACE_REMOVED;
            continue;
        }
        memset(&ifr, 0, sizeof(ifr));
        memcpy(ifr.ifr_name, now, strlen(now));
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
            out[i] = errno == ENODEV ? CAPTURE_IFACE_REMOVED : CAPTURE_IFACE_DOWN;
        else
            out[i] =
                ((unsigned)ifr.ifr_flags & want) == want ? CAPTURE_IFACE_UP : CAPTURE_IFACE_DOWN;
    }
    close(fd);
    return (int)cap->n_ifaces;
}

/* Moves the kernel counts of an index interface i had before into cap->carried[i] and deletes
 * its keys: the map holds a bounded number of keys, and an interface may come and go many
 * times. No socket of this capture is bound to that index meanwhile, so nothing counts there. */
static void carry_counters(struct capture_bpf *cap, size_t i, uint32_t ifindex)
{
    int fd = bpf_map__fd(cap->skel->maps.counters);

    for (uint32_t k = 0; k < SIPSCOPE_CNT_KINDS; k++) {
        struct sipscope_counter_key key = {.ifindex = ifindex, .kind = k};
        uint64_t sum = 0;
        if (bpf_map_lookup_elem(fd, &key, cap->percpu) != 0)
            continue;
        for (int c = 0; c < cap->ncpus; c++)
            sum += cap->percpu[c];
        if (bpf_map_delete_elem(fd, &key) == 0) /* else still summed where it is */
            cap->carried[i][k] += sum;
    }
    if (cap->prev_ifindex[i] == ifindex)
        cap->prev_ifindex[i] = 0;
}

int capture_bpf_follow(struct capture_bpf *cap, size_t i, char *err, size_t errlen)
{
    struct sockaddr_ll sll;
    uint32_t now, old;
    int ret;

    if (cap->any || i >= cap->n_ifaces)
        return 0;
    old = cap->ifindex[i];
    now = if_nametoindex(cap->names[i]);
    if (now == 0 || now == old)
        return 0;
    if ((ret = resolve_iface(cap->names[i], &now, err, errlen)) != 0)
        return ret;
    for (size_t j = 0; j < cap->n_ifaces; j++) {
        if (j != i && cap->ifindex[j] == now) {
            snprintf(err, errlen, "interface '%s' is now the one captured as '%s'", cap->names[i],
                     cap->names[j]);
            return -EEXIST;
        }
    }
    /* The index may be one an interface had before (a name moved back, or onto a renamed
     * interface): its counts so far stay with that interface, and the index is this one's. */
    for (size_t j = 0; j < cap->n_ifaces; j++)
        if (cap->prev_ifindex[j] == now)
            carry_counters(cap, j, now);
    if ((ret = precreate_counters(cap, now)) != 0) {
        snprintf(err, errlen, "creating its BPF counters: %s", strerror(-ret));
        return ret;
    }
    /* Binding needs no capability (creating the socket did): the socket keeps its filter. */
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = (int)now;
    if (bind(cap->socks[i], (struct sockaddr *)&sll, sizeof(sll)) != 0) {
        ret = -errno;
        snprintf(err, errlen, "binding the packet socket to '%s': %s", cap->names[i],
                 strerror(errno));
        return ret;
    }
    if (cap->prev_ifindex[i])
        carry_counters(cap, i, cap->prev_ifindex[i]);
    cap->prev_ifindex[i] = old;
    cap->ifindex[i] = now;
    if (cap->promisc) {
        /* The interface before may still be there under another name: it is no longer
         * captured, so it is no longer held promiscuous (a removed one took its membership
         * with it, and the drop then fails harmlessly). */
        set_promisc(cap->socks[i], old, false);
        ret = set_promisc(cap->socks[i], now, true);
        if (ret)
            log_msg(LOG_WARN, MODULE,
                    "interface %s is captured again, but not in promiscuous mode: %s",
                    cap->names[i], strerror(-ret));
    }
    return 1;
}

uint64_t capture_bpf_bad_records(const struct capture_bpf *cap)
{
    return cap->bad_records;
}

/* ---- counters ----------------------------------------------------------------------------- */

/* The totals of the interface a counter key's ifindex belongs to. A named interface created
 * again has keys under its index before (until capture_bpf_follow takes them) and its index now:
 * one entry, under the index now. */
static struct capture_bpf_iface_stats *agg_slot(struct capture_bpf *cap, size_t *n,
                                                uint32_t ifindex)
{
    uint32_t iface =
        ifindex == SIPSCOPE_IFINDEX_OTHER ? CAPTURE_BPF_IFACE_UNKNOWN : frame_iface(cap, ifindex);

    if (!cap->any && iface != CAPTURE_BPF_IFACE_UNKNOWN)
        ifindex = cap->ifindex[iface];
    for (size_t i = 0; i < *n; i++)
        if (cap->agg[i].ifindex == ifindex)
            return &cap->agg[i];
    if (*n == cap->agg_cap)
        return NULL;
    memset(&cap->agg[*n], 0, sizeof(cap->agg[*n]));
    cap->agg[*n].ifindex = ifindex;
    cap->agg[*n].iface = iface;
    return &cap->agg[(*n)++];
}

/* The entry's count of a counter kind; NULL for a kind it does not have. */
static uint64_t *agg_count(struct capture_bpf_iface_stats *s, uint32_t kind)
{
    switch (kind) {
    case SIPSCOPE_CNT_SEEN:
        return &s->seen;
    case SIPSCOPE_CNT_MATCHED:
        return &s->matched;
    case SIPSCOPE_CNT_RINGBUF_FULL:
        return &s->ringbuf_full;
    case SIPSCOPE_CNT_TRUNCATED:
        return &s->truncated;
    default:
        return NULL;
    }
}

static void agg_add(struct capture_bpf_iface_stats *s, uint32_t kind, uint64_t v)
{
    uint64_t *c = agg_count(s, kind);
    if (c)
        *c += v;
}

static uint64_t percpu_sum(const struct capture_bpf *cap)
{
    uint64_t sum = 0;
    for (int c = 0; c < cap->ncpus; c++)
        sum += cap->percpu[c];
    return sum;
}

static int by_index(const void *a, const void *b)
{
    unsigned x = ((const struct if_nameindex *)a)->if_index;
    unsigned y = ((const struct if_nameindex *)b)->if_index;
    return x < y ? -1 : x > y;
}

/* With "any": the keys of the interfaces among the n entries that no longer exist are taken
 * out of the map, their counts since the lookup added to their entries. The interfaces that
 * exist come from one if_nameindex (a netlink dump), not a look per interface. */
static void drop_gone(struct capture_bpf *cap, size_t n)
{
    int fd = bpf_map__fd(cap->skel->maps.counters);
    struct if_nameindex *all = if_nameindex();
    size_t n_all = 0;

    if (!all)
        return; /* nothing is known to be gone */
    while (all[n_all].if_index != 0)
        n_all++;
    qsort(all, n_all, sizeof(*all), by_index);
    for (size_t i = 0; i < n; i++) {
        struct capture_bpf_iface_stats *s = &cap->agg[i];
        struct if_nameindex want = {.if_index = s->ifindex};
        if (s->ifindex == SIPSCOPE_IFINDEX_OTHER ||
            bsearch(&want, all, n_all, sizeof(*all), by_index))
            continue;
        for (uint32_t k = 0; k < SIPSCOPE_CNT_KINDS; k++) {
            struct sipscope_counter_key key = {.ifindex = s->ifindex, .kind = k};
            uint64_t *c = agg_count(s, k), sum;
            if (bpf_map_lookup_and_delete_elem(fd, &key, cap->percpu) == 0 &&
                (sum = percpu_sum(cap)) > *c)
                *c = sum;
        }
    }
    if_freenameindex(all);
}

int capture_bpf_counters(struct capture_bpf *cap, struct capture_bpf_iface_stats *out, size_t max)
{
    int fd = bpf_map__fd(cap->skel->maps.counters);
    struct sipscope_counter_key key, next;
    const void *prev = NULL;
    size_t n = 0, keys = 0;
    int ret;

    while ((ret = bpf_map_get_next_key(fd, prev, &next)) == 0) {
        struct capture_bpf_iface_stats *s;

        key = next;
        prev = &key;
        keys++;
        if (bpf_map_lookup_elem(fd, &key, cap->percpu) != 0)
            continue; /* taken out meanwhile (drop_gone, carry_counters) */
        s = agg_slot(cap, &n, key.ifindex);
        if (!s)
            continue; /* the map cannot hold more interfaces than agg_cap */
        agg_add(s, key.kind, percpu_sum(cap));
    }
    if (ret != -ENOENT)
        return ret;
    /* Interfaces come and go on a container host: before the map fills up with the keys of
     * those gone, theirs make room. */
    if (cap->any && keys > (size_t)cap->counted * SIPSCOPE_CNT_KINDS / 2)
        drop_gone(cap, n);
    /* "other" shows once it counted something. */
    for (size_t i = 0; i < n; i++) {
        struct capture_bpf_iface_stats *s = &cap->agg[i];
        if (s->ifindex == SIPSCOPE_IFINDEX_OTHER && !s->seen && !s->matched && !s->ringbuf_full &&
            !s->truncated) {
            cap->agg[i] = cap->agg[--n];
            break;
        }
    }
    for (size_t i = 0; i < cap->n_ifaces; i++) {
        struct capture_bpf_iface_stats *s = agg_slot(cap, &n, cap->ifindex[i]);
        for (uint32_t k = 0; s && k < SIPSCOPE_CNT_KINDS; k++)
            agg_add(s, k, cap->carried[i][k]);
    }
    /* Insertion sort: a handful of interfaces. */
    for (size_t i = 1; i < n; i++) {
        struct capture_bpf_iface_stats t = cap->agg[i];
        size_t j = i;
        for (; j > 0 && cap->agg[j - 1].ifindex > t.ifindex; j--)
            cap->agg[j] = cap->agg[j - 1];
        cap->agg[j] = t;
    }
    memcpy(out, cap->agg, sizeof(*out) * (n < max ? n : max));
    return (int)n;
}

static int by_iface(const void *a, const void *b)
{
    uint32_t x = ((const struct capture_bpf_iface_stats *)a)->iface;
    uint32_t y = ((const struct capture_bpf_iface_stats *)b)->iface;
    return x < y ? -1 : x > y;
}

static uint64_t since(uint64_t now, uint64_t before)
{
    return now >= before ? now - before : now; /* went back: counted again from zero */
}

const struct capture_bpf_iface_stats *capture_bpf_counter_deltas(struct capture_bpf *cap, size_t *n)
{
    int got = capture_bpf_counters(cap, cap->totals, cap->agg_cap);
    size_t m, j = 0;

    *n = 0;
    if (got < 0) {
        errno = -got;
        return NULL;
    }
    m = (size_t)got < cap->agg_cap ? (size_t)got : cap->agg_cap;
    qsort(cap->totals, m, sizeof(*cap->totals), by_iface);
    for (size_t i = 0; i < m; i++) {
        const struct capture_bpf_iface_stats *t = &cap->totals[i];
        struct capture_bpf_iface_stats *d = &cap->deltas[i];
        while (j < cap->n_last && cap->last[j].iface < t->iface)
            j++;
        *d = *t;
        if (j < cap->n_last && cap->last[j].iface == t->iface) {
            const struct capture_bpf_iface_stats *b = &cap->last[j];
            d->seen = since(t->seen, b->seen);
            d->matched = since(t->matched, b->matched);
            d->ringbuf_full = since(t->ringbuf_full, b->ringbuf_full);
            d->truncated = since(t->truncated, b->truncated);
        }
    }
    memcpy(cap->last, cap->totals, m * sizeof(*cap->last));
    cap->n_last = m;
    *n = m;
    return cap->deltas;
}

int capture_bpf_iface_name(const struct capture_bpf *cap, uint32_t iface, char *buf, size_t len)
{
    char tmp[IF_NAMESIZE];
    const char *name;
    size_t n;

    if (iface == CAPTURE_BPF_IFACE_UNKNOWN) {
        name = "other";
    } else if (cap->any) {
        if (iface == 0 || iface > INT32_MAX || !if_indextoname(iface, tmp))
            return -ENOENT;
        name = tmp;
    } else {
        if (iface >= cap->n_ifaces)
            return -ENOENT;
        name = cap->names[iface];
    }
    n = strlen(name);
    if (n + 1 > len)
        return -ENOSPC;
    memcpy(buf, name, n + 1);
    return 0;
}

int64_t capture_bpf_clock_step(const struct capture_bpf *cap)
{
    return mono_to_real_offset() - cap->mono_to_real_ns;
}

uint64_t capture_bpf_now_ns(const struct capture_bpf *cap)
{
    struct timespec m;
    clock_gettime(CLOCK_MONOTONIC, &m);
    return (uint64_t)((int64_t)m.tv_sec * 1000000000 + m.tv_nsec + cap->mono_to_real_ns);
}
