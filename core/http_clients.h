/* http_clients: how many connections each HTTP client holds, so that one client cannot take
 * them all. A client is an IPv4 address, or an IPv6 /64: one host gets a whole /64 (SLAAC,
 * privacy addresses), so an address-by-address count let one IPv6 host open connections from
 * as many addresses as it liked. An IPv4-mapped IPv6 address (a dual-stack socket's IPv4
 * client) is its IPv4 address.
 *
 * http.c asks http_clients_admits in libmicrohttpd's accept policy callback and counts the
 * connection in its start notification (both on the accepting thread, one connection after
 * the other, so admitting and counting cannot race), and uncounts it in its close notification.
 * Thread-safe. Memory: one entry per client with a connection, at most the connection limit. */
#ifndef SIPSCOPE_HTTP_CLIENTS_H
#define SIPSCOPE_HTTP_CLIENTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define HTTP_CLIENT_KEY_LEN 16

/* The client of an address: its IPv4 address as an IPv4-mapped IPv6 address, or its IPv6
 * address with the last 64 bits zeroed; other families (or a short address) are all one client,
 * the zero key. */
void http_client_key(const struct sockaddr *sa, socklen_t len, uint8_t key[HTTP_CLIENT_KEY_LEN]);

struct http_clients;

/* Counts for up to max_clients clients (the connection limit), each allowed at most limit
 * connections. NULL when out of memory. */
struct http_clients *http_clients_new(unsigned max_clients, unsigned limit);
void http_clients_free(struct http_clients *c);

/* True when the address's client holds fewer than limit connections. */
bool http_clients_admits(struct http_clients *c, const struct sockaddr *sa, socklen_t len);

/* Counts a connection of the address's client. Returns a handle for http_clients_remove (> 0),
 * or 0 when the table is full (the connection is then not counted). */
unsigned http_clients_add(struct http_clients *c, const struct sockaddr *sa, socklen_t len);

/* Uncounts a connection counted by http_clients_add (handle 0: nothing). */
void http_clients_remove(struct http_clients *c, unsigned handle);

/* Connections the address's client holds (for tests). */
unsigned http_clients_count(struct http_clients *c, const struct sockaddr *sa, socklen_t len);

#endif
