#include "http_clients.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct client {
    uint8_t key[HTTP_CLIENT_KEY_LEN];
    unsigned conns; /* 0: the entry is free */
};

struct http_clients {
    pthread_mutex_t mu;
    unsigned limit, n;
    struct client *by; /* n entries; a handle is an index + 1 */
};

void http_client_key(const struct sockaddr *sa, socklen_t len, uint8_t key[HTTP_CLIENT_KEY_LEN])
{
    memset(key, 0, HTTP_CLIENT_KEY_LEN);
    if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        key[10] = key[11] = 0xff; /* ::ffff:a.b.c.d, as a dual-stack socket gives it */
        memcpy(key + 12, &in->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6 &&
               len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(key, &in6->sin6_addr, HTTP_CLIENT_KEY_LEN);
        if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            memset(key + 8, 0, 8); /* the /64 */
    }
}

struct http_clients *http_clients_new(unsigned max_clients, unsigned limit)
{
    struct http_clients *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->by = calloc(max_clients ? max_clients : 1, sizeof(*c->by));
    if (!c->by) {
        free(c);
        return NULL;
    }
    c->n = max_clients ? max_clients : 1;
    c->limit = limit;
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

/* The entry of key, or NULL; *free_slot gets the first free entry (NULL if none). Locked. */
static struct client *find(struct http_clients *c, const uint8_t *key, struct client **free_slot)
{
    struct client *found = NULL;

    *free_slot = NULL;
    for (unsigned i = 0; i < c->n && !found; i++) {
        struct client *e = &c->by[i];
        if (e->conns == 0) {
            if (!*free_slot)
                *free_slot = e;
        } else if (memcmp(e->key, key, HTTP_CLIENT_KEY_LEN) == 0) {
            found = e;
        }
    }
    return found;
}

unsigned http_clients_count(struct http_clients *c, const struct sockaddr *sa, socklen_t len)
{
    uint8_t key[HTTP_CLIENT_KEY_LEN];
    struct client *e, *spare;
    unsigned n;

    http_client_key(sa, len, key);
    pthread_mutex_lock(&c->mu);
    e = find(c, key, &spare);
    n = e ? e->conns : 0;
    pthread_mutex_unlock(&c->mu);
    return n;
}

bool http_clients_admits(struct http_clients *c, const struct sockaddr *sa, socklen_t len)
{
    return http_clients_count(c, sa, len) < c->limit;
}

unsigned http_clients_add(struct http_clients *c, const struct sockaddr *sa, socklen_t len)
{
    uint8_t key[HTTP_CLIENT_KEY_LEN];
    struct client *e, *spare;
    unsigned handle = 0;

    http_client_key(sa, len, key);
    pthread_mutex_lock(&c->mu);
    e = find(c, key, &spare);
    if (!e && spare) {
        e = spare;
        memcpy(e->key, key, HTTP_CLIENT_KEY_LEN);
    }
    if (e) {
        e->conns++;
        handle = (unsigned)(e - c->by) + 1;
    }
    pthread_mutex_unlock(&c->mu);
    return handle;
}

void http_clients_remove(struct http_clients *c, unsigned handle)
{
    if (handle == 0 || handle > c->n)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->by[handle - 1].conns > 0)
        c->by[handle - 1].conns--;
    pthread_mutex_unlock(&c->mu);
}
