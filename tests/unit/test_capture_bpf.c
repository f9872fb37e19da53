#include "capture_bpf.h"

#include <errno.h>

#include "test.h"

/* The live path (loading, attaching, counting) needs root and a network namespace: it is tested
 * in tests/e2e/test_capture_bpf_live.c. Here: configuration errors that capture_bpf_open reports
 * before it touches the kernel (port lists are parsed by portset, tested in test_portset.c). */

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

static struct portset sip_port;

__attribute__((constructor)) static void sip_port_init(void)
{
    portset_add(&sip_port, 5060);
}

TEST(open_refuses_a_configuration_without_ports)
{
    struct capture_bpf_config cfg = {0};
    check_open_fails(&cfg, EINVAL, "no SIP ports configured");
}

TEST(open_refuses_a_snap_length_out_of_range)
{
    struct capture_bpf_config cfg = {.ports = &sip_port, .snaplen = 127};
    check_open_fails(&cfg, EINVAL, "snap length 127 is outside 128..262144");
    cfg.snaplen = 262145;
    check_open_fails(&cfg, EINVAL, "snap length 262145 is outside 128..262144");
}

TEST(open_refuses_a_ring_buffer_size_the_kernel_would_reject)
{
    struct capture_bpf_config cfg = {.ports = &sip_port, .ringbuf_size = 3 << 20};
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
        .ports = &sip_port, .ifaces = names, .n_ifaces = 2};
    check_open_fails(&cfg, ENODEV, "unknown interface 'sipscope-nx0'");
}

TEST(open_refuses_any_mixed_with_named_interfaces)
{
    const char *names[] = {"lo", "any"};
    struct capture_bpf_config cfg = {
        .ports = &sip_port, .ifaces = names, .n_ifaces = 2};
    check_open_fails(&cfg, EINVAL, "'any' cannot be combined with other interfaces");
}

TEST(open_refuses_an_interface_listed_twice)
{
    const char *names[] = {"lo", "lo"};
    struct capture_bpf_config cfg = {
        .ports = &sip_port, .ifaces = names, .n_ifaces = 2};
    check_open_fails(&cfg, EINVAL, "interface 'lo' is listed twice");
}

TEST_MAIN()
