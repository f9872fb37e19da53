/* udp_blaster: sends UDP datagrams as fast as one core allows (sendmmsg batches) to measure the
 * live capture. Not a SIP generator: payloads are filler with a sequence number.
 *
 *   udp_blaster [-d ADDR] [-p PORT] [-s PAYLOAD] [-t SECONDS] [-n COUNT] [-b BATCH] [-k]
 *
 * -k binds a sink socket to ADDR:PORT that is never read, so the receiver drops datagrams at a
 * full socket queue instead of answering with ICMP port unreachable. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256
#define MAX_PAYLOAD 65507

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int open_sink(const struct sockaddr_in *dst)
{
    int small = 4096;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || bind(fd, (const struct sockaddr *)dst, sizeof(*dst)) != 0) {
        perror("udp_blaster: sink");
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    return fd;
}

int main(int argc, char **argv)
{
    static uint8_t payload[MAX_BATCH][MAX_PAYLOAD];
    struct mmsghdr msgs[MAX_BATCH];
    struct iovec iov[MAX_BATCH];
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(5060)};
    const char *addr = "127.0.0.1";
    size_t size = 600, batch = 64;
    double seconds = 5, t0, elapsed;
    uint64_t count = 0, sent = 0;
    bool sink = false;
    int opt, fd, sink_fd = -1;

    while ((opt = getopt(argc, argv, "d:p:s:t:n:b:k")) != -1) {
        switch (opt) {
        case 'd':
            addr = optarg;
            break;
        case 'p':
            dst.sin_port = htons((uint16_t)atoi(optarg));
            break;
        case 's':
            size = strtoul(optarg, NULL, 0);
            break;
        case 't':
            seconds = strtod(optarg, NULL);
            break;
        case 'n':
            count = strtoull(optarg, NULL, 0);
            break;
        case 'b':
            batch = strtoul(optarg, NULL, 0);
            break;
        case 'k':
            sink = true;
            break;
        default:
            fprintf(stderr, "usage: udp_blaster [-d ADDR] [-p PORT] [-s PAYLOAD] [-t SECONDS] "
                            "[-n COUNT] [-b BATCH] [-k]\n");
            return 2;
        }
    }
    if (size > MAX_PAYLOAD || batch == 0 || batch > MAX_BATCH ||
        inet_pton(AF_INET, addr, &dst.sin_addr) != 1) {
        fprintf(stderr, "udp_blaster: bad address, size or batch\n");
        return 2;
    }
    if (sink && (sink_fd = open_sink(&dst)) < 0)
        return 1;
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0) {
        perror("udp_blaster: socket");
        return 1;
    }
    memset(msgs, 0, sizeof(msgs));
    for (size_t i = 0; i < batch; i++) {
        memset(payload[i], 'x', size);
        iov[i].iov_base = payload[i];
        iov[i].iov_len = size;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    t0 = now_s();
    while ((count == 0 || sent < count) && now_s() - t0 < seconds) {
        unsigned n = (unsigned)batch;
        int r;

        if (count && count - sent < n)
            n = (unsigned)(count - sent);
        for (unsigned i = 0; i < n && size >= 8; i++) {
            uint64_t seq = sent + i;
            memcpy(payload[i], &seq, sizeof(seq));
        }
        r = sendmmsg(fd, msgs, n, 0);
        if (r < 0) {
            if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN || errno == ECONNREFUSED)
                continue;
            perror("udp_blaster: sendmmsg");
            return 1;
        }
        sent += (uint64_t)r;
    }
    elapsed = now_s() - t0;
    printf("sent=%" PRIu64 " seconds=%.3f rate=%.0f/s\n", sent, elapsed, (double)sent / elapsed);
    close(fd);
    if (sink_fd >= 0)
        close(sink_fd);
    return 0;
}
