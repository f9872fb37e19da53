/* Tests for log: one line per message whatever its arguments carry, and a cap on its length. */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

/* What log_msg (log_plain when plain) writes for one message: standard error goes to a
 * temporary file meanwhile. The text is NUL-terminated in a buffer of cap bytes; returns its
 * length. */
static size_t logged_as(char *text, size_t cap, const char *arg, int plain)
{
    char path[] = "/tmp/test_log_XXXXXX";
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    FILE *f;
    size_t n = 0;

    CHECK(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    if (plain)
        log_plain("%s", arg);
    else
        log_msg(LOG_INFO, "lua", "rule r: %s", arg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    f = fopen(path, "rb");
    if (f) {
        n = fread(text, 1, cap - 1, f);
        fclose(f);
    }
    text[n] = '\0';
    close(fd);
    unlink(path);
    return n;
}

static size_t logged(char *text, size_t cap, const char *arg)
{
    return logged_as(text, cap, arg, 0);
}

/* A rule's sip.log of "\n\27[2Jfake: sipscope: error: ..." printed a line of its own that
 * looked like the engine's, after clearing the screen. */
TEST(control_bytes_are_escaped_so_a_message_is_one_line)
{
    char text[256];

    logged(text, sizeof text, "a\nsipscope: error: fake\x1b[2J\r\tz\x7f\x01");
    CHECK_STR(text, "sipscope: info: lua: rule r: a\\nsipscope: error: fake\\x1b[2J\\r\\tz\\x7f"
                    "\\x01\n");
    logged(text, sizeof text, "back\\slash stays");
    CHECK_STR(text, "sipscope: info: lua: rule r: back\\slash stays\n");
}

TEST(utf8_is_kept_and_what_acts_on_the_display_is_escaped)
{
    char text[256];

    /* é, €, 😀 stay; a lone 0xff, an overlong '/', a cut sequence, a surrogate, the C1 CSI
     * (0x9b, which some terminals obey like ESC [), U+2028 and U+202E are escaped. */
    logged(text, sizeof text,
           "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\xff|\xc0\xaf|\xe2\x82|\xed\xa0\x80|\xc2\x9b|"
           "\xe2\x80\xa8|\xe2\x80\xae");
    CHECK_STR(text, "sipscope: info: lua: rule r: \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\\xff|"
                    "\\xc0\\xaf|\\xe2\\x82|\\xed\\xa0\\x80|\\xc2\\x9b|\\xe2\\x80\\xa8|"
                    "\\xe2\\x80\\xae\n");
}

TEST(a_long_message_is_cut_and_says_its_length)
{
    static char arg[1048577], text[LOG_MAX_MESSAGE * 2];
    const char *head = "sipscope: info: lua: ";
    size_t n, body;

    memset(arg, 'a', sizeof arg - 1);
    n = logged(text, sizeof text, arg);
    body = strlen(head) + LOG_MAX_MESSAGE;
    CHECK_INT(n, body + strlen("... [cut, 1048584 bytes]\n"));
    CHECK(strncmp(text, head, strlen(head)) == 0);
    CHECK_STR(text + body, "... [cut, 1048584 bytes]\n"); /* "rule r: " and the text */
    CHECK(text[body - 1] == 'a');

    /* Escapes count as written: 4,096 bytes hold 2,048 escaped newlines, then the cut. */
    memset(arg, '\n', 3000);
    arg[3000] = '\0';
    n = logged(text, sizeof text, arg);
    CHECK_INT(n, body + strlen("... [cut, 3008 bytes]\n"));
    CHECK_STR(text + body, "... [cut, 3008 bytes]\n");
    CHECK(memcmp(text + body - 4, "\\n\\n", 4) == 0);

    /* An escape that would not fit whole is left out: the line holds 4,094 bytes of it. */
    memset(arg, 'b', sizeof arg - 1);
    arg[LOG_MAX_MESSAGE - 8 - 2] = '\x1b'; /* its \x1b would end 2 bytes past the cap */
    arg[LOG_MAX_MESSAGE] = '\0';
    n = logged(text, sizeof text, arg);
    CHECK_STR(text + strlen(head) + LOG_MAX_MESSAGE - 2, "... [cut, 4104 bytes]\n");
    CHECK_INT(n, body - 2 + strlen("... [cut, 4104 bytes]\n"));
}

TEST(a_message_within_the_cap_is_whole)
{
    static char arg[LOG_MAX_MESSAGE - 8 + 1], text[LOG_MAX_MESSAGE * 2];

    memset(arg, 'c', sizeof arg - 1);
    CHECK_INT(logged(text, sizeof text, arg),
              strlen("sipscope: info: lua: ") + LOG_MAX_MESSAGE + 1);
    CHECK(strstr(text, "[cut") == NULL);
}

/* A rule that fails to load: main prints the error, which is the rule's text. */
TEST(plain_lines_are_escaped_and_printed_whatever_the_level)
{
    char text[256];

    log_set_level(LOG_ERROR);
    logged_as(text, sizeof text, "r.lua:1: \n\x1b[2Jfake", 1);
    CHECK_STR(text, "sipscope: r.lua:1: \\n\\x1b[2Jfake\n");
    logged(text, sizeof text, "filtered");
    CHECK_STR(text, "");
    log_set_level(LOG_INFO);
}

TEST_MAIN()
