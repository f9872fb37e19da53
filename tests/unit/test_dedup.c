#include "dedup.h"

#include "capture.h"
#include "test.h"

#define MS 1000000ull
#define WINDOW (10 * MS)

/* A UDP datagram with the given payload; addresses and ports as given. */
static struct packet udp(const char *payload, uint8_t last_addr_byte, uint16_t sport)
{
    struct packet p = {0};
    p.ip_version = 4;
    p.l4_proto = 17;
    p.src[0] = 10;
    p.src[3] = last_addr_byte;
    p.dst[0] = 192;
    p.sport = sport;
    p.dport = 5060;
    p.payload = (const uint8_t *)payload;
    p.payload_len = (uint32_t)strlen(payload);
    return p;
}

static const char msg_a[] = "OPTIONS sip:a@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\n\r\n";
static const char msg_b[] = "OPTIONS sip:a@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\r\n\r\n";

/* The same packet as p, captured on another interface. */
static struct packet elsewhere(struct packet p)
{
    p.iface++;
    return p;
}

TEST(a_copy_within_the_window_is_a_repeat_and_the_first_is_not)
{
    struct dedup *d = dedup_new(WINDOW);
    struct packet p = udp(msg_a, 1, 5060), copy = elsewhere(p);
    CHECK(d != NULL);
    CHECK(!dedup_repeat(d, DECODE_UDP, &p, 1000 * MS));
    CHECK(dedup_repeat(d, DECODE_UDP, &copy, 1000 * MS));          /* same instant */
    CHECK(dedup_repeat(d, DECODE_UDP, &copy, 1000 * MS + WINDOW)); /* the window's end is in */
    /* A copy is measured from the first, not from the copy before it. */
    CHECK(!dedup_repeat(d, DECODE_UDP, &copy, 1000 * MS + WINDOW + 1));
    dedup_free(d);
    dedup_free(NULL);
}

TEST(a_copy_is_seen_on_another_path_the_same_path_again_is_a_packet_sent_again)
{
    struct dedup *d = dedup_new(WINDOW);
    struct packet p = udp(msg_a, 1, 5060);
    struct packet out = p, tagged = p, other_sender = udp(msg_a, 99, 40000);
    out.dir = CAPTURE_DIR_OUTGOING; /* in and out of one interface (hairpin NAT) */
    tagged.n_vlans = 1;
    tagged.vlans[0] = 100; /* a VLAN's parent: the tag is in the frame */
    CHECK(!dedup_repeat(d, DECODE_UDP, &p, 100 * MS));
    /* Sent again on the same path (a flood, a test tool), or the same bytes from another
     * sender on it: each one counts. */
    CHECK(!dedup_repeat(d, DECODE_UDP, &p, 100 * MS + 1000));
    CHECK(!dedup_repeat(d, DECODE_UDP, &other_sender, 100 * MS + 2000));
    CHECK(dedup_repeat(d, DECODE_UDP, &out, 100 * MS + 3000));
    CHECK(dedup_repeat(d, DECODE_UDP, &tagged, 100 * MS + 4000));
    struct packet other = udp(msg_b, 1, 5060), other_copy = elsewhere(other);
    CHECK(!dedup_repeat(d, DECODE_UDP, &other_copy, 100 * MS + 6000)); /* one byte differs */
    CHECK(dedup_repeat(d, DECODE_UDP, &other, 100 * MS + 7000));
    dedup_free(d);
}

/* Traffic for other hosts (a SPAN port, a TAP) or in a mirroring tunnel comes from a mirror,
 * which sends a packet twice on one path when it copies two ports the packet crosses: there
 * the same bytes again are a copy on any path. */
TEST(a_mirror_sends_copies_on_one_path)
{
    struct dedup *d = dedup_new(WINDOW);
    struct packet span = udp(msg_a, 1, 5060), tunnel = udp(msg_b, 1, 5060);
    span.dir = CAPTURE_DIR_OTHERHOST;
    tunnel.mirrored = 1;
    CHECK(!dedup_repeat(d, DECODE_UDP, &span, 0));
    CHECK(dedup_repeat(d, DECODE_UDP, &span, 1000));
    CHECK(!dedup_repeat(d, DECODE_UDP, &tunnel, 2000));
    CHECK(dedup_repeat(d, DECODE_UDP, &tunnel, 3000));
    CHECK(!dedup_repeat(d, DECODE_UDP, &span, WINDOW + 1)); /* past the window: sent again */
    dedup_free(d);
}

/* A HEP agent's copy of a packet captured here, or two agents' copies of one packet (the two
 * ends of a trunk), came through different tunnels' sources. */
TEST(copies_from_hep_agents_come_from_elsewhere)
{
    struct dedup *d = dedup_new(WINDOW);
    struct packet here = udp(msg_a, 1, 5060), agent_x = here, agent_y = here;
    agent_x.tunnels = agent_y.tunnels = 1;
    agent_x.tunnel_from = 0x1234;
    agent_y.tunnel_from = 0x5679;
    CHECK(!dedup_repeat(d, DECODE_UDP, &here, 0));
    CHECK(dedup_repeat(d, DECODE_UDP, &agent_x, 1000));
    CHECK(dedup_repeat(d, DECODE_UDP, &agent_y, 2000));
    CHECK(!dedup_repeat(d, DECODE_UDP, &here, 3000)); /* here again: sent again */
    dedup_free(d);
}

/* Sent again on its path, a packet's copies are measured from the last time: the copy of one
 * sent again just before the window's end still is one. */
TEST(a_packet_sent_again_restarts_its_window)
{
    struct dedup *d = dedup_new(WINDOW);
    struct packet p = udp(msg_a, 1, 5060), copy = elsewhere(p);
    CHECK(!dedup_repeat(d, DECODE_UDP, &p, 0));
    CHECK(!dedup_repeat(d, DECODE_UDP, &p, 9 * MS));
    CHECK(dedup_repeat(d, DECODE_UDP, &copy, 9 * MS + WINDOW));
    dedup_free(d);
}

/* A file of plain Ethernet frames says no direction: there addresses and ports stand in for the
 * path, so that a copy NATed on its way is one. A Linux cooked v2 header (tcpdump -i any) names
 * the interface. */
TEST(files_tell_paths_by_addresses_without_a_direction_and_by_cooked_ifindex)
{
    struct dedup *d = dedup_new(WINDOW);
    struct packet p = udp(msg_a, 1, 5060), nat = udp(msg_a, 99, 40000);
    p.dir = nat.dir = CAPTURE_DIR_UNKNOWN;
    CHECK(!dedup_repeat(d, DECODE_UDP, &p, 0));
    CHECK(dedup_repeat(d, DECODE_UDP, &nat, 1000));
    CHECK(!dedup_repeat(d, DECODE_UDP, &p, 2000)); /* its own path again */
    struct packet slave = udp(msg_b, 1, 5060), bond = slave;
    slave.link_ifindex = 3;
    bond.link_ifindex = 5;
    CHECK(!dedup_repeat(d, DECODE_UDP, &slave, 3000));
    CHECK(dedup_repeat(d, DECODE_UDP, &bond, 4000));
    dedup_free(d);
}

TEST(a_retransmission_after_the_window_is_kept_and_remembered_afresh)
{
    struct dedup *d = dedup_new(WINDOW);
    struct packet p = udp(msg_a, 1, 5060), copy = elsewhere(p);
    CHECK(!dedup_repeat(d, DECODE_UDP, &p, 5 * MS));
    CHECK(!dedup_repeat(d, DECODE_UDP, &copy, 505 * MS)); /* T1 later: a retransmission */
    CHECK(dedup_repeat(d, DECODE_UDP, &p, 506 * MS));     /* and its copy */
    dedup_free(d);
}

TEST(tcp_segments_differ_by_sequence_number_and_flags)
{
    struct dedup *d = dedup_new(WINDOW);
    struct packet p = udp(msg_a, 1, 5060);
    uint64_t t = 50 * MS;
    p.l4_proto = 6;
    p.tcp_seq = 1000;
    p.tcp_flags = 0x18;
    struct packet copy = elsewhere(p);
    CHECK(!dedup_repeat(d, DECODE_TCP, &p, t));
    CHECK(dedup_repeat(d, DECODE_TCP, &copy, t + 1));
    copy.tcp_seq = 1001; /* the same bytes elsewhere in the stream (or in another one) */
    CHECK(!dedup_repeat(d, DECODE_TCP, &copy, t + 2));
    copy.tcp_flags = 0x19; /* with FIN */
    CHECK(!dedup_repeat(d, DECODE_TCP, &copy, t + 3));
    /* A UDP datagram with a TCP segment's payload is not its copy. */
    struct packet u = elsewhere(udp(msg_a, 1, 5060));
    CHECK(!dedup_repeat(d, DECODE_UDP, &u, t + 4));
    dedup_free(d);
}

/* The second of three fragments of datagram 7 from host 10.0.0.HOST. */
static struct packet middle_fragment(uint8_t host)
{
    struct packet f = udp("the same eight bytes", host, 0);
    f.frag_id = 7;
    f.frag_offset = 1480;
    f.frag_more = 1;
    return f;
}

TEST(fragments_differ_by_id_offset_more_flag_and_addresses)
{
    struct dedup *d = dedup_new(WINDOW);
    struct packet f = middle_fragment(1), copy = elsewhere(f), nat = middle_fragment(99);
    uint64_t t = 70 * MS;
    CHECK(!dedup_repeat(d, DECODE_FRAGMENT, &f, t));
    CHECK(dedup_repeat(d, DECODE_FRAGMENT, &copy, t + 1));
    /* NATed on its way, a fragment is part of another datagram to reassemble: the datagram,
     * whole, is the copy. So is a fragment of another host's datagram with the same id. */
    CHECK(!dedup_repeat(d, DECODE_FRAGMENT, &nat, t + 2));
    copy.frag_offset = 2960;
    CHECK(!dedup_repeat(d, DECODE_FRAGMENT, &copy, t + 3));
    copy.frag_more = 0;
    CHECK(!dedup_repeat(d, DECODE_FRAGMENT, &copy, t + 4));
    copy.frag_id = 8;
    CHECK(!dedup_repeat(d, DECODE_FRAGMENT, &copy, t + 5));
    struct packet again = elsewhere(f); /* id 7 at 1480 from the first host: still known */
    CHECK(dedup_repeat(d, DECODE_FRAGMENT, &again, t + 6));
    dedup_free(d);
}

TEST(only_whole_udp_tcp_and_fragments_are_looked_at)
{
    struct dedup *d = dedup_new(WINDOW);
    struct packet p = udp(msg_a, 1, 5060), copy = elsewhere(p);
    CHECK(!dedup_repeat(d, DECODE_SKIP, &p, 0));
    CHECK(!dedup_repeat(d, DECODE_ERROR, &p, 0));
    CHECK(!dedup_repeat(d, DECODE_UDP, &copy, 0)); /* nothing was remembered above */
    /* A packet cut at the snap length is cut elsewhere at another length: kept, unremembered. */
    struct packet cut = udp(msg_b, 1, 5060), cut_copy = elsewhere(cut);
    cut.truncated = cut_copy.truncated = 1;
    CHECK(!dedup_repeat(d, DECODE_UDP, &cut, 0));
    CHECK(!dedup_repeat(d, DECODE_UDP, &cut_copy, 0));
    dedup_free(d);
}

TEST(time_going_back_is_measured_either_way)
{
    struct dedup *d = dedup_new(WINDOW);
    struct packet p = udp(msg_a, 1, 5060), copy = elsewhere(p);
    CHECK(!dedup_repeat(d, DECODE_UDP, &p, 900 * MS));
    CHECK(dedup_repeat(d, DECODE_UDP, &copy, 895 * MS));  /* 5 ms before: a copy */
    CHECK(!dedup_repeat(d, DECODE_UDP, &copy, 800 * MS)); /* 100 ms before: not */
    dedup_free(d);
}

/* Many more packets than the table holds within one window: it stays bounded (fixed slots), the
 * latest of them are still recognised, and a packet that no slot remembers is taken for new. */
TEST(a_full_table_forgets_the_oldest_and_never_takes_a_new_packet_for_a_copy)
{
    struct dedup *d = dedup_new(WINDOW);
    char buf[64];
    struct packet p = udp(msg_a, 1, 5060), copy = elsewhere(p);
    unsigned n = DEDUP_SLOTS * 4, repeats = 0;

    p.payload = copy.payload = (const uint8_t *)buf;
    for (unsigned i = 0; i < n; i++) {
        p.payload_len = (uint32_t)snprintf(buf, sizeof(buf), "packet %u", i);
        repeats += dedup_repeat(d, DECODE_UDP, &p, 1000 * MS + i);
    }
    CHECK_INT(repeats, 0);
    /* The last few hundred are all still there: each bucket keeps its four latest. */
    repeats = 0;
    for (unsigned i = n - 256; i < n; i++) {
        copy.payload_len = (uint32_t)snprintf(buf, sizeof(buf), "packet %u", i);
        repeats += dedup_repeat(d, DECODE_UDP, &copy, 1000 * MS + n);
    }
    CHECK_INT(repeats, 256);
    dedup_free(d);
}

TEST_MAIN()
