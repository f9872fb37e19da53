#include "call_fields.h"

#include <errno.h>

#include "test.h"

#define ROOM UINT64_MAX

static struct event_field str_field(const char *name, const char *value)
{
    return (struct event_field){.name = name, .name_len = strlen(name), .type = EVENT_FIELD_STRING,
                                .str = value, .str_len = strlen(value)};
}

static struct event_field num_field(const char *name, double v)
{
    return (struct event_field){.name = name, .name_len = strlen(name), .type = EVENT_FIELD_NUMBER,
                                .num = v};
}

static struct event_field typed(const char *name, enum event_field_type type, int boolean)
{
    return (struct event_field){.name = name, .name_len = strlen(name), .type = type,
                                .boolean = boolean};
}

/* The value of name in slot as text: "s:..." "n:%g" "b:0/1" "null", "none" when absent. */
static const char *value_of(const struct call_fields *cf, uint32_t slot, const char *name)
{
    static char out[256];
    struct event_field f;
    switch (call_fields_get(cf, slot, name, strlen(name), &f)) {
    case EVENT_FIELD_STRING:
        snprintf(out, sizeof(out), "s:%.*s", (int)f.str_len, f.str);
        break;
    case EVENT_FIELD_NUMBER:
        snprintf(out, sizeof(out), "n:%g", f.num);
        break;
    case EVENT_FIELD_BOOLEAN:
        snprintf(out, sizeof(out), "b:%d", f.boolean);
        break;
    case EVENT_FIELD_NULL:
        return "null";
    default:
        return "none";
    }
    return out;
}

TEST(set_get_replace_and_remove_by_name)
{
    struct call_fields *cf = call_fields_new();
    struct event_field f = str_field("src_ip", "10.0.0.1");
    CHECK_INT(call_fields_set(cf, 3, &f, ROOM), 0);
    f = num_field("src_port", 5060);
    CHECK_INT(call_fields_set(cf, 3, &f, ROOM), 0);
    f = typed("fraud", EVENT_FIELD_BOOLEAN, 1);
    CHECK_INT(call_fields_set(cf, 3, &f, ROOM), 0);
    f = typed("nothing", EVENT_FIELD_NULL, 0);
    CHECK_INT(call_fields_set(cf, 3, &f, ROOM), 0);
    CHECK_INT(call_fields_count(cf, 3), 4);
    CHECK(strcmp(value_of(cf, 3, "src_ip"), "s:10.0.0.1") == 0);
    CHECK(strcmp(value_of(cf, 3, "src_port"), "n:5060") == 0);
    CHECK(strcmp(value_of(cf, 3, "fraud"), "b:1") == 0);
    CHECK(strcmp(value_of(cf, 3, "nothing"), "null") == 0);
    CHECK(strcmp(value_of(cf, 3, "src"), "none") == 0); /* a prefix is another name */
    CHECK(strcmp(value_of(cf, 2, "src_ip"), "none") == 0); /* another call */
    CHECK(strcmp(value_of(cf, 99999, "src_ip"), "none") == 0); /* beyond the index */

    /* Replaced: same size in place, another size or type moved; the others keep theirs. */
    f = str_field("src_ip", "10.0.0.2");
    CHECK_INT(call_fields_set(cf, 3, &f, ROOM), 0);
    CHECK(strcmp(value_of(cf, 3, "src_ip"), "s:10.0.0.2") == 0);
    f = str_field("src_port", "a string now, longer than a number");
    CHECK_INT(call_fields_set(cf, 3, &f, ROOM), 0);
    CHECK(strcmp(value_of(cf, 3, "src_port"), "s:a string now, longer than a number") == 0);
    f = str_field("src_ip", "");
    CHECK_INT(call_fields_set(cf, 3, &f, ROOM), 0);
    CHECK(strcmp(value_of(cf, 3, "src_ip"), "s:") == 0);
    CHECK_INT(call_fields_count(cf, 3), 4);
    CHECK(strcmp(value_of(cf, 3, "fraud"), "b:1") == 0);
    CHECK(strcmp(value_of(cf, 3, "nothing"), "null") == 0);

    /* Removed; removing what is not there changes nothing. */
    f = typed("fraud", EVENT_FIELD_NONE, 0);
    CHECK_INT(call_fields_set(cf, 3, &f, ROOM), 0);
    CHECK_INT(call_fields_set(cf, 3, &f, ROOM), 0);
    f = typed("never", EVENT_FIELD_NONE, 0);
    CHECK_INT(call_fields_set(cf, 7, &f, ROOM), 0);
    CHECK_INT(call_fields_count(cf, 3), 3);
    CHECK(strcmp(value_of(cf, 3, "fraud"), "none") == 0);
    CHECK(strcmp(value_of(cf, 3, "src_port"), "s:a string now, longer than a number") == 0);
    call_fields_free(cf);
    call_fields_free(NULL);
}

TEST(list_gives_every_field_once)
{
    struct call_fields *cf = call_fields_new();
    struct event_field out[8], f;
    char name[8];
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        f = num_field(name, i);
        CHECK_INT(call_fields_set(cf, 1, &f, ROOM), 0);
    }
    f = str_field("f2", "two"); /* moved to the end */
    CHECK_INT(call_fields_set(cf, 1, &f, ROOM), 0);
    CHECK_INT(call_fields_list(cf, 1, out, 8), 6);
    int seen = 0;
    for (int i = 0; i < 6; i++) {
        CHECK_INT(out[i].name_len, 2);
        int k = out[i].name[1] - '0';
        seen |= 1 << k;
        if (k == 2)
            CHECK(out[i].type == EVENT_FIELD_STRING && out[i].str_len == 3 &&
                  memcmp(out[i].str, "two", 3) == 0);
        else
            CHECK(out[i].type == EVENT_FIELD_NUMBER && out[i].num == k);
    }
    CHECK_INT(seen, 63);
    CHECK_INT(call_fields_list(cf, 1, out, 2), 6); /* the count, two listed */
    CHECK_INT(call_fields_list(cf, 2, out, 8), 0);
    call_fields_free(cf);
}

TEST(many_names_are_told_apart)
{
    /* 300 names share the 64 bits of the names filter: each is still found, replaced and
     * removed on its own. */
    struct call_fields *cf = call_fields_new();
    char name[16], want[32];
    struct event_field f;
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        f = num_field(name, i);
        CHECK_INT(call_fields_set(cf, 9, &f, ROOM), 0);
    }
    for (int i = 0; i < 300; i += 3) {
        snprintf(name, sizeof(name), "n%d", i);
        f = typed(name, EVENT_FIELD_NONE, 0);
        CHECK_INT(call_fields_set(cf, 9, &f, ROOM), 0);
    }
    for (int i = 1; i < 300; i += 3) {
        snprintf(name, sizeof(name), "n%d", i);
        f = num_field(name, -i);
        CHECK_INT(call_fields_set(cf, 9, &f, ROOM), 0);
    }
    CHECK_INT(call_fields_count(cf, 9), 200);
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        if (i % 3 == 0)
            snprintf(want, sizeof(want), "none");
        else
            snprintf(want, sizeof(want), "n:%d", i % 3 == 1 ? -i : i);
        CHECK(strcmp(value_of(cf, 9, name), want) == 0);
    }
    call_fields_clear(cf, 9);
    f = num_field("n1", 1);
    CHECK_INT(call_fields_set(cf, 9, &f, ROOM), 0);
    CHECK_INT(call_fields_count(cf, 9), 1);
    call_fields_free(cf);
}

TEST(clear_empties_a_slot_for_its_next_call)
{
    struct call_fields *cf = call_fields_new();
    struct event_field f = str_field("codec", "PCMA");
    CHECK_INT(call_fields_set(cf, 5, &f, ROOM), 0);
    CHECK_INT(call_fields_set(cf, 6, &f, ROOM), 0);
    uint64_t held = call_fields_bytes(cf);
    call_fields_clear(cf, 5);
    CHECK_INT(call_fields_count(cf, 5), 0);
    CHECK(strcmp(value_of(cf, 5, "codec"), "none") == 0);
    CHECK(strcmp(value_of(cf, 6, "codec"), "s:PCMA") == 0);
    CHECK_INT(call_fields_bytes(cf), held); /* a small buffer is kept */
    CHECK_INT(call_fields_set(cf, 5, &f, 0), 0); /* and reused: no room needed */
    call_fields_clear(cf, 0);
    call_fields_clear(cf, 1u << 20);

    /* A large buffer is given back: slot 6's grows from 128 bytes (the first size) to 4,096
     * and goes when the call's fields are cleared. */
    char big[4000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    f = str_field("big", big);
    CHECK_INT(call_fields_set(cf, 6, &f, ROOM), 0);
    CHECK_INT(call_fields_bytes(cf), held - 128 + 4096);
    call_fields_clear(cf, 6);
    CHECK_INT(call_fields_bytes(cf), held - 128);
    CHECK(strcmp(value_of(cf, 6, "big"), "none") == 0);
    call_fields_free(cf);
}

TEST(refuses_bad_slots_and_names_and_growth_past_its_room)
{
    struct call_fields *cf = call_fields_new();
    struct event_field f = str_field("", "x");
    CHECK_INT(call_fields_set(cf, 1, &f, ROOM), -EINVAL);
    f = str_field("k", "x");
    CHECK_INT(call_fields_set(cf, 0, &f, ROOM), -EINVAL);
    CHECK_INT(call_fields_set(cf, CALL_FIELDS_MAX_SLOTS + 1, &f, ROOM), -EINVAL);
    CHECK_INT(call_fields_bytes(cf), 0);

    /* The first field of a slot needs the index and a buffer. */
    CHECK_INT(call_fields_set(cf, 1, &f, 100), -ENOMEM);
    CHECK_INT(call_fields_count(cf, 1), 0);
    CHECK_INT(call_fields_bytes(cf), 0);
    CHECK_INT(call_fields_set(cf, 1, &f, ROOM), 0);
    uint64_t held = call_fields_bytes(cf);
    /* Another slot of the same index takes only its first buffer: 128 bytes, which a room of
     * 127 refuses. */
    CHECK_INT(call_fields_set(cf, 2, &f, 127), -ENOMEM);
    CHECK_INT(call_fields_bytes(cf), held);
    CHECK_INT(call_fields_set(cf, 2, &f, 128), 0);
    CHECK_INT(call_fields_bytes(cf), held + 128);
    held += 128;

    /* A value that needs a larger buffer than the room allows: refused, the old one kept. */
    char big[1000];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    struct event_field g = str_field("k", big);
    CHECK_INT(call_fields_set(cf, 1, &g, 500), -ENOMEM);
    CHECK(strcmp(value_of(cf, 1, "k"), "s:x") == 0);
    CHECK_INT(call_fields_bytes(cf), held);
    CHECK_INT(call_fields_set(cf, 1, &g, ROOM), 0);
    CHECK_INT(call_fields_count(cf, 1), 1);
    call_fields_free(cf);
}

/* A new slot's first buffer is the size the last ended call's fields needed (a power of two up
 * to CALL_FIELDS_KEEP), not 128 bytes grown by reallocations; when the room is smaller, 128. */
TEST(a_new_slot_starts_at_the_size_the_last_call_needed)
{
    struct call_fields *cf = call_fields_new();
    char value[200];
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = 0;
    struct event_field f = str_field("server", value);
    CHECK_INT(call_fields_set(cf, 1, &f, ROOM), 0); /* 12 + 6 + 199 bytes: 128, then 256 */
    uint64_t held = call_fields_bytes(cf);
    call_fields_clear(cf, 1);
    CHECK_INT(call_fields_bytes(cf), held); /* kept for slot 1's next call */

    struct event_field small = str_field("k", "x");
    CHECK_INT(call_fields_set(cf, 2, &small, ROOM), 0);
    CHECK_INT(call_fields_bytes(cf), held + 256);
    CHECK_INT(call_fields_set(cf, 3, &small, 255), 0); /* 256 does not fit the room: 128 */
    CHECK_INT(call_fields_bytes(cf), held + 256 + 128);

    /* A call that needed more than CALL_FIELDS_KEEP makes the next first buffers that size. */
    char big[3000];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    f = str_field("big", big);
    CHECK_INT(call_fields_set(cf, 2, &f, ROOM), 0);
    call_fields_clear(cf, 2);
    held = call_fields_bytes(cf);
    CHECK_INT(call_fields_set(cf, 4, &small, ROOM), 0);
    CHECK_INT(call_fields_bytes(cf), held + CALL_FIELDS_KEEP);
    call_fields_free(cf);
}

TEST_MAIN()
