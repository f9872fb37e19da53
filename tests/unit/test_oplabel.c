#include "oplabel.h"

#include <errno.h>

#include "expo.h"
#include "test.h"

static struct metrics *reg;
static struct oplabel_set *set;

static void setup(void)
{
    reg = metrics_new(1000);
    set = oplabel_new(reg);
}

static void teardown(void)
{
    oplabel_free(set);
    metrics_free(reg);
}

TEST(declarations_get_indexes_in_order)
{
    setup();
    CHECK_INT(oplabel_declare(set, "carrier", "other", 4), 0);
    CHECK_INT(oplabel_declare(set, "device", "unknown", 4), 1);
    CHECK_INT(oplabel_count(set), 2);
    CHECK_STR(oplabel_name(set, 1), "device");
    CHECK_INT(oplabel_find(set, "carrier"), 0);
    CHECK_INT(oplabel_find(set, "trunk"), -ENOENT);
    teardown();
}

TEST(builtin_label_names_duplicates_and_bad_names_are_refused)
{
    setup();
    CHECK_INT(oplabel_declare(set, "method", "x", 4), -EINVAL);
    CHECK_INT(oplabel_declare(set, "le", "x", 4), -EINVAL);
    CHECK_INT(oplabel_declare(set, "__name", "x", 4), -EINVAL);
    CHECK_INT(oplabel_declare(set, "9lives", "x", 4), -EINVAL);
    CHECK_INT(oplabel_declare(set, "has-dash", "x", 4), -EINVAL);
    CHECK_INT(oplabel_declare(set, "carrier", "x", 0), -EINVAL);
    CHECK_INT(oplabel_declare(set, "carrier", "x", OPLABEL_MAX_VALUES + 1), -EINVAL);
    CHECK_INT(oplabel_declare(set, "carrier", "x", 4), 0);
    CHECK_INT(oplabel_declare(set, "carrier", "y", 4), -EEXIST);
    teardown();
}

/* It is printed on every sample of every sip_ family: 1 MB made 238 MB a scrape. */
TEST(a_name_past_the_label_name_cap_is_refused)
{
    static char name[METRICS_MAX_LABEL_NAME_LEN + 2];

    setup();
    memset(name, 'a', METRICS_MAX_LABEL_NAME_LEN + 1);
    CHECK_INT(oplabel_declare(set, name, "x", 4), -EINVAL);
    CHECK_INT(oplabel_count(set), 0);
    name[METRICS_MAX_LABEL_NAME_LEN] = '\0';
    CHECK_INT(oplabel_declare(set, name, "x", 4), 0);
    teardown();
}

TEST(only_eight_labels_fit)
{
    char name[16];
    setup();
    for (int i = 0; i < TRACK_MAX_LABELS; i++) {
        snprintf(name, sizeof(name), "l%d", i);
        CHECK_INT(oplabel_declare(set, name, "d", 2), i);
    }
    CHECK_INT(oplabel_declare(set, "one_more", "d", 2), -ENOSPC);
    teardown();
}

TEST(values_are_interned_and_the_default_is_id_zero)
{
    size_t len;
    setup();
    oplabel_declare(set, "carrier", "other", 3);
    CHECK_INT(oplabel_value(set, 0, "acme", 4), 1);
    CHECK_INT(oplabel_value(set, 0, "globex", 6), 2);
    CHECK_INT(oplabel_value(set, 0, "acme", 4), 1);
    CHECK_INT(oplabel_value(set, 0, "other", 5), 0);
    const char *t = oplabel_text(set, 0, 2, &len);
    CHECK_INT(len, 6);
    CHECK(memcmp(t, "globex", 6) == 0);
    t = oplabel_text(set, 0, 0, &len);
    CHECK(len == 5 && memcmp(t, "other", 5) == 0);
    teardown();
}

TEST(values_past_max_values_fall_back_to_the_default_and_are_counted)
{
    struct expo_buf b;
    setup();
    oplabel_declare(set, "carrier", "other", 2);
    CHECK_INT(oplabel_value(set, 0, "a", 1), 1);
    CHECK_INT(oplabel_value(set, 0, "b", 1), 2);
    CHECK_INT(oplabel_value(set, 0, "c", 1), 0);
    CHECK_INT(oplabel_value(set, 0, "d", 1), 0);
    CHECK_INT(oplabel_value(set, 0, "a", 1), 1); /* known values still resolve */
    expo_buf_init(&b);
    expo_render(reg, EXPO_DETERMINISTIC, &b);
    CHECK(strstr(b.data, "sipscope_label_overflow_total{label=\"carrier\"} 2\n") != NULL);
    expo_buf_fini(&b);
    teardown();
}

TEST_MAIN()
