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

TEST(ranges_that_meet_without_overlapping_are_members)
{
    struct portset s;
    char err[128];
    CHECK_INT(portset_parse(&s, "10-14,15-20,21", err, sizeof(err)), 0);
    CHECK_INT(s.count, 12);
    CHECK(portset_has(&s, 10));
    CHECK(portset_has(&s, 21));
    CHECK(!portset_has(&s, 22));
}

TEST(a_port_in_two_items_is_refused_by_number)
{
    struct portset s;
    char err[128];
    CHECK_INT(portset_parse(&s, "5060,5060", err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "port 5060 is listed twice in \"5060,5060\"");
    /* The first port the second item repeats. */
    CHECK_INT(portset_parse(&s, "10-20,15-25,20", err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "port 15 is listed twice in \"10-20,15-25,20\"");
    CHECK_INT(portset_parse(&s, "7,1-65535", err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "port 7 is listed twice in \"7,1-65535\"");
    CHECK_INT(portset_parse(&s, "1-10, 10", err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "port 10 is listed twice in \"1-10, 10\"");
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
