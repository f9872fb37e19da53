#include "config.h"

#include <errno.h>

#include "test.h"

TEST(durations_take_go_style_units)
{
    uint64_t ns = 0;
    char err[128];
    CHECK_INT(config_parse_duration("500ms", &ns, err, sizeof(err)), 0);
    CHECK_INT(ns, 500000000);
    CHECK_INT(config_parse_duration("32s", &ns, err, sizeof(err)), 0);
    CHECK_INT(ns, 32000000000ULL);
    CHECK_INT(config_parse_duration("1h30m", &ns, err, sizeof(err)), 0);
    CHECK_INT(ns, 5400000000000ULL);
    CHECK_INT(config_parse_duration("0.5s", &ns, err, sizeof(err)), 0);
    CHECK_INT(ns, 500000000);
    CHECK_INT(config_parse_duration("4h", &ns, err, sizeof(err)), 0);
    CHECK_INT(ns, 14400000000000ULL);
    CHECK_INT(config_parse_duration("250us", &ns, err, sizeof(err)), 0);
    CHECK_INT(ns, 250000);
    /* 86400 + 7200 + 180 + 4 seconds, 5 ms, 6 us, 7 ns. */
    CHECK_INT(config_parse_duration("1d2h3m4s5ms6us7ns", &ns, err, sizeof(err)), 0);
    CHECK_INT(ns, 93784005006007ULL);
}

TEST(durations_take_each_unit_once_the_largest_first)
{
    uint64_t ns = 7;
    char err[128];
    const char *bad[] = {"1s1s", "1m2h", "500ms1s", "1h30m1h", "1ms500us1ms", "0s0s", "1d1d"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_INT(config_parse_duration(bad[i], &ns, err, sizeof(err)), -EINVAL);
    CHECK_INT(ns, 7);
    CHECK_INT(config_parse_duration("1m2h", &ns, err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "invalid duration \"1m2h\": each unit once, the largest first (1h30m)");
}

TEST(durations_without_unit_or_with_garbage_are_rejected)
{
    uint64_t ns = 7;
    char err[128];
    const char *bad[] = {"", "5", "s", "-1s", "1x", "1s2", "ms", "1e400s", "nan s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_INT(config_parse_duration(bad[i], &ns, err, sizeof(err)), -EINVAL);
    CHECK_INT(ns, 7);
}

TEST(counts_respect_bounds)
{
    uint64_t v = 0;
    char err[128];
    CHECK_INT(config_parse_count("1000", 1, 2000, &v, err, sizeof(err)), 0);
    CHECK_INT(v, 1000);
    CHECK_INT(config_parse_count("0", 1, 2000, &v, err, sizeof(err)), -EINVAL);
    CHECK_INT(config_parse_count("2001", 1, 2000, &v, err, sizeof(err)), -EINVAL);
    CHECK_INT(config_parse_count("-1", 0, 2000, &v, err, sizeof(err)), -EINVAL);
    CHECK_INT(config_parse_count("12k", 0, 2000, &v, err, sizeof(err)), -EINVAL);
}

TEST(sizes_take_binary_units)
{
    uint64_t b = 0;
    char err[128];
    CHECK_INT(config_parse_size("64MiB", &b, err, sizeof(err)), 0);
    CHECK_INT(b, 67108864);
    CHECK_INT(config_parse_size("4096", &b, err, sizeof(err)), 0);
    CHECK_INT(b, 4096);
    CHECK_INT(config_parse_size("2G", &b, err, sizeof(err)), 0);
    CHECK_INT(b, 2147483648ULL);
    CHECK_INT(config_parse_size("1TiB", &b, err, sizeof(err)), -EINVAL);
    CHECK_INT(config_parse_size("MiB", &b, err, sizeof(err)), -EINVAL);
}

TEST(name_lists_set_bits_and_refuse_what_they_do_not_know)
{
    static const char *const names[] = {"vxlan", "gre"};
    char err[256];
    unsigned bits = 99;
    CHECK_INT(config_parse_names("vxlan", names, 2, &bits, err, sizeof(err)), 0);
    CHECK_INT(bits, 1);
    CHECK_INT(config_parse_names("gre,vxlan,gre", names, 2, &bits, err, sizeof(err)), 0);
    CHECK_INT(bits, 3);
    bits = 99;
    CHECK_INT(config_parse_names("vxlan,geneve", names, 2, &bits, err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "\"geneve\" in \"vxlan,geneve\" is not one of vxlan, gre");
    CHECK_INT(bits, 99);
    CHECK_INT(config_parse_names("", names, 2, &bits, err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "\"\" in \"\" is not one of vxlan, gre");
    CHECK_INT(config_parse_names("vxlan,", names, 2, &bits, err, sizeof(err)), -EINVAL);
    CHECK_INT(config_parse_names("vx", names, 2, &bits, err, sizeof(err)), -EINVAL);
    CHECK_INT(config_parse_names("vxlanx", names, 2, &bits, err, sizeof(err)), -EINVAL);
}

TEST(a_list_item_repeated_is_named)
{
    char err[128];
    CHECK_INT(config_list_unique("lo,eth0,lo", err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "'lo' is listed twice");
    CHECK_INT(config_list_unique("a,b,c,b,a", err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "'b' is listed twice");
    CHECK_INT(config_list_unique("pdd,pdd", err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "'pdd' is listed twice");
}

TEST(a_list_of_different_items_passes)
{
    char err[128] = "";
    /* Byte for byte: a prefix, a longer name and another case are other items; empty items are
     * left to the list's parser. */
    const char *good[] = {"lo", "lo,lo0,l,LO", "eth0,,eth1", ",", "", "gre,erspan", "a,"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        CHECK_INT(config_list_unique(good[i], err, sizeof(err)), 0);
    CHECK_STR(err, "");
}

TEST_MAIN()
