#include "capture_bpf.h"

#include <errno.h>

#include "test.h"

/* The live path (loading, attaching, counting) needs root and a network namespace: it is tested
 * in tests/e2e/test_capture_bpf_live.c. Here: the port list parser, and configuration errors that
 * capture_bpf_open reports before it touches the kernel. */

#define MAXR 8

static int parse(const char *spec, struct capture_bpf_port_range *r)
{
    return capture_bpf_parse_ports(spec, r, MAXR);
}

TEST(single_port_is_a_one_port_range)
{
    struct capture_bpf_port_range r[MAXR];
    CHECK_INT(parse("5060", r), 1);
    CHECK_INT(r[0].first, 5060);
    CHECK_INT(r[0].last, 5060);
}

TEST(ports_and_ranges_keep_their_order)
{
    struct capture_bpf_port_range r[MAXR];
    CHECK_INT(parse("5060,5062-5070,5080", r), 3);
    CHECK_INT(r[0].first, 5060);
    CHECK_INT(r[0].last, 5060);
    CHECK_INT(r[1].first, 5062);
    CHECK_INT(r[1].last, 5070);
    CHECK_INT(r[2].first, 5080);
    CHECK_INT(r[2].last, 5080);
}

TEST(whole_port_space_and_degenerate_range_are_accepted)
{
    struct capture_bpf_port_range r[MAXR];
    CHECK_INT(parse("1-65535", r), 1);
    CHECK_INT(r[0].first, 1);
    CHECK_INT(r[0].last, 65535);
    CHECK_INT(parse("5061-5061", r), 1);
    CHECK_INT(r[0].first, 5061);
    CHECK_INT(r[0].last, 5061);
}

TEST(overlapping_ranges_are_kept_as_written)
{
    struct capture_bpf_port_range r[MAXR];
    CHECK_INT(parse("5060-5070,5065", r), 2);
    CHECK_INT(r[1].first, 5065);
    CHECK_INT(r[1].last, 5065);
}

TEST(leading_zeros_are_decimal_not_octal)
{
    struct capture_bpf_port_range r[MAXR];
    CHECK_INT(parse("010", r), 1);
    CHECK_INT(r[0].first, 10);
}

TEST(port_zero_and_ports_past_65535_are_rejected)
{
    struct capture_bpf_port_range r[MAXR];
    CHECK_INT(parse("0", r), -EINVAL);
    CHECK_INT(parse("0-10", r), -EINVAL);
    CHECK_INT(parse("65536", r), -EINVAL);
    CHECK_INT(parse("5060-65536", r), -EINVAL);
    CHECK_INT(parse("99999999999999999999999", r), -EINVAL);
}

TEST(descending_range_is_rejected)
{
    struct capture_bpf_port_range r[MAXR];
    CHECK_INT(parse("5070-5060", r), -EINVAL);
}

TEST(malformed_lists_are_rejected)
{
    static const char *const bad[] = {
        "",      ",",     "5060,",     ",5060",          "5060,,5061", " 5060",
        "5060 ", "5060-", "-5060",     "5060-5061-5062", "a",          "5060x",
        "+5060", "50 60", "5060;5061", "5060-x",         "--",
    };
    struct capture_bpf_port_range r[MAXR];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int ret = parse(bad[i], r);
        if (ret != -EINVAL)
            TEST_FAIL_AT("\"%s\" gave %d, expected -EINVAL", bad[i], ret);
    }
    CHECK_INT(capture_bpf_parse_ports(NULL, r, MAXR), -EINVAL);
}

TEST(more_ranges_than_room_is_e2big)
{
    struct capture_bpf_port_range r[2];
    CHECK_INT(capture_bpf_parse_ports("1,2", r, 2), 2);
    CHECK_INT(capture_bpf_parse_ports("1,2,3", r, 2), -E2BIG);
    CHECK_INT(capture_bpf_parse_ports("1", r, 0), -E2BIG);
}

/* capture_bpf_open checks its configuration before it needs any privilege. */
static void check_open_fails(const struct capture_bpf_config *cfg, int want_errno,
                             const char *want_msg)
{
    char err[256] = "";
    struct capture_bpf *cap;

    errno = 0;
    cap = capture_bpf_open(cfg, err, sizeof(err));
    CHECK(cap == NULL);
    capture_bpf_free(cap);
    CHECK_INT(errno, want_errno);
    CHECK_STR(err, want_msg);
}

static const struct capture_bpf_port_range sip_port = {5060, 5060};

TEST(open_refuses_a_configuration_without_ports)
{
    struct capture_bpf_config cfg = {0};
    check_open_fails(&cfg, EINVAL, "no SIP ports configured");
}

TEST(open_refuses_a_snap_length_out_of_range)
{
    struct capture_bpf_config cfg = {.ports = &sip_port, .n_ports = 1, .snaplen = 127};
    check_open_fails(&cfg, EINVAL, "snap length 127 is outside 128..65535");
    cfg.snaplen = 65536;
    check_open_fails(&cfg, EINVAL, "snap length 65536 is outside 128..65535");
}

TEST(open_refuses_a_ring_buffer_size_the_kernel_would_reject)
{
    struct capture_bpf_config cfg = {.ports = &sip_port, .n_ports = 1, .ringbuf_size = 3 << 20};
    check_open_fails(&cfg, EINVAL,
                     "ring buffer size 3145728 is not a power of two of at least 4096 bytes");
    cfg.ringbuf_size = 2048;
    check_open_fails(&cfg, EINVAL,
                     "ring buffer size 2048 is not a power of two of at least 4096 bytes");
}

TEST(open_names_an_unknown_interface)
{
    const char *names[] = {"lo", "sipscope-nx0"};
    struct capture_bpf_config cfg = {
        .ports = &sip_port, .n_ports = 1, .ifaces = names, .n_ifaces = 2};
    check_open_fails(&cfg, ENODEV, "unknown interface 'sipscope-nx0'");
}

TEST(open_refuses_any_mixed_with_named_interfaces)
{
    const char *names[] = {"lo", "any"};
    struct capture_bpf_config cfg = {
        .ports = &sip_port, .n_ports = 1, .ifaces = names, .n_ifaces = 2};
    check_open_fails(&cfg, EINVAL, "'any' cannot be combined with other interfaces");
}

TEST(open_refuses_an_interface_listed_twice)
{
    const char *names[] = {"lo", "lo"};
    struct capture_bpf_config cfg = {
        .ports = &sip_port, .n_ports = 1, .ifaces = names, .n_ifaces = 2};
    check_open_fails(&cfg, EINVAL, "interface 'lo' is listed twice");
}

TEST_MAIN()
