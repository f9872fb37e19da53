/* http_clients: how many connections each HTTP client holds, so that one client cannot take
 * them all. Two limits: one per address, and for IPv6 one per /64 network. The /64 limit is
 * there because one IPv6 host gets a whole /64 (SLAAC, privacy addresses) and can connect from
 * as many of its addresses as it likes; it is looser than the address limit because a /64 is
 * also a whole LAN segment, whose hosts (Prometheus among them, perhaps) then share it. An
 * IPv4-mapped IPv6 address (a dual-stack socket's IPv4 client) is its IPv4 address, which has
 * the address limit only.
 *
 * Those limits alone let four addresses take every connection (4 x 16 of 64) and hold them,
 * each for up to the request deadline and again: Prometheus, connecting from a fifth, was
 * refused for as long as they kept at it. So the last quarter of the connections is kept for
 * newcomers: an address holding none, whose /64 (IPv6) holds fewer than an address may. Taking
 * every connection then needs some twenty addresses, not four.
 *
 * http.c asks http_clients_admit in libmicrohttpd's accept policy callback and counts the
 * connection in its start notification (both on the accepting thread, one connection after
 * the other, so admitting and counting cannot race), and uncounts it in its close notification.
 * Thread-safe. Memory: two entries per connection at most. */
#ifndef SIPSCOPE_HTTP_CLIENTS_H
#define SIPSCOPE_HTTP_CLIENTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define HTTP_CLIENT_KEY_LEN 16

/* The keys of an address: addr, the address itself (IPv4 as an IPv4-mapped IPv6 address);
 * net, its /64 (the address with its last 64 bits zeroed). Returns whether it has a network,
 * that is, is IPv6 and not IPv4-mapped (net is then written). Other families, or a short
 * address, are all the zero address, with no network. */
bool http_client_keys(const struct sockaddr *sa, socklen_t len, uint8_t addr[HTTP_CLIENT_KEY_LEN],
                      uint8_t net[HTTP_CLIENT_KEY_LEN]);

struct http_clients;

/* Counts for up to max_conns connections (the connection limit; up to 32767), with at most
 * per_address of them from one address and per_network from one IPv6 /64. NULL when out of
 * memory. */
struct http_clients *http_clients_new(unsigned max_conns, unsigned per_address,
                                      unsigned per_network);
void http_clients_free(struct http_clients *c);

/* Whether a connection from the address may be taken, and if not, which limit refuses it. */
enum http_clients_verdict {
    HTTP_CLIENTS_ADMITTED,
    HTTP_CLIENTS_FULL,        /* max_conns connections are counted already */
    HTTP_CLIENTS_PER_ADDRESS, /* the address holds per_address */
    HTTP_CLIENTS_PER_NETWORK, /* its /64 holds per_network */
    HTTP_CLIENTS_RESERVE,     /* a quarter or less are free, and it is no newcomer (above) */
};

/* HTTP_CLIENTS_ADMITTED when fewer than max_conns connections are counted, the address and its
 * network are both under their limits and, while a quarter or less of the connections are
 * free, the address is a newcomer (above); otherwise the first of those that fails, in that
 * order. */
enum http_clients_verdict http_clients_admit(struct http_clients *c, const struct sockaddr *sa,
                                             socklen_t len);

/* http_clients_admit(c, sa, len) == HTTP_CLIENTS_ADMITTED. */
bool http_clients_admits(struct http_clients *c, const struct sockaddr *sa, socklen_t len);

/* Counts a connection from the address. Returns a handle for http_clients_remove, 0 when the
 * table is full (the connection is then not counted). */
uint32_t http_clients_add(struct http_clients *c, const struct sockaddr *sa, socklen_t len);

/* Uncounts a connection counted by http_clients_add (handle 0: nothing). */
void http_clients_remove(struct http_clients *c, uint32_t handle);

/* Connections from the address, and from its network (0 for IPv4). For tests. */
unsigned http_clients_count(struct http_clients *c, const struct sockaddr *sa, socklen_t len);
unsigned http_clients_net_count(struct http_clients *c, const struct sockaddr *sa, socklen_t len);

#endif
