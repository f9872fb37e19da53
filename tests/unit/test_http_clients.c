/* http_clients: who counts as one client, and the counts per client. */
#include "http_clients.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "test.h"

static struct sockaddr_in v4(const char *a)
{
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(1234)};
    inet_pton(AF_INET, a, &s.sin_addr);
    return s;
}

static struct sockaddr_in6 v6(const char *a)
{
    struct sockaddr_in6 s = {.sin6_family = AF_INET6, .sin6_port = htons(1234)};
    inet_pton(AF_INET6, a, &s.sin6_addr);
    return s;
}

#define SA(x) ((const struct sockaddr *)(const void *)&(x)), (socklen_t)sizeof(x)

/* The key as text (hex), for exact comparisons. */
static const char *key_hex(const struct sockaddr *sa, socklen_t len, char *out)
{
    uint8_t k[HTTP_CLIENT_KEY_LEN];
    http_client_key(sa, len, k);
    for (int i = 0; i < HTTP_CLIENT_KEY_LEN; i++)
        sprintf(out + 2 * i, "%02x", k[i]);
    return out;
}

TEST(an_ipv4_address_is_one_client_and_an_ipv6_host_is_its_slash_64)
{
    char a[40], b[40];
    struct sockaddr_in p = v4("192.0.2.7"), q = v4("192.0.2.8");
    struct sockaddr_in6 m = v6("::ffff:192.0.2.7"), x = v6("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
                        y = v6("2001:db8:1:2::1"), z = v6("2001:db8:1:3::1");

    CHECK(strcmp(key_hex(SA(p), a), "00000000000000000000ffffc0000207") == 0);
    /* A dual-stack socket's IPv4 client is the same client as on an IPv4 socket. */
    CHECK(strcmp(key_hex(SA(m), b), a) == 0);
    CHECK(strcmp(key_hex(SA(q), b), "00000000000000000000ffffc0000208") == 0);
    CHECK(strcmp(key_hex(SA(x), a), "20010db8000100020000000000000000") == 0);
    CHECK(strcmp(key_hex(SA(y), b), a) == 0);
    CHECK(strcmp(key_hex(SA(z), b), "20010db8000100030000000000000000") == 0);
    /* A short address, or none, is the zero key. */
    CHECK(strcmp(key_hex((const struct sockaddr *)&x, 8, a), "00000000000000000000000000000000") ==
          0);
    CHECK(strcmp(key_hex(NULL, 0, a), "00000000000000000000000000000000") == 0);
}

TEST(each_client_gets_at_most_its_limit_and_a_closed_connection_frees_its_place)
{
    struct http_clients *c = http_clients_new(4, 2);
    struct sockaddr_in6 x1 = v6("2001:db8::1"), x2 = v6("2001:db8::2"), other = v6("2001:db8:0:1::1");
    struct sockaddr_in p = v4("192.0.2.1");
    unsigned h1, h2, h3;

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(http_clients_admits(c, SA(x1)));
    h1 = http_clients_add(c, SA(x1));
    CHECK(http_clients_admits(c, SA(x2)));
    h2 = http_clients_add(c, SA(x2)); /* same /64: the same client */
    CHECK_INT(http_clients_count(c, SA(x1)), 2);
    CHECK(!http_clients_admits(c, SA(x1)));
    CHECK(!http_clients_admits(c, SA(x2)));
    CHECK(http_clients_admits(c, SA(other)));
    CHECK(http_clients_admits(c, SA(p)));
    CHECK_INT(h1, h2);
    http_clients_remove(c, h1);
    CHECK_INT(http_clients_count(c, SA(x2)), 1);
    CHECK(http_clients_admits(c, SA(x2)));
    h3 = http_clients_add(c, SA(p));
    CHECK(h3 != 0 && h3 != h2);
    http_clients_remove(c, h2);
    http_clients_remove(c, h3);
    http_clients_remove(c, h3); /* once too often: stays at 0 */
    http_clients_remove(c, 0);
    http_clients_remove(c, 99);
    CHECK_INT(http_clients_count(c, SA(x1)), 0);
    CHECK_INT(http_clients_count(c, SA(p)), 0);
    http_clients_free(c);
}

TEST(a_full_table_counts_no_more_clients_and_refuses_none)
{
    /* It cannot fill up behind libmicrohttpd's connection limit (one entry per connection at
     * most); if it ever did, a connection would go uncounted rather than be refused. */
    struct http_clients *c = http_clients_new(2, 1);
    struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2"), d = v4("192.0.2.3");

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(http_clients_add(c, SA(a)) != 0);
    CHECK(http_clients_add(c, SA(b)) != 0);
    CHECK(http_clients_admits(c, SA(d)));
    CHECK_INT(http_clients_add(c, SA(d)), 0);
    CHECK_INT(http_clients_count(c, SA(d)), 0);
    http_clients_free(c);
}

TEST_MAIN()
