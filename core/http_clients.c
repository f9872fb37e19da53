#include "http_clients.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* An address or a network with connections. */
struct client {
    uint8_t key[HTTP_CLIENT_KEY_LEN];
    bool net;       /* a /64, not an address: the same bytes can be both */
    unsigned conns; /* 0: the entry is free */
};

struct http_clients {
    pthread_mutex_t mu;
    unsigned per_address, per_network, n;
    unsigned max_conns, reserve, total; /* total: connections counted (their addresses) */
    struct client *by; /* n entries; a handle holds indexes + 1 */
};

bool http_client_keys(const struct sockaddr *sa, socklen_t len, uint8_t addr[HTTP_CLIENT_KEY_LEN],
                      uint8_t net[HTTP_CLIENT_KEY_LEN])
{
    memset(addr, 0, HTTP_CLIENT_KEY_LEN);
    if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        addr[10] = addr[11] = 0xff; /* ::ffff:a.b.c.d, as a dual-stack socket gives it */
        memcpy(addr + 12, &in->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(addr, &in6->sin6_addr, HTTP_CLIENT_KEY_LEN);
        if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            memcpy(net, addr, 8);
            memset(net + 8, 0, 8);
            return true;
        }
    }
    return false;
}

struct http_clients *http_clients_new(unsigned max_conns, unsigned per_address,
                                      unsigned per_network)
{
    struct http_clients *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    /* An address and a network per connection; indexes fit a handle's 16-bit halves. */
    c->n = 2 * (max_conns ? max_conns : 1);
    if (c->n > UINT16_MAX)
        c->n = UINT16_MAX;
    c->by = calloc(c->n, sizeof(*c->by));
    if (!c->by) {
        free(c);
        return NULL;
    }
    c->per_address = per_address;
    c->per_network = per_network;
    c->max_conns = max_conns;
    c->reserve = max_conns / 4;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void http_clients_free(struct http_clients *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c->by);
    free(c);
}

/* The entry of (key, net), or NULL; *spare gets a free entry (NULL if none). Locked. */
static struct client *find(struct http_clients *c, const uint8_t *key, bool net,
                           struct client **spare)
{
    *spare = NULL;
    for (unsigned i = 0; i < c->n; i++) {
        struct client *e = &c->by[i];
        if (e->conns == 0) {
            if (!*spare)
                *spare = e;
        } else if (e->net == net && memcmp(e->key, key, HTTP_CLIENT_KEY_LEN) == 0) {
            return e;
        }
    }
    return NULL;
}

static unsigned count_of(struct http_clients *c, const uint8_t *key, bool net)
{
    struct client *spare, *e = find(c, key, net, &spare);
    return e ? e->conns : 0;
}

/* Counts one more connection of (key, net): the entry's index + 1, 0 when the table is full.
 * Locked. */
static uint32_t count_one(struct http_clients *c, const uint8_t *key, bool net)
{
    struct client *spare, *e = find(c, key, net, &spare);

    if (!e && spare) {
        e = spare;
        memcpy(e->key, key, HTTP_CLIENT_KEY_LEN);
        e->net = net;
    }
    if (!e)
        return 0;
    e->conns++;
    return (uint32_t)(e - c->by) + 1;
}

/* Returns whether there was a connection to uncount. Locked. */
static bool uncount_one(struct http_clients *c, uint32_t index1)
{
    if (index1 == 0 || index1 > c->n || c->by[index1 - 1].conns == 0)
        return false;
    c->by[index1 - 1].conns--;
    return true;
}

/* Connections from the address, or from its network (net; 0 for an address without one). */
static unsigned count_for(struct http_clients *c, const struct sockaddr *sa, socklen_t len,
                          bool net)
{
    uint8_t addr[HTTP_CLIENT_KEY_LEN], net_key[HTTP_CLIENT_KEY_LEN];
    unsigned n;

    if (!http_client_keys(sa, len, addr, net_key) && net)
        return 0;
    pthread_mutex_lock(&c->mu);
    n = count_of(c, net ? net_key : addr, net);
    pthread_mutex_unlock(&c->mu);
    return n;
}

unsigned http_clients_count(struct http_clients *c, const struct sockaddr *sa, socklen_t len)
{
    return count_for(c, sa, len, false);
}

unsigned http_clients_net_count(struct http_clients *c, const struct sockaddr *sa, socklen_t len)
{
    return count_for(c, sa, len, true);
}

enum http_clients_verdict http_clients_admit(struct http_clients *c, const struct sockaddr *sa,
                                             socklen_t len)
{
    uint8_t addr[HTTP_CLIENT_KEY_LEN], net[HTTP_CLIENT_KEY_LEN];
    bool has_net = http_client_keys(sa, len, addr, net);
    enum http_clients_verdict v = HTTP_CLIENTS_ADMITTED;
    unsigned a, nn;

    pthread_mutex_lock(&c->mu);
    a = count_of(c, addr, false);
    nn = has_net ? count_of(c, net, true) : 0;
    if (c->total >= c->max_conns)
        v = HTTP_CLIENTS_FULL;
    else if (a >= c->per_address)
        v = HTTP_CLIENTS_PER_ADDRESS;
    else if (has_net && nn >= c->per_network)
        v = HTTP_CLIENTS_PER_NETWORK;
    else if (c->total + c->reserve >= c->max_conns && !(a == 0 && nn < c->per_address))
        v = HTTP_CLIENTS_RESERVE; /* the reserve: newcomers only */
    pthread_mutex_unlock(&c->mu);
    return v;
}

bool http_clients_admits(struct http_clients *c, const struct sockaddr *sa, socklen_t len)
{
    return http_clients_admit(c, sa, len) == HTTP_CLIENTS_ADMITTED;
}

uint32_t http_clients_add(struct http_clients *c, const struct sockaddr *sa, socklen_t len)
{
    uint8_t addr[HTTP_CLIENT_KEY_LEN], net[HTTP_CLIENT_KEY_LEN];
    bool has_net = http_client_keys(sa, len, addr, net);
    uint32_t a, n = 0;

    pthread_mutex_lock(&c->mu);
    a = count_one(c, addr, false);
    if (a && has_net && !(n = count_one(c, net, true))) {
        uncount_one(c, a); /* all or nothing */
        a = 0;
    }
    c->total += a != 0;
    pthread_mutex_unlock(&c->mu);
    return a ? a | n << 16 : 0;
}

void http_clients_remove(struct http_clients *c, uint32_t handle)
{
    pthread_mutex_lock(&c->mu);
    if (uncount_one(c, handle & 0xffffu)) /* the address's part: one connection fewer */
        c->total--;
    uncount_one(c, handle >> 16);
    pthread_mutex_unlock(&c->mu);
}
