#include "portset.h"

#include <errno.h>

#include "test.h"

TEST(single_ports_and_ranges_are_members)
{
    struct portset s;
    char err[128];
    CHECK_INT(portset_parse(&s, "5060, 5062-5064,65535", err, sizeof(err)), 0);
    CHECK_INT(s.count, 5);
    CHECK(portset_has(&s, 5060));
    CHECK(!portset_has(&s, 5061));
    CHECK(portset_has(&s, 5062));
    CHECK(portset_has(&s, 5064));
    CHECK(!portset_has(&s, 5065));
    CHECK(portset_has(&s, 65535));
}

TEST(overlapping_ranges_count_each_port_once)
{
    struct portset s;
    char err[128];
    CHECK_INT(portset_parse(&s, "10-20,15-25,20", err, sizeof(err)), 0);
    CHECK_INT(s.count, 16);
}

TEST(bad_lists_are_rejected_with_a_reason)
{
    struct portset s;
    char err[128];
    const char *bad[] = {"", ",", "5060,", "0", "65536", "abc", "10-5", "5060-", "5060;5061",
                         "-5", "1 2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        CHECK_INT(portset_parse(&s, bad[i], err, sizeof(err)), -EINVAL);
        CHECK(err[0] != 0);
    }
}

TEST_MAIN()
