/* sip2pcap: turns a text file of SIP messages, each after a marker line that gives its time and
 * endpoints, into a pcap (Ethernet, IPv4 or IPv6, UDP or TCP) so tests can state exact packet
 * times. Test tooling only: it copies message bytes as they are, one message per datagram or
 * segment, and does no fragmentation, no TCP options and no TCP retransmission.
 *
 * Input (tests/fixtures/pcap/MANIFEST.md has the long form):
 *
 *   anything before the first marker is a comment
 *   --- TIME SRC -> DST udp [vlan=ID]... [noeol]
 *   <message bytes, CRLF line ends as they should go on the wire>
 *   --- TIME SRC -> DST tcp [vlan=ID]... [noeol] [syn] [fin] [missed]
 *   ...
 *
 * A marker is a line that starts with "--- " and a digit. TIME is seconds after the start of the
 * capture (decimal, at most 6 fraction digits), added to the base epoch (-b). SRC and DST are
 * a.b.c.d:port or [ipv6]:port, of one family. vlan=ID adds an 802.1Q tag (given twice: 802.1ad
 * outer tag, then 802.1Q). A message is every byte after the marker's line end up to the line
 * feed that ends just before the next marker, that line feed included, or up to the end of the
 * file; noeol drops its final line end (LF or CRLF), for a datagram that does not end in one.
 * Packets are written in file order, so a later marker may carry an earlier time.
 *
 * tcp: the message is one segment's payload (none: a bare ACK). Sequence numbers are kept per
 * direction (SRC -> DST): the k-th direction named (k from 0, the reverse of a direction counts
 * as named with it) starts at 1000000 * (k + 1); each segment takes the next ones, a SYN and a
 * FIN one each. syn sends a SYN (a SYN-ACK when the reverse direction has sent); fin sets FIN.
 * Every segment but a first SYN has ACK set and acknowledges everything the reverse direction
 * has sent. missed: the segment is sent, so it takes its sequence numbers and later segments
 * acknowledge it, but the capture missed it: it is not written.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 2024-01-01T00:00:00Z: an ordinary date, so tools that treat small epochs specially behave. */
#define DEFAULT_BASE_EPOCH 1704067200ULL
#define MAX_INPUT (16u * 1024 * 1024)
#define MAX_MARKER 512
#define MAX_VLANS 2
#define SNAPLEN 262144u
#define LINKTYPE_ETHERNET 1u
#define ETH_HLEN 14u
#define VLAN_HLEN 4u
#define IP4_HLEN 20u
#define IP6_HLEN 40u
#define UDP_HLEN 8u
#define TCP_HLEN 20u
/* Largest UDP payload one IPv4 datagram (total length 65535) or IPv6 packet (payload length
 * 65535, no jumbogram) can carry; a TCP segment carries 12 bytes less. */
#define MAX_PAYLOAD4 (65535u - IP4_HLEN - UDP_HLEN)
#define MAX_PAYLOAD6 (65535u - UDP_HLEN)
#define MAX_FRAME (ETH_HLEN + MAX_VLANS * VLAN_HLEN + IP6_HLEN + UDP_HLEN + MAX_PAYLOAD6)
#define MAX_DIRECTIONS 64
#define ISN_STEP 1000000u
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_PSH 0x08
#define TCP_ACK 0x10

struct endpoint {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    uint16_t port;
};

struct marker {
    uint64_t sec;
    uint32_t usec;
    struct endpoint src;
    struct endpoint dst;
    unsigned nvlan;
    uint16_t vlan[MAX_VLANS];
    int noeol;
    int tcp, syn, fin, missed;
};

/* A TCP direction: the next sequence number it sends. */
struct direction {
    struct endpoint src, dst;
    uint32_t next_seq;
    int sent; /* it has sent a segment: a SYN the other way answers it (a SYN-ACK) */
};

struct tcp_state {
    struct direction dir[MAX_DIRECTIONS];
    unsigned n;
};

static void fail_at(const char *name, unsigned line, const char *what)
{
    fprintf(stderr, "sip2pcap: %s:%u: %s\n", name, line, what);
}

static int parse_time(const char *s, struct marker *m)
{
    uint64_t sec = 0;
    uint32_t usec = 0;
    unsigned frac = 0;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (sec > (UINT32_MAX - 9) / 10)
            return -ERANGE;
        sec = sec * 10 + (uint64_t)(*s - '0');
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++) {
            if (++frac > 6)
                return -ERANGE; /* a pcap of microseconds cannot hold the time exactly */
            usec = usec * 10 + (uint32_t)(*s - '0');
        }
        if (frac == 0)
            return -EINVAL;
    }
    if (*s != '\0')
        return -EINVAL;
    for (; frac < 6; frac++)
        usec *= 10;
    m->sec = sec;
    m->usec = usec;
    return 0;
}

static int parse_endpoint(char *s, struct endpoint *e)
{
    char *host = s, *port;
    char *end;
    unsigned long p;

    if (*s == '[') {
        char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -EINVAL;
        *close = '\0';
        host = s + 1;
        port = close + 2;
        e->family = AF_INET6;
    } else {
        char *colon = strrchr(s, ':');
        if (colon == NULL)
            return -EINVAL;
        *colon = '\0';
        port = colon + 1;
        e->family = AF_INET;
    }
    if (inet_pton(e->family, host, e->addr) != 1)
        return -EINVAL;
    errno = 0;
    p = strtoul(port, &end, 10);
    if (errno != 0 || end == port || *end != '\0' || p == 0 || p > 65535)
        return -EINVAL;
    e->port = (uint16_t)p;
    return 0;
}

/* Parses one marker line (without its line end) into m; reports the error itself, as at line
 * lineno of the file name. */
static int parse_marker(char *line, const char *name, unsigned lineno, struct marker *m)
{
    char *save = NULL;
    char *tok[16];
    unsigned n = 0;

    memset(m, 0, sizeof(*m));
    for (char *t = strtok_r(line, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
        if (n == sizeof(tok) / sizeof(tok[0])) {
            fail_at(name, lineno, "too many fields in marker");
            return -EINVAL;
        }
        tok[n++] = t;
    }
    if (n < 6 || strcmp(tok[0], "---") != 0 || strcmp(tok[3], "->") != 0) {
        fail_at(name, lineno, "marker is not '--- TIME SRC -> DST udp|tcp [OPTION]...'");
        return -EINVAL;
    }
    if (parse_time(tok[1], m) < 0) {
        fail_at(name, lineno, "bad time (seconds, at most 6 fraction digits)");
        return -EINVAL;
    }
    if (parse_endpoint(tok[2], &m->src) < 0 || parse_endpoint(tok[4], &m->dst) < 0) {
        fail_at(name, lineno, "bad endpoint (a.b.c.d:port or [ipv6]:port)");
        return -EINVAL;
    }
    if (m->src.family != m->dst.family) {
        fail_at(name, lineno, "source and destination are of different address families");
        return -EINVAL;
    }
    if (strcmp(tok[5], "tcp") == 0) {
        m->tcp = 1;
    } else if (strcmp(tok[5], "udp") != 0) {
        fail_at(name, lineno, "transport is not udp or tcp");
        return -EINVAL;
    }
    for (unsigned i = 6; i < n; i++) {
        int *tcp_flag = strcmp(tok[i], "syn") == 0      ? &m->syn
                        : strcmp(tok[i], "fin") == 0    ? &m->fin
                        : strcmp(tok[i], "missed") == 0 ? &m->missed
                                                        : NULL;
        if (tcp_flag) {
            if (!m->tcp) {
                fail_at(name, lineno, "syn, fin and missed are tcp options");
                return -EINVAL;
            }
            *tcp_flag = 1;
        } else if (strcmp(tok[i], "noeol") == 0) {
            m->noeol = 1;
        } else if (strncmp(tok[i], "vlan=", 5) == 0) {
            char *end;
            unsigned long id = strtoul(tok[i] + 5, &end, 10);
            if (end == tok[i] + 5 || *end != '\0' || id > 4095 || m->nvlan == MAX_VLANS) {
                fail_at(name, lineno, "bad vlan (0..4095, at most two tags)");
                return -EINVAL;
            }
            m->vlan[m->nvlan++] = (uint16_t)id;
        } else {
            fail_at(name, lineno, "unknown marker option");
            return -EINVAL;
        }
    }
    return 0;
}

static uint8_t *put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

/* Ones-complement sum (RFC 1071) of len bytes, added to sum; fold with csum_fold(). */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
    for (; len > 1; p += 2, len -= 2)
        sum += (uint32_t)p[0] << 8 | p[1];
    if (len == 1)
        sum += (uint32_t)p[0] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* A locally administered MAC made from the address's last four bytes, so each host keeps one. */
static uint8_t *put_mac(uint8_t *p, const struct endpoint *e)
{
    const uint8_t *tail = e->addr + (e->family == AF_INET ? 0 : 12);
    p[0] = 0x02;
    p[1] = 0x00;
    memcpy(p + 2, tail, 4);
    return p + 6;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    return put16(p + 2, (uint16_t)v);
}

static int same_endpoint(const struct endpoint *a, const struct endpoint *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16) == 0;
}

/* The direction from src to dst, named now if it was not (with its reverse); NULL when there
 * are too many. */
static struct direction *direction(struct tcp_state *st, const struct endpoint *src,
                                   const struct endpoint *dst)
{
    for (unsigned i = 0; i < st->n; i++)
        if (same_endpoint(&st->dir[i].src, src) && same_endpoint(&st->dir[i].dst, dst))
            return &st->dir[i];
    if (st->n + 2 > MAX_DIRECTIONS)
        return NULL;
    for (unsigned i = 0; i < 2; i++) {
        struct direction *d = &st->dir[st->n];
        memset(d, 0, sizeof(*d));
        d->src = i ? *dst : *src;
        d->dst = i ? *src : *dst;
        d->next_seq = ISN_STEP * (st->n + 1);
        st->n++;
    }
    return &st->dir[st->n - 2];
}

/* The TCP header of one segment of m (payload len) at tcp, checksum not yet set; takes the
 * segment's sequence numbers from the state. Returns 0, or -ENOSPC when st is full. */
static int tcp_header(uint8_t *tcp, struct tcp_state *st, const struct marker *m, size_t len)
{
    struct direction *d = direction(st, &m->src, &m->dst);
    struct direction *r = direction(st, &m->dst, &m->src);
    uint8_t flags = 0;

    if (!d || !r)
        return -ENOSPC;
    if (!(m->syn && !r->sent))
        flags |= TCP_ACK; /* all but the opening SYN acknowledge the peer */
    if (m->syn)
        flags |= TCP_SYN;
    if (m->fin)
        flags |= TCP_FIN;
    if (len)
        flags |= TCP_PSH;
    put16(tcp, m->src.port);
    put16(tcp + 2, m->dst.port);
    put32(tcp + 4, d->next_seq);
    put32(tcp + 8, flags & TCP_ACK ? r->next_seq : 0);
    tcp[12] = (TCP_HLEN / 4) << 4;
    tcp[13] = flags;
    put16(tcp + 14, 65535); /* window */
    put16(tcp + 16, 0);     /* checksum, set by the caller */
    put16(tcp + 18, 0);     /* urgent pointer */
    d->next_seq += (uint32_t)len + (m->syn ? 1 : 0) + (m->fin ? 1 : 0);
    d->sent = 1;
    return 0;
}

/* Builds the frame for one message into frame (a TCP segment's header from st); returns its
 * length, or 0 when st is full. */
static size_t build_frame(uint8_t *frame, const struct marker *m, const uint8_t *msg, size_t len,
                          uint16_t ip_id, struct tcp_state *st)
{
    size_t alen = m->src.family == AF_INET ? 4 : 16;
    uint32_t l4hlen = m->tcp ? TCP_HLEN : UDP_HLEN;
    uint16_t ulen = (uint16_t)(l4hlen + len);
    uint8_t proto = m->tcp ? 6 : 17;
    uint8_t *p = frame, *ip, *udp;
    uint32_t sum;

    p = put_mac(p, &m->dst);
    p = put_mac(p, &m->src);
    for (unsigned i = 0; i < m->nvlan; i++) {
        /* 802.1ad: the outer of two tags is a service tag. */
        p = put16(p, (m->nvlan == 2 && i == 0) ? 0x88a8 : 0x8100);
        p = put16(p, m->vlan[i]);
    }
    p = put16(p, m->src.family == AF_INET ? 0x0800 : 0x86dd);
    ip = p;
    if (m->src.family == AF_INET) {
        p[0] = 0x45;
        p[1] = 0;
        put16(p + 2, (uint16_t)(IP4_HLEN + ulen));
        put16(p + 4, ip_id);
        put16(p + 6, 0); /* no DF: a big datagram would be fragmented on a real wire */
        p[8] = 64;
        p[9] = proto;
        put16(p + 10, 0);
        memcpy(p + 12, m->src.addr, 4);
        memcpy(p + 16, m->dst.addr, 4);
        put16(p + 10, csum_fold(csum_add(0, p, IP4_HLEN)));
        p += IP4_HLEN;
    } else {
        p[0] = 0x60;
        p[1] = p[2] = p[3] = 0;
        put16(p + 4, ulen);
        p[6] = proto;
        p[7] = 64;
        memcpy(p + 8, m->src.addr, 16);
        memcpy(p + 24, m->dst.addr, 16);
        p += IP6_HLEN;
    }
    udp = p; /* or the TCP header */
    if (m->tcp) {
        if (tcp_header(p, st, m, len) < 0)
            return 0;
    } else {
        put16(p, m->src.port);
        put16(p + 2, m->dst.port);
        put16(p + 4, ulen);
        put16(p + 6, 0);
    }
    memcpy(p + l4hlen, msg, len);
    p += l4hlen + len;

    /* Pseudo-header: addresses, protocol, UDP or TCP length (RFC 768, RFC 9293 3.1, RFC 8200
     * 8.1). */
    {
        uint8_t pseudo[4];
        uint16_t c;
        const uint8_t *src = ip + (m->src.family == AF_INET ? 12 : 8);
        sum = csum_add(0, src, 2 * alen);
        put16(pseudo, proto);
        put16(pseudo + 2, ulen);
        sum = csum_add(sum, pseudo, 4);
        sum = csum_add(sum, udp, l4hlen + len);
        c = csum_fold(sum);
        if (m->tcp)
            put16(udp + 16, c);
        else
            put16(udp + 6, c == 0 ? 0xffff : c); /* 0 means "no checksum" */
    }
    return (size_t)(p - frame);
}

static int write_u32(FILE *f, uint32_t v)
{
    return fwrite(&v, sizeof(v), 1, f) == 1 ? 0 : -EIO;
}

static int write_u16(FILE *f, uint16_t v)
{
    return fwrite(&v, sizeof(v), 1, f) == 1 ? 0 : -EIO;
}

/* Classic pcap in host byte order with microsecond stamps; readers detect the order by magic. */
static int write_pcap_header(FILE *f)
{
    if (write_u32(f, 0xa1b2c3d4) || write_u16(f, 2) || write_u16(f, 4) || write_u32(f, 0) ||
        write_u32(f, 0) || write_u32(f, SNAPLEN) || write_u32(f, LINKTYPE_ETHERNET))
        return -EIO;
    return 0;
}

static int write_record(FILE *f, uint32_t sec, uint32_t usec, const uint8_t *frame, size_t len)
{
    if (write_u32(f, sec) || write_u32(f, usec) || write_u32(f, (uint32_t)len) ||
        write_u32(f, (uint32_t)len) || fwrite(frame, 1, len, f) != len)
        return -EIO;
    return 0;
}

static int read_all(FILE *f, char **out, size_t *outlen)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);

    if (buf == NULL)
        return -ENOMEM;
    for (;;) {
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
        if (len == cap) {
            char *nbuf;
            if (cap >= MAX_INPUT) {
                free(buf);
                return -E2BIG;
            }
            cap *= 2;
            nbuf = realloc(buf, cap);
            if (nbuf == NULL) {
                free(buf);
                return -ENOMEM;
            }
            buf = nbuf;
        }
    }
    if (ferror(f)) {
        free(buf);
        return -EIO;
    }
    *out = buf;
    *outlen = len;
    return 0;
}

static int is_marker_at(const char *buf, size_t len, size_t i)
{
    return (i == 0 || buf[i - 1] == '\n') && len - i >= 5 && memcmp(buf + i, "--- ", 4) == 0 &&
           buf[i + 4] >= '0' && buf[i + 4] <= '9';
}

static size_t next_marker(const char *buf, size_t len, size_t from)
{
    for (size_t i = from; i < len; i++)
        if (is_marker_at(buf, len, i))
            return i;
    return len;
}

static unsigned count_lines(const char *buf, size_t from, size_t to, unsigned line)
{
    for (size_t i = from; i < to; i++)
        line += buf[i] == '\n';
    return line;
}

/* Converts buf (the whole input, read from the file name) into packets written to out; returns 0
 * or -errno after reporting the error. */
static int convert(const char *name, const char *buf, size_t len, uint64_t base, FILE *out)
{
    static uint8_t frame[MAX_FRAME];
    static struct tcp_state st;
    size_t pos = next_marker(buf, len, 0);
    unsigned line;
    unsigned npackets = 0;

    if (pos == len) {
        fprintf(stderr, "sip2pcap: %s: no marker line ('--- TIME SRC -> DST udp|tcp')\n", name);
        return -EINVAL;
    }
    line = count_lines(buf, 0, pos, 1);
    if (write_pcap_header(out) < 0)
        return -EIO;
    while (pos < len) {
        char text[MAX_MARKER];
        struct marker m;
        size_t eol = pos, start, end, mlen, flen;
        uint64_t sec;

        while (eol < len && buf[eol] != '\n')
            eol++;
        mlen = eol - pos;
        if (mlen > 0 && buf[pos + mlen - 1] == '\r')
            mlen--;
        if (mlen >= sizeof(text)) {
            fail_at(name, line, "marker line too long");
            return -EINVAL;
        }
        memcpy(text, buf + pos, mlen);
        text[mlen] = '\0';
        if (parse_marker(text, name, line, &m) < 0)
            return -EINVAL;

        start = eol < len ? eol + 1 : len;
        end = next_marker(buf, len, start);
        if (m.noeol && end > start && buf[end - 1] == '\n') {
            end--;
            if (end > start && buf[end - 1] == '\r')
                end--;
        }
        if (end - start + (m.tcp ? TCP_HLEN - UDP_HLEN : 0) >
            (m.src.family == AF_INET ? MAX_PAYLOAD4 : MAX_PAYLOAD6)) {
            fail_at(name, line, "message too large for one UDP datagram or TCP segment");
            return -E2BIG;
        }
        sec = base + m.sec;
        if (sec > UINT32_MAX) {
            fail_at(name, line, "time past 2106 does not fit a pcap record");
            return -ERANGE;
        }
        flen = build_frame(frame, &m, (const uint8_t *)buf + start, end - start,
                           (uint16_t)(npackets + 1), &st);
        if (flen == 0) {
            fail_at(name, line, "too many TCP directions");
            return -ENOSPC;
        }
        if (!m.missed) {
            if (write_record(out, (uint32_t)sec, m.usec, frame, flen) < 0)
                return -EIO;
            npackets++;
        }

        pos = next_marker(buf, len, start);
        line = count_lines(buf, eol, pos, line);
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sip2pcap [-b BASE_EPOCH] INPUT.sip OUTPUT.pcap\n"
            "Turns SIP messages separated by '--- TIME SRC -> DST udp|tcp' lines into a pcap;\n"
            "TIME is added to BASE_EPOCH (default %llu, 2024-01-01T00:00:00Z).\n",
            (unsigned long long)DEFAULT_BASE_EPOCH);
}

int main(int argc, char **argv)
{
    uint64_t base = DEFAULT_BASE_EPOCH;
    FILE *in = NULL, *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    const char *input_name, *output_name;
    int opt, rc = 1;

    while ((opt = getopt(argc, argv, "b:h")) != -1) {
        char *end;
        switch (opt) {
        case 'b':
            errno = 0;
            base = strtoull(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || base > UINT32_MAX) {
                fprintf(stderr, "sip2pcap: bad base epoch '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    input_name = argv[optind];
    output_name = argv[optind + 1];
    in = fopen(input_name, "rb");
    if (in == NULL) {
        fprintf(stderr, "sip2pcap: %s: %s\n", input_name, strerror(errno));
        goto out;
    }
    if (read_all(in, &buf, &len) < 0) {
        fprintf(stderr, "sip2pcap: %s: cannot read (or larger than %u bytes)\n", input_name,
                MAX_INPUT);
        goto out;
    }
    out = fopen(output_name, "wb");
    if (out == NULL) {
        fprintf(stderr, "sip2pcap: %s: %s\n", output_name, strerror(errno));
        goto out;
    }
    if (convert(input_name, buf, len, base, out) == 0)
        rc = 0;
    if (fclose(out) != 0)
        rc = 1;
    out = NULL;
    if (rc != 0) {
        fprintf(stderr, "sip2pcap: %s not written\n", output_name);
        remove(output_name);
    }
out:
    if (in != NULL)
        fclose(in);
    free(buf);
    return rc;
}
