/* http_clients: the keys of an address, and the counts per address and per IPv6 /64. */
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

/* The keys as text (hex): "ADDR" or "ADDR/NET" when the address has a network. */
static const char *keys_hex(const struct sockaddr *sa, socklen_t len, char *out)
{
    uint8_t a[HTTP_CLIENT_KEY_LEN], n[HTTP_CLIENT_KEY_LEN];
    bool has_net = http_client_keys(sa, len, a, n);
    char *o = out;
    for (int i = 0; i < HTTP_CLIENT_KEY_LEN; i++)
        o += sprintf(o, "%02x", a[i]);
    if (has_net) {
        *o++ = '/';
        for (int i = 0; i < HTTP_CLIENT_KEY_LEN; i++)
            o += sprintf(o, "%02x", n[i]);
    }
    *o = 0;
    return out;
}

TEST(an_address_is_its_own_key_and_an_ipv6_one_has_its_slash_64)
{
    char a[80], b[80];
    struct sockaddr_in p = v4("192.0.2.7");
    struct sockaddr_in6 m = v6("::ffff:192.0.2.7"), x = v6("2001:db8:1:2:aaaa:bbbb:cccc:dddd");

    CHECK_STR(keys_hex(SA(p), a), "00000000000000000000ffffc0000207");
    /* A dual-stack socket's IPv4 client is the same address as on an IPv4 socket. */
    CHECK_STR(keys_hex(SA(m), b), a);
    CHECK_STR(keys_hex(SA(x), a),
              "20010db800010002aaaabbbbccccdddd/20010db8000100020000000000000000");
    /* A short address, or none, is the zero address, with no network. */
    CHECK_STR(keys_hex((const struct sockaddr *)&x, 8, a), "00000000000000000000000000000000");
    CHECK_STR(keys_hex(NULL, 0, a), "00000000000000000000000000000000");
}

TEST(each_address_and_each_slash_64_gets_at_most_its_limit)
{
    struct http_clients *c = http_clients_new(8, 2, 3);
    struct sockaddr_in6 x1 = v6("2001:db8::1"), x2 = v6("2001:db8::2"), x3 = v6("2001:db8::3"),
                        other = v6("2001:db8:0:1::1"), net_like = v6("2001:db8::");
    struct sockaddr_in p = v4("192.0.2.1");
    uint32_t h[4];

    CHECK(c != NULL);
    if (!c)
        return;
    h[0] = http_clients_add(c, SA(x1));
    h[1] = http_clients_add(c, SA(x1));
    CHECK_INT(http_clients_count(c, SA(x1)), 2);
    CHECK(!http_clients_admits(c, SA(x1))); /* the address is full */
    CHECK(http_clients_admits(c, SA(x2)));  /* its /64 is not: 2 of 3 */
    h[2] = http_clients_add(c, SA(x2));
    CHECK_INT(http_clients_net_count(c, SA(x3)), 3);
    CHECK(!http_clients_admits(c, SA(x3))); /* a new address, but the /64 is full */
    CHECK(http_clients_admits(c, SA(other)));
    /* The /64's own address (all host bits zero) is an address like another, not the network. */
    CHECK_INT(http_clients_count(c, SA(net_like)), 0);
    /* IPv4 has the address limit only. */
    h[3] = http_clients_add(c, SA(p));
    CHECK(http_clients_admits(c, SA(p)));
    CHECK_INT(http_clients_net_count(c, SA(p)), 0);
    http_clients_remove(c, h[0]);
    CHECK_INT(http_clients_count(c, SA(x1)), 1);
    CHECK_INT(http_clients_net_count(c, SA(x1)), 2);
    CHECK(http_clients_admits(c, SA(x3)));
    http_clients_remove(c, h[1]);
    http_clients_remove(c, h[2]);
    http_clients_remove(c, h[3]);
    http_clients_remove(c, h[3]); /* once too often: stays at 0 */
    http_clients_remove(c, 0);
    CHECK_INT(http_clients_count(c, SA(x1)), 0);
    CHECK_INT(http_clients_net_count(c, SA(x1)), 0);
    CHECK_INT(http_clients_count(c, SA(p)), 0);
    http_clients_free(c);
}

TEST(the_last_quarter_of_the_connections_is_kept_for_newcomers)
{
    /* 8 connections, 4 per address: the last 2 go only to an address that holds none. */
    struct http_clients *c = http_clients_new(8, 4, 6);
    struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2"), n1 = v4("192.0.2.3"),
                       n2 = v4("192.0.2.4");
    uint32_t hb[3];

    CHECK(c != NULL);
    if (!c)
        return;
    for (int i = 0; i < 3; i++) {
        http_clients_add(c, SA(a));
        hb[i] = http_clients_add(c, SA(b));
    }
    /* 6 held: a and b are under their limit of 4, but the 2 left are the reserve. */
    CHECK(!http_clients_admits(c, SA(a)));
    CHECK(!http_clients_admits(c, SA(b)));
    CHECK(http_clients_admits(c, SA(n1)));
    http_clients_add(c, SA(n1));
    CHECK(!http_clients_admits(c, SA(n1))); /* no longer a newcomer */
    CHECK(http_clients_admits(c, SA(n2)));
    /* Two of b's close: 5 held, the reserve is whole again, and a may have its fourth. */
    http_clients_remove(c, hb[0]);
    CHECK(!http_clients_admits(c, SA(a))); /* 6 held */
    http_clients_remove(c, hb[1]);
    CHECK(http_clients_admits(c, SA(a)));
    CHECK_INT(http_clients_count(c, SA(a)), 3);
    http_clients_free(c);

    /* IPv6: an address new to a /64 that holds as many as an address may is no newcomer. */
    c = http_clients_new(8, 2, 4);
    struct sockaddr_in6 x1 = v6("2001:db8::1"), x2 = v6("2001:db8::2"), y = v6("2001:db8:0:1::1");
    struct sockaddr_in p1 = v4("192.0.2.1"), p2 = v4("192.0.2.2");
    CHECK(c != NULL);
    if (!c)
        return;
    http_clients_add(c, SA(x1));
    http_clients_add(c, SA(x1));
    CHECK(http_clients_admits(c, SA(x2))); /* outside the reserve, the /64's limit is 4 */
    http_clients_add(c, SA(p1));
    http_clients_add(c, SA(p1));
    http_clients_add(c, SA(p2));
    http_clients_add(c, SA(p2));
    CHECK(!http_clients_admits(c, SA(x2)));
    CHECK(http_clients_admits(c, SA(y)));
    http_clients_free(c);
}

TEST(a_full_table_counts_no_more_and_the_connection_limit_refuses_first)
{
    /* It cannot fill up behind the connection limit (two entries per connection at most), which
     * http_clients_admit enforces itself; if it ever did, a connection would go uncounted
     * rather than be refused. Here one connection's room holds one IPv6 address and its
     * network, and nothing more. */
    struct http_clients *c = http_clients_new(1, 1, 1);
    struct sockaddr_in6 a = v6("2001:db8::1"), b = v6("2001:db8:0:1::1");

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(http_clients_add(c, SA(a)) != 0);
    CHECK_INT(http_clients_admit(c, SA(b)), HTTP_CLIENTS_FULL);
    CHECK_INT(http_clients_add(c, SA(b)), 0);
    CHECK_INT(http_clients_count(c, SA(b)), 0); /* all or nothing: not the address alone */
    http_clients_free(c);
}

/* A refusal says which limit refused (http.c counts them by reason): 8 connections, 2 per
 * address and 3 per /64, so the last 2 are the reserve. */
TEST(a_refusal_names_the_limit_that_refused)
{
    struct http_clients *c = http_clients_new(8, 2, 3);
    struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2"), d = v4("192.0.2.3"),
                       e = v4("192.0.2.4"), f = v4("192.0.2.5");
    struct sockaddr_in6 x1 = v6("2001:db8::1"), x2 = v6("2001:db8::2"), x3 = v6("2001:db8::3");

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_INT(http_clients_admit(c, SA(a)), HTTP_CLIENTS_ADMITTED);
    http_clients_add(c, SA(a));
    http_clients_add(c, SA(a));
    CHECK_INT(http_clients_admit(c, SA(a)), HTTP_CLIENTS_PER_ADDRESS); /* 2 of 2 */
    http_clients_add(c, SA(x1));
    http_clients_add(c, SA(x2));
    http_clients_add(c, SA(x2));
    CHECK_INT(http_clients_admit(c, SA(x3)), HTTP_CLIENTS_PER_NETWORK); /* 3 of 3 in the /64 */
    CHECK_INT(http_clients_admit(c, SA(x1)), HTTP_CLIENTS_PER_NETWORK); /* 1 of 2: the /64 */
    CHECK_INT(http_clients_admit(c, SA(x2)), HTTP_CLIENTS_PER_ADDRESS); /* both: the address */
    http_clients_add(c, SA(b));
    /* 6 held, 2 left: b holds one, so it is no newcomer; d holds none. */
    CHECK_INT(http_clients_admit(c, SA(b)), HTTP_CLIENTS_RESERVE);
    CHECK_INT(http_clients_admit(c, SA(d)), HTTP_CLIENTS_ADMITTED);
    http_clients_add(c, SA(d));
    CHECK_INT(http_clients_admit(c, SA(e)), HTTP_CLIENTS_ADMITTED);
    http_clients_add(c, SA(e));
    /* 8 held: every address is refused for the total, the newcomer f too, and a full address
     * for the total first. */
    CHECK_INT(http_clients_admit(c, SA(f)), HTTP_CLIENTS_FULL);
    CHECK_INT(http_clients_admit(c, SA(a)), HTTP_CLIENTS_FULL);
    CHECK(!http_clients_admits(c, SA(f)));
    http_clients_free(c);
}

TEST_MAIN()
