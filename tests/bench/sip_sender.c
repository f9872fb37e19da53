/* sip_sender: sends answered SIP calls over UDP at a steady, paced rate, each with a Call-ID of
 * its own, for the live benchmarks (highest rate without drops, CPU per call, memory soak). It
 * is a load source, not a SIP endpoint: every message of a call goes to the same address.
 *
 *   sip_sender -d ADDR [-p PORT] [-l LOCAL_PORT] (-r MSGS_PER_S | -c CALLS_PER_S) [-t SECONDS]
 *              [-n CALLS] [-H HOLD_SECONDS] [-s SIZE] [-b BATCH] [-i FIRST_CALL]
 *   sip_sender -S -d ADDR [-p PORT]     (sink: binds ADDR:PORT, never reads, until a signal)
 *
 * A call is the 7-message answered flow INVITE(SDP) 100 180 200(SDP) ACK, then after the hold
 * time BYE 200. Call j starts at j / CALLS_PER_S; its BYE follows HOLD_SECONDS later, so about
 * CALLS_PER_S * HOLD_SECONDS calls are up at once. Each message is padded with an X-Pad header
 * to SIZE bytes (default 600). Messages come from templates whose call number fields are
 * patched in place, so that formatting costs little next to the send; batches go out with
 * sendmmsg. On exit (time or call count reached, SIGINT, SIGTERM) it prints one line:
 *   sent=N calls=N ended=N seconds=S rate=R/s target=T/s */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256
#define MAX_SIZE 1400 /* one datagram within a 1500-byte MTU */
#define N_START 5     /* messages sent when a call starts */
#define N_END 2       /* messages sent when it ends */
#define N_MSGS (N_START + N_END)
#define DIGITS 10 /* width of the call number in Call-ID, tags and branches */
#define MAX_HOLES 8

/* Call number placeholders in the templates: replaced by DIGITS decimal digits. */
#define CALL "@@@@@@@@@@"

static const char sdp[] = "v=0\r\n"
                          "o=bench 1 1 IN IP4 10.250.0.1\r\n"
                          "s=-\r\n"
                          "c=IN IP4 10.250.0.1\r\n"
                          "t=0 0\r\n"
                          "m=audio 40000 RTP/AVP 0 8 101\r\n"
                          "a=rtpmap:0 PCMU/8000\r\n"
                          "a=rtpmap:101 telephone-event/8000\r\n";

#define VIA(n) "Via: SIP/2.0/UDP 10.250.0.1:5060;branch=z9hG4bK-" CALL "-" #n "\r\n"
#define FROM "From: <sip:alice@atlanta.example.com>;tag=a" CALL "\r\n"
#define TO "To: <sip:bob@biloxi.example.com>\r\n"
#define TO_TAG "To: <sip:bob@biloxi.example.com>;tag=b" CALL "\r\n"
#define CALL_ID "Call-ID: " CALL "-bench@10.250.0.1\r\n"

/* Headers of each message up to (not including) Content-Length; has_sdp adds the body. In
 * sending order: the call's start, then its end. */
static const struct {
    const char *head;
    bool has_sdp;
} flow[N_MSGS] = {
    {"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n" VIA(1) "Max-Forwards: 70\r\n" FROM TO
         CALL_ID "CSeq: 1 INVITE\r\nContact: <sip:alice@10.250.0.1:5060>\r\n"
                                                            "Content-Type: application/sdp\r\n",
     true},
    {"SIP/2.0 100 Trying\r\n" VIA(1) FROM TO CALL_ID "CSeq: 1 INVITE\r\n", false},
    {"SIP/2.0 180 Ringing\r\n" VIA(1) FROM TO_TAG CALL_ID
     "CSeq: 1 INVITE\r\nContact: <sip:bob@10.250.0.2:5060>\r\n",
     false},
    {"SIP/2.0 200 OK\r\n" VIA(1) FROM TO_TAG CALL_ID
     "CSeq: 1 INVITE\r\nContact: <sip:bob@10.250.0.2:5060>\r\nContent-Type: application/sdp\r\n",
     true},
    {"ACK sip:bob@10.250.0.2:5060 SIP/2.0\r\n" VIA(2) "Max-Forwards: 70\r\n" FROM TO_TAG CALL_ID
                                                      "CSeq: 1 ACK\r\n",
     false},
    {"BYE sip:bob@10.250.0.2:5060 SIP/2.0\r\n" VIA(3) "Max-Forwards: 70\r\n" FROM TO_TAG CALL_ID
                                                      "CSeq: 2 BYE\r\n",
     false},
    {"SIP/2.0 200 OK\r\n" VIA(3) FROM TO_TAG CALL_ID "CSeq: 2 BYE\r\n", false},
};

struct tmpl {
    char text[MAX_SIZE];
    size_t len;
    size_t holes[MAX_HOLES]; /* offsets of the call number placeholders */
    int n_holes;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Builds message i of the flow, padded to size bytes when it is shorter. */
static int build(struct tmpl *t, int i, size_t size)
{
    const char *body = flow[i].has_sdp ? sdp : "";
    size_t body_len = strlen(body), head_len = strlen(flow[i].head), pad = 0;
    char cl[48];
    int cl_len = snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", body_len);
    size_t bare = head_len + (size_t)cl_len + 2 + body_len;
    static const char pad_name[] = "X-Pad: ";

    if (bare + sizeof(pad_name) - 1 + 2 < size)
        pad = size - bare - (sizeof(pad_name) - 1) - 2;
    t->len = 0;
#define PUT(p, n)                                                                                  \
    do {                                                                                           \
        if (t->len + (n) > sizeof(t->text))                                                        \
            return -1;                                                                             \
        memcpy(t->text + t->len, (p), (n));                                                        \
        t->len += (n);                                                                             \
    } while (0)
    PUT(flow[i].head, head_len);
    if (pad) {
        PUT(pad_name, sizeof(pad_name) - 1);
        if (t->len + pad > sizeof(t->text))
            return -1;
        memset(t->text + t->len, 'p', pad);
        t->len += pad;
        PUT("\r\n", 2);
    }
    PUT(cl, (size_t)cl_len);
    PUT("\r\n", 2);
    PUT(body, body_len);
#undef PUT
    t->n_holes = 0;
    for (size_t off = 0; off + DIGITS <= t->len; off++)
        if (memcmp(t->text + off, CALL, DIGITS) == 0) {
            if (t->n_holes == MAX_HOLES)
                return -1;
            t->holes[t->n_holes++] = off;
            off += DIGITS - 1;
        }
    return 0;
}

static void digits(char *out, uint64_t n)
{
    for (int k = DIGITS - 1; k >= 0; k--, n /= 10)
        out[k] = (char)('0' + n % 10);
}

static int sink(const struct sockaddr_in *addr)
{
    int small = 4096, fd = socket(AF_INET, SOCK_DGRAM, 0);

    if (fd < 0 || bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0) {
        perror("sip_sender: sink");
        return 1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    while (!stop)
        pause();
    close(fd);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: sip_sender -d ADDR [-p PORT] [-l LOCAL_PORT] (-r MSGS_PER_S | -c "
                    "CALLS_PER_S) [-t SECONDS] [-n CALLS] [-H HOLD_SECONDS] [-s SIZE] "
                    "[-b BATCH] [-i FIRST_CALL]\n"
                    "       sip_sender -S -d ADDR [-p PORT]\n");
}

int main(int argc, char **argv)
{
    static struct tmpl tmpl[N_MSGS];
    static char slot[MAX_BATCH][MAX_SIZE];
    struct mmsghdr msgs[MAX_BATCH];
    struct iovec iov[MAX_BATCH];
    uint64_t s_after[MAX_BATCH], e_after[MAX_BATCH];
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(5060)};
    struct sockaddr_in src = {.sin_family = AF_INET};
    const char *addr = NULL;
    double cps = 0, seconds = 10, hold = 0, t0, t;
    uint64_t max_calls = 0, first = 0, s = 0, e = 0, sent = 0;
    size_t size = 600, batch = 64;
    bool sink_mode = false;
    int opt, fd;

    while ((opt = getopt(argc, argv, "d:p:l:r:c:t:n:H:s:b:i:S")) != -1) {
        switch (opt) {
        case 'd':
            addr = optarg;
            break;
        case 'p':
            dst.sin_port = htons((uint16_t)atoi(optarg));
            break;
        case 'l':
            src.sin_port = htons((uint16_t)atoi(optarg));
            break;
        case 'r':
            cps = strtod(optarg, NULL) / N_MSGS;
            break;
        case 'c':
            cps = strtod(optarg, NULL);
            break;
        case 't':
            seconds = strtod(optarg, NULL);
            break;
        case 'n':
            max_calls = strtoull(optarg, NULL, 10);
            break;
        case 'H':
            hold = strtod(optarg, NULL);
            break;
        case 's':
            size = strtoul(optarg, NULL, 10);
            break;
        case 'b':
            batch = strtoul(optarg, NULL, 10);
            break;
        case 'i':
            first = strtoull(optarg, NULL, 10);
            break;
        case 'S':
            sink_mode = true;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (!addr || inet_pton(AF_INET, addr, &dst.sin_addr) != 1) {
        usage();
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (sink_mode)
        return sink(&dst);
    if (cps <= 0 || hold < 0 || size > MAX_SIZE || batch == 0 || batch > MAX_BATCH) {
        usage();
        return 2;
    }
    for (int i = 0; i < N_MSGS; i++)
        if (build(&tmpl[i], i, size) != 0) {
            fprintf(stderr, "sip_sender: message %d does not fit\n", i);
            return 1;
        }

    fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || (src.sin_port && bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) ||
        connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0) {
        perror("sip_sender: socket");
        return 1;
    }
    memset(msgs, 0, sizeof(msgs));
    for (size_t i = 0; i < batch; i++) {
        iov[i].iov_base = slot[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    /* s counts start-stream messages sent (call s / N_START, step s % N_START), e end-stream
     * ones. Call j is due to start at j / cps and to end hold seconds later; an end is never
     * sent before its call's start is complete. */
    t0 = now_s();
    while (!stop && (t = now_s() - t0) < seconds) {
        uint64_t started = (uint64_t)floor(t * cps) + 1, ended = 0;
        size_t n = 0;
        int r;

        if (max_calls && started > max_calls)
            started = max_calls;
        if (t >= hold)
            ended = (uint64_t)floor((t - hold) * cps) + 1;
        for (uint64_t ts = s, te = e; n < batch; n++) {
            uint64_t call;
            const struct tmpl *m;
            char num[DIGITS];

            if (te < N_END * ended && te / N_END < ts / N_START) {
                call = te / N_END;
                m = &tmpl[N_START + te % N_END];
                te++;
            } else if (ts < N_START * started) {
                call = ts / N_START;
                m = &tmpl[ts % N_START];
                ts++;
            } else {
                break;
            }
            memcpy(slot[n], m->text, m->len);
            digits(num, first + call);
            for (int h = 0; h < m->n_holes; h++)
                memcpy(slot[n] + m->holes[h], num, DIGITS);
            iov[n].iov_len = m->len;
            s_after[n] = ts;
            e_after[n] = te;
        }
        if (n == 0) {
            if (max_calls && s == N_START * max_calls && e == N_END * max_calls)
                break;
            /* Nothing due: sleep until the next start or end (at most 1 ms). */
            double next = (double)(s / N_START + 1) / cps, wait;
            if (e < N_END * (s / N_START)) {
                double end_at = (double)(e / N_END) / cps + hold;
                next = end_at < next ? end_at : next;
            }
            wait = next - t;
            if (wait > 0.001)
                wait = 0.001;
            if (wait > 0) {
                struct timespec ts = {0, (long)(wait * 1e9)};
                nanosleep(&ts, NULL);
            }
            continue;
        }
        r = sendmmsg(fd, msgs, (unsigned)n, 0);
        if (r <= 0) {
            if (r == 0 || errno == EINTR || errno == ENOBUFS || errno == EAGAIN ||
                errno == ECONNREFUSED)
                continue;
            perror("sip_sender: sendmmsg");
            return 1;
        }
        s = s_after[r - 1];
        e = e_after[r - 1];
        sent += (uint64_t)r;
    }
    t = now_s() - t0;
    printf("sent=%" PRIu64 " calls=%" PRIu64 " ended=%" PRIu64 " seconds=%.3f rate=%.0f/s "
           "target=%.0f/s\n",
           sent, (s + N_START - 1) / N_START, e / N_END, t, (double)sent / t, cps * N_MSGS);
    close(fd);
    return 0;
}
