/* sip_parse: one pass over the start line and header block of a SIP message, producing views into
 * the caller's buffer. It extracts what tracking needs on every message and nothing else: no URI
 * validation beyond locating it, no SDP, no header-specific grammar past Via, CSeq, From and To. */
#include "sip_parse.h"

#include <errno.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* RFC 3261 §25.1 token characters: the only bytes allowed in a method or a header name. */
static const uint8_t tok_char[256] = {
    ['!'] = 1, ['%'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['_'] = 1,
    ['`'] = 1, ['~'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1,
    ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
    ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1,
    ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,
    ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static inline bool is_tok(char c)
{
    return tok_char[(unsigned char)c];
}

static inline bool is_digit(char c)
{
    return (unsigned)((unsigned char)c - '0') <= 9;
}

static inline bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* Returns the first byte in [p, end) that is a control character other than HT (CR and LF
 * included), or end. One pass both finds the line end and rejects NUL and stray controls, so
 * header bytes are looked at once. SSE2 is baseline on x86-64; loads never cross end: the tail is
 * one load ending exactly at end when the buffer is long enough, else bytes one by one. */
static inline const char *find_ctl(const char *p, const char *end, const char *buf)
{
#ifdef __SSE2__
    const __m128i lim = _mm_set1_epi8(0x1f);
    const __m128i ht = _mm_set1_epi8('\t');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, lim), v);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_andnot_si128(_mm_cmpeq_epi8(v, ht), ctl));
        if (m)
            return p + __builtin_ctz(m);
        p += 16;
    }
    if (p < end && end - buf >= 16) {
        const char *q = end - 16;
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
        __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, lim), v);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_andnot_si128(_mm_cmpeq_epi8(v, ht), ctl));
        m >>= (unsigned)(p - q);
        return m ? p + __builtin_ctz(m) : end;
    }
#else
    (void)buf;
#endif
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 && c != '\t')
            break;
    }
    return p;
}

/* Case-insensitive match of n bytes against a lower-case literal. */
static inline bool eq_lower(const char *p, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (slice_lower_char(p[i]) != lit[i])
            return false;
    return true;
}

#define NAME_IS(lit) (n == sizeof(lit) - 1 && eq_lower(p, lit, sizeof(lit) - 1))

enum sip_hdr sip_header_id(struct slice name)
{
    const char *p = name.p;
    size_t n = name.len;

    if (n == 0)
        return SIP_HDR_OTHER;
    /* Dispatch on the first letter, then compare only the few candidates it leaves. */
    switch (slice_lower_char(p[0])) {
    case 'a':
        if (NAME_IS("allow"))
            return SIP_HDR_ALLOW;
        if (NAME_IS("allow-events"))
            return SIP_HDR_ALLOW_EVENTS;
        if (NAME_IS("authorization"))
            return SIP_HDR_AUTHORIZATION;
        break;
    case 'b':
        if (n == 1)
            return SIP_HDR_REFERRED_BY;
        break;
    case 'c':
        if (n == 1)
            return SIP_HDR_CONTENT_TYPE;
        if (NAME_IS("cseq"))
            return SIP_HDR_CSEQ;
        if (NAME_IS("call-id"))
            return SIP_HDR_CALL_ID;
        if (NAME_IS("contact"))
            return SIP_HDR_CONTACT;
        if (NAME_IS("content-type"))
            return SIP_HDR_CONTENT_TYPE;
        if (NAME_IS("content-length"))
            return SIP_HDR_CONTENT_LENGTH;
        if (NAME_IS("content-encoding"))
            return SIP_HDR_CONTENT_ENCODING;
        break;
    case 'e':
        if (n == 1)
            return SIP_HDR_CONTENT_ENCODING;
        if (NAME_IS("event"))
            return SIP_HDR_EVENT;
        if (NAME_IS("expires"))
            return SIP_HDR_EXPIRES;
        break;
    case 'f':
        if (n == 1 || NAME_IS("from"))
            return SIP_HDR_FROM;
        break;
    case 'i':
        if (n == 1)
            return SIP_HDR_CALL_ID;
        break;
    case 'k':
        if (n == 1)
            return SIP_HDR_SUPPORTED;
        break;
    case 'l':
        if (n == 1)
            return SIP_HDR_CONTENT_LENGTH;
        break;
    case 'm':
        if (n == 1)
            return SIP_HDR_CONTACT;
        if (NAME_IS("min-se"))
            return SIP_HDR_MIN_SE;
        if (NAME_IS("max-forwards"))
            return SIP_HDR_MAX_FORWARDS;
        break;
    case 'o':
        if (n == 1)
            return SIP_HDR_EVENT;
        break;
    case 'p':
        if (NAME_IS("p-asserted-identity"))
            return SIP_HDR_P_ASSERTED_IDENTITY;
        if (NAME_IS("proxy-authorization"))
            return SIP_HDR_PROXY_AUTHORIZATION;
        if (NAME_IS("proxy-authenticate"))
            return SIP_HDR_PROXY_AUTHENTICATE;
        break;
    case 'r':
        if (n == 1)
            return SIP_HDR_REFER_TO;
        if (NAME_IS("rseq"))
            return SIP_HDR_RSEQ;
        if (NAME_IS("rack"))
            return SIP_HDR_RACK;
        if (NAME_IS("route"))
            return SIP_HDR_ROUTE;
        if (NAME_IS("reason"))
            return SIP_HDR_REASON;
        if (NAME_IS("require"))
            return SIP_HDR_REQUIRE;
        if (NAME_IS("refer-to"))
            return SIP_HDR_REFER_TO;
        if (NAME_IS("referred-by"))
            return SIP_HDR_REFERRED_BY;
        if (NAME_IS("record-route"))
            return SIP_HDR_RECORD_ROUTE;
        break;
    case 's':
        if (n == 1)
            return SIP_HDR_SUBJECT;
        if (NAME_IS("server"))
            return SIP_HDR_SERVER;
        if (NAME_IS("subject"))
            return SIP_HDR_SUBJECT;
        if (NAME_IS("supported"))
            return SIP_HDR_SUPPORTED;
        if (NAME_IS("session-expires"))
            return SIP_HDR_SESSION_EXPIRES;
        break;
    case 't':
        if (n == 1 || NAME_IS("to"))
            return SIP_HDR_TO;
        break;
    case 'u':
        if (n == 1)
            return SIP_HDR_ALLOW_EVENTS;
        if (NAME_IS("user-agent"))
            return SIP_HDR_USER_AGENT;
        break;
    case 'v':
        if (n == 1 || NAME_IS("via"))
            return SIP_HDR_VIA;
        break;
    case 'w':
        if (NAME_IS("www-authenticate"))
            return SIP_HDR_WWW_AUTHENTICATE;
        break;
    case 'x':
        if (n == 1)
            return SIP_HDR_SESSION_EXPIRES;
        break;
    default:
        break;
    }
    return SIP_HDR_OTHER;
}

#undef NAME_IS

static const char *const hdr_names[SIP_HDR_COUNT] = {
    [SIP_HDR_OTHER] = NULL,
    [SIP_HDR_CALL_ID] = "Call-ID",
    [SIP_HDR_FROM] = "From",
    [SIP_HDR_TO] = "To",
    [SIP_HDR_VIA] = "Via",
    [SIP_HDR_CSEQ] = "CSeq",
    [SIP_HDR_CONTACT] = "Contact",
    [SIP_HDR_CONTENT_LENGTH] = "Content-Length",
    [SIP_HDR_CONTENT_TYPE] = "Content-Type",
    [SIP_HDR_CONTENT_ENCODING] = "Content-Encoding",
    [SIP_HDR_EXPIRES] = "Expires",
    [SIP_HDR_SESSION_EXPIRES] = "Session-Expires",
    [SIP_HDR_MIN_SE] = "Min-SE",
    [SIP_HDR_USER_AGENT] = "User-Agent",
    [SIP_HDR_SERVER] = "Server",
    [SIP_HDR_RSEQ] = "RSeq",
    [SIP_HDR_RACK] = "RAck",
    [SIP_HDR_MAX_FORWARDS] = "Max-Forwards",
    [SIP_HDR_ROUTE] = "Route",
    [SIP_HDR_RECORD_ROUTE] = "Record-Route",
    [SIP_HDR_SUPPORTED] = "Supported",
    [SIP_HDR_REQUIRE] = "Require",
    [SIP_HDR_SUBJECT] = "Subject",
    [SIP_HDR_REFER_TO] = "Refer-To",
    [SIP_HDR_REFERRED_BY] = "Referred-By",
    [SIP_HDR_EVENT] = "Event",
    [SIP_HDR_ALLOW_EVENTS] = "Allow-Events",
    [SIP_HDR_AUTHORIZATION] = "Authorization",
    [SIP_HDR_PROXY_AUTHORIZATION] = "Proxy-Authorization",
    [SIP_HDR_WWW_AUTHENTICATE] = "WWW-Authenticate",
    [SIP_HDR_PROXY_AUTHENTICATE] = "Proxy-Authenticate",
    [SIP_HDR_REASON] = "Reason",
    [SIP_HDR_P_ASSERTED_IDENTITY] = "P-Asserted-Identity",
    [SIP_HDR_ALLOW] = "Allow",
};

const char *sip_header_name(enum sip_hdr id)
{
    return (unsigned)id < SIP_HDR_COUNT ? hdr_names[id] : NULL;
}

static const char *const method_names[SIP_METHOD_COUNT] = {
    [SIP_METHOD_OTHER] = "other",         [SIP_METHOD_INVITE] = "INVITE",
    [SIP_METHOD_ACK] = "ACK",             [SIP_METHOD_BYE] = "BYE",
    [SIP_METHOD_CANCEL] = "CANCEL",       [SIP_METHOD_REGISTER] = "REGISTER",
    [SIP_METHOD_OPTIONS] = "OPTIONS",     [SIP_METHOD_PRACK] = "PRACK",
    [SIP_METHOD_SUBSCRIBE] = "SUBSCRIBE", [SIP_METHOD_NOTIFY] = "NOTIFY",
    [SIP_METHOD_PUBLISH] = "PUBLISH",     [SIP_METHOD_INFO] = "INFO",
    [SIP_METHOD_REFER] = "REFER",         [SIP_METHOD_MESSAGE] = "MESSAGE",
    [SIP_METHOD_UPDATE] = "UPDATE",
};

const char *sip_method_name(enum sip_method m)
{
    return (unsigned)m < SIP_METHOD_COUNT ? method_names[m] : method_names[SIP_METHOD_OTHER];
}

#define TOKEN_IS(lit) (memcmp(p, lit, sizeof(lit) - 1) == 0)

/* Method names are case-sensitive (RFC 3261 §7.1): "invite" is some other method. */
enum sip_method sip_method_id(struct slice token)
{
    const char *p = token.p;

    switch (token.len) {
    case 3:
        if (TOKEN_IS("ACK"))
            return SIP_METHOD_ACK;
        if (TOKEN_IS("BYE"))
            return SIP_METHOD_BYE;
        break;
    case 4:
        if (TOKEN_IS("INFO"))
            return SIP_METHOD_INFO;
        break;
    case 5:
        if (TOKEN_IS("PRACK"))
            return SIP_METHOD_PRACK;
        if (TOKEN_IS("REFER"))
            return SIP_METHOD_REFER;
        break;
    case 6:
        if (TOKEN_IS("INVITE"))
            return SIP_METHOD_INVITE;
        if (TOKEN_IS("CANCEL"))
            return SIP_METHOD_CANCEL;
        if (TOKEN_IS("NOTIFY"))
            return SIP_METHOD_NOTIFY;
        if (TOKEN_IS("UPDATE"))
            return SIP_METHOD_UPDATE;
        break;
    case 7:
        if (TOKEN_IS("OPTIONS"))
            return SIP_METHOD_OPTIONS;
        if (TOKEN_IS("PUBLISH"))
            return SIP_METHOD_PUBLISH;
        if (TOKEN_IS("MESSAGE"))
            return SIP_METHOD_MESSAGE;
        break;
    case 8:
        if (TOKEN_IS("REGISTER"))
            return SIP_METHOD_REGISTER;
        break;
    case 9:
        if (TOKEN_IS("SUBSCRIBE"))
            return SIP_METHOD_SUBSCRIBE;
        break;
    default:
        break;
    }
    return SIP_METHOD_OTHER;
}

#undef TOKEN_IS

static const char *const error_names[SIP_ERR_COUNT] = {
    [SIP_ERR_NONE] = "none",
    [SIP_ERR_START_LINE] = "start_line",
    [SIP_ERR_VERSION] = "version",
    [SIP_ERR_STATUS_CODE] = "status_code",
    [SIP_ERR_HEADER_SYNTAX] = "header_syntax",
    [SIP_ERR_TOO_MANY_HEADERS] = "too_many_headers",
    [SIP_ERR_TOO_LONG] = "too_long",
    [SIP_ERR_MISSING_HEADER] = "missing_header",
    [SIP_ERR_CSEQ] = "cseq",
    [SIP_ERR_CONTENT_LENGTH] = "content_length",
};

const char *sip_error_name(enum sip_error e)
{
    return (unsigned)e < SIP_ERR_COUNT ? error_names[e] : "unknown";
}

const char *sip_anomaly_name(enum sip_anomaly bit)
{
    switch (bit) {
    case SIP_ANOM_BARE_LF:
        return "bare_lf";
    case SIP_ANOM_FOLDED:
        return "folded";
    case SIP_ANOM_BODY_TRUNCATED:
        return "body_truncated";
    case SIP_ANOM_TRAILING_DATA:
        return "trailing_data";
    case SIP_ANOM_NO_CONTENT_LENGTH:
        return "no_content_length";
    case SIP_ANOM_BAD_CONTENT_LENGTH:
        return "bad_content_length";
    case SIP_ANOM_LEADING_CRLF:
        return "leading_crlf";
    }
    return "unknown";
}

struct slice sip_msg_header(const struct sip_msg *msg, enum sip_hdr id)
{
    if ((unsigned)id >= SIP_HDR_COUNT || id == SIP_HDR_OTHER || msg->first[id] == 0)
        return slice_make(NULL, 0);
    return msg->headers[msg->first[id] - 1].value;
}

/* Returns the index just past the quoted string whose opening quote is at s[i], honouring
 * backslash escapes (RFC 3261 §25.1 quoted-pair); s.len when it is unterminated. */
static size_t skip_quoted(struct slice s, size_t i)
{
    for (i++; i < s.len; i++) {
        if (s.p[i] == '\\')
            i++;
        else if (s.p[i] == '"')
            return i + 1;
    }
    return s.len;
}

/* Returns the index just past the '>' closing the '<' at s[i]; s.len when unterminated. URIs
 * hold no quotes or nested brackets that could hide a '>'. */
static size_t skip_angle(struct slice s, size_t i)
{
    const char *gt = memchr(s.p + i, '>', s.len - i);
    return gt ? (size_t)(gt - s.p) + 1 : s.len;
}

static inline bool is_lws(char c)
{
    return slice_is_lws(c);
}

bool sip_list_next(struct slice value, size_t *pos, struct slice *item)
{
    size_t i = *pos;

    while (i < value.len) {
        while (i < value.len && (is_lws(value.p[i]) || value.p[i] == ','))
            i++;
        size_t start = i;
        while (i < value.len && value.p[i] != ',') {
            if (value.p[i] == '"')
                i = skip_quoted(value, i);
            else if (value.p[i] == '<')
                i = skip_angle(value, i);
            else
                i++;
        }
        struct slice it = slice_trim(slice_make(value.p + start, i - start));
        if (it.len) {
            *pos = i;
            *item = it;
            return true;
        }
    }
    *pos = value.len;
    return false;
}

bool sip_header_param(struct slice value, struct slice name, struct slice *val)
{
    size_t i = 0;

    /* Skip the part before the first ';' at top level: the display name and URI (or, for a Via,
     * the sent-protocol and sent-by), where a ';' belongs to a quoted string or a URI. */
    while (i < value.len) {
        char c = value.p[i];
        if (c == ';')
            break;
        if (c == ',')
            return false;
        if (c == '"')
            i = skip_quoted(value, i);
        else if (c == '<')
            i = skip_angle(value, i);
        else
            i++;
    }
    while (i < value.len && value.p[i] == ';') {
        i++;
        while (i < value.len && is_lws(value.p[i]))
            i++;
        size_t ns = i;
        while (i < value.len && is_tok(value.p[i]))
            i++;
        struct slice pname = slice_make(value.p + ns, i - ns);
        while (i < value.len && is_lws(value.p[i]))
            i++;
        struct slice pval = slice_make(value.p + i, 0);
        if (i < value.len && value.p[i] == '=') {
            i++;
            while (i < value.len && is_lws(value.p[i]))
                i++;
            size_t vs = i;
            if (i < value.len && value.p[i] == '"') {
                i = skip_quoted(value, i);
            } else {
                while (i < value.len && value.p[i] != ';' && value.p[i] != ',' &&
                       !is_lws(value.p[i]))
                    i++;
            }
            pval = slice_make(value.p + vs, i - vs);
            while (i < value.len && is_lws(value.p[i]))
                i++;
        }
        if (pname.len && slice_eq_nocase(pname, name)) {
            *val = pval;
            return true;
        }
        /* Anything but the next ';' (a ',' ending the list element, or junk) ends the search. */
    }
    return false;
}

struct slice sip_addr_uri(struct slice value)
{
    const struct slice none = {NULL, 0};
    size_t i = 0;

    while (i < value.len && is_lws(value.p[i]))
        i++;
    size_t start = i;
    /* A name-addr: the URI is whatever <...> holds, after an optional display name. */
    while (i < value.len) {
        char c = value.p[i];
        if (c == '<') {
            const char *gt = memchr(value.p + i + 1, '>', value.len - i - 1);
            if (!gt)
                return none;
            return slice_trim(slice_make(value.p + i + 1, (size_t)(gt - value.p) - i - 1));
        }
        if (c == '"') {
            i = skip_quoted(value, i);
            continue;
        }
        if (c == ';' || c == ',')
            break;
        i++;
    }
    /* An addr-spec: the URI runs to the first ';' or whitespace, and only parameters may follow
     * (RFC 3261 §20: without <...>, every ';' parameter belongs to the header). */
    i = start;
    if (i >= value.len || value.p[i] == '"')
        return none;
    while (i < value.len && value.p[i] != ';' && value.p[i] != ',' && !is_lws(value.p[i]))
        i++;
    struct slice uri = slice_make(value.p + start, i - start);
    while (i < value.len && is_lws(value.p[i]))
        i++;
    if (i < value.len && value.p[i] != ';' && value.p[i] != ',')
        return none;
    return uri;
}

/* The parse proper. */

struct parse_state {
    const char *buf;   /* the caller's buffer, for the tail load of find_ctl */
    const char *end;   /* scanning limit: buf + len, or the start line + SIP_MAX_MSG */
    bool capped;       /* end is start + SIP_MAX_MSG: running out there means too long */
    struct sip_msg *msg;
};

static int fail(struct sip_msg *msg, int rc, enum sip_error why)
{
    msg->error = (uint8_t)why;
    return rc;
}

/* Running out of bytes: more input helps, unless the window already holds SIP_MAX_MSG bytes. */
static int need_more(const struct parse_state *st)
{
    if (st->capped)
        return fail(st->msg, -E2BIG, SIP_ERR_TOO_LONG);
    return -EAGAIN;
}

/* Ends the line whose first control byte is at q: sets *next to the start of the next line.
 * Returns 0, -EAGAIN (the terminator is cut), or -EBADMSG for a control byte other than a line
 * break (NUL, a CR not followed by LF). */
static inline int line_end(const struct parse_state *st, const char *q, const char **next)
{
    if (q == st->end)
        return -EAGAIN;
    if (*q == '\r') {
        if (q + 1 == st->end)
            return -EAGAIN;
        if (q[1] != '\n')
            return -EBADMSG;
        *next = q + 2;
        return 0;
    }
    if (*q == '\n') {
        st->msg->anomalies |= SIP_ANOM_BARE_LF;
        *next = q + 1;
        return 0;
    }
    return -EBADMSG;
}

static bool is_version(const char *p, size_t n)
{
    return n == 7 && eq_lower(p, "sip/2.0", 7);
}

static bool looks_like_version(const char *p, size_t n)
{
    return n >= 4 && eq_lower(p, "sip/", 4);
}

/* Request-Line = Method SP Request-URI SP SIP-Version; Status-Line = SIP-Version SP Status-Code SP
 * Reason-Phrase (RFC 3261 §7.1, §7.2). The SIP-Version is case-insensitive. Trailing whitespace
 * is tolerated. */
static int parse_start_line(struct sip_msg *msg, const char *p, const char *eol)
{
    while (eol > p && is_wsp(eol[-1]))
        eol--;
    size_t n = (size_t)(eol - p);

    if (looks_like_version(p, n)) {
        const char *sp = memchr(p, ' ', n);
        if (!is_version(p, sp ? (size_t)(sp - p) : n))
            return fail(msg, -EBADMSG, SIP_ERR_VERSION);
        if (!sp)
            return fail(msg, -EBADMSG, SIP_ERR_STATUS_CODE);
        const char *c = sp + 1;
        if (eol - c < 3 || (eol - c > 3 && c[3] != ' '))
            return fail(msg, -EBADMSG, SIP_ERR_STATUS_CODE);
        unsigned d0 = (unsigned char)c[0] - '0', d1 = (unsigned char)c[1] - '0',
                 d2 = (unsigned char)c[2] - '0';
        if (d0 < 1 || d0 > 6 || d1 > 9 || d2 > 9)
            return fail(msg, -EBADMSG, SIP_ERR_STATUS_CODE);
        msg->status = (uint16_t)(d0 * 100 + d1 * 10 + d2);
        msg->is_request = 0;
        if (eol - c > 3)
            msg->reason = slice_make(c + 4, (size_t)(eol - c) - 4);
        else
            msg->reason = slice_make(eol, 0);
        return 0;
    }

    const char *q = p;
    while (q < eol && is_tok(*q))
        q++;
    if (q == p || q == eol || *q != ' ')
        return fail(msg, -EBADMSG, SIP_ERR_START_LINE);
    msg->method_name = slice_make(p, (size_t)(q - p));
    const char *u = q + 1;
    const char *sp = memchr(u, ' ', (size_t)(eol - u));
    if (!sp || sp == u)
        return fail(msg, -EBADMSG, SIP_ERR_START_LINE);
    const char *v = sp + 1;
    if (!is_version(v, (size_t)(eol - v))) {
        msg->method_name = slice_make(NULL, 0);
        return fail(msg, -EBADMSG,
                    looks_like_version(v, (size_t)(eol - v)) ? SIP_ERR_VERSION
                                                             : SIP_ERR_START_LINE);
    }
    msg->ruri = slice_make(u, (size_t)(sp - u));
    msg->is_request = 1;
    msg->method = (uint8_t)sip_method_id(msg->method_name);
    return 0;
}

/* CSeq = 1*DIGIT LWS Method (RFC 3261 §20.16). */
static int parse_cseq(struct sip_msg *msg, struct slice v)
{
    size_t i = 0;
    uint64_t num = 0;

    while (i < v.len && is_digit(v.p[i])) {
        num = num * 10 + (unsigned)(v.p[i] - '0');
        if (num > UINT32_MAX)
            return -EBADMSG;
        i++;
    }
    if (i == 0 || i == v.len || !is_lws(v.p[i]))
        return -EBADMSG;
    while (i < v.len && is_lws(v.p[i]))
        i++;
    size_t ms = i;
    while (i < v.len && is_tok(v.p[i]))
        i++;
    if (i == ms || i != v.len)
        return -EBADMSG;
    msg->cseq = (uint32_t)num;
    msg->cseq_method_name = slice_make(v.p + ms, v.len - ms);
    msg->cseq_method = (uint8_t)sip_method_id(msg->cseq_method_name);
    return 0;
}

static inline size_t skip_lws(struct slice s, size_t i)
{
    while (i < s.len && is_lws(s.p[i]))
        i++;
    return i;
}

/* via-parm = sent-protocol LWS sent-by *( SEMI via-params ), sent-protocol = "SIP" SLASH "2.0"
 * SLASH transport, where SLASH and COLON allow whitespace around them (RFC 3261 §20.42, §25.1).
 * Fills what it can: a Via it cannot read leaves the slices empty; it is not a parse error. */
static void parse_via(struct sip_msg *msg, struct slice value)
{
    struct slice e;
    size_t pos = 0;

    if (!sip_list_next(value, &pos, &e))
        return;
    size_t i = 0;
    for (int part = 0; part < 2; part++) { /* "SIP" "/" "2.0" "/" */
        while (i < e.len && is_tok(e.p[i]))
            i++;
        i = skip_lws(e, i);
        if (i >= e.len || e.p[i] != '/')
            return;
        i = skip_lws(e, i + 1);
    }
    size_t ts = i;
    while (i < e.len && is_tok(e.p[i]))
        i++;
    if (i == ts || i == e.len || !is_lws(e.p[i]))
        return;
    msg->via_transport = slice_make(e.p + ts, i - ts);
    i = skip_lws(e, i);
    size_t hs = i;
    if (i < e.len && e.p[i] == '[') {
        const char *rb = memchr(e.p + i, ']', e.len - i);
        if (!rb)
            return;
        i = (size_t)(rb - e.p) + 1;
    } else {
        while (i < e.len && e.p[i] != ':' && e.p[i] != ';' && !is_lws(e.p[i]))
            i++;
    }
    if (i == hs)
        return;
    size_t he = i;
    size_t j = skip_lws(e, i);
    if (j < e.len && e.p[j] == ':') {
        j = skip_lws(e, j + 1);
        size_t ps = j;
        while (j < e.len && is_digit(e.p[j]))
            j++;
        if (j > ps)
            he = j;
    }
    msg->via_sent_by = slice_make(e.p + hs, he - hs);
    struct slice br;
    if (sip_header_param(slice_make(e.p + he, e.len - he), SLICE_LIT("branch"), &br))
        msg->via_branch = br;
}

static void parse_addr(struct slice value, struct slice *uri, struct slice *tag)
{
    struct slice t;

    *uri = sip_addr_uri(value);
    if (sip_header_param(value, SLICE_LIT("tag"), &t))
        *tag = t;
}

/* Content-Length = 1*DIGIT; anything else (or a value past INT32_MAX) is unparsable. */
static int32_t parse_content_length(struct slice v)
{
    uint32_t n;

    if (slice_to_u32(v, &n) != 0 || n > INT32_MAX)
        return -1;
    return (int32_t)n;
}

int sip_parse(const char *buf, size_t len, enum sip_parse_mode mode, struct sip_msg *msg,
              struct sip_header *hdrs, size_t max_hdrs)
{
    struct parse_state st = {.buf = buf, .msg = msg};
    const char *p = buf, *bend = buf + len;
    int rc;

    memset(msg, 0, sizeof(*msg));
    msg->headers = hdrs;
    msg->content_length = -1;
    /* The return value is an int; no real input comes near this. */
    if (len > INT32_MAX)
        return fail(msg, -E2BIG, SIP_ERR_TOO_LONG);
    /* first[] stores index + 1 in 16 bits. */
    if (max_hdrs > UINT16_MAX - 1)
        max_hdrs = UINT16_MAX - 1;

    /* RFC 3261 §7.5: empty lines before the start line are ignored (CRLF keep-alives). */
    while (p < bend && (*p == '\r' || *p == '\n')) {
        if (*p == '\n') {
            msg->anomalies |= SIP_ANOM_BARE_LF;
            p++;
        } else if (p + 1 == bend) {
            return -EAGAIN;
        } else if (p[1] == '\n') {
            p += 2;
        } else {
            return fail(msg, -EBADMSG, SIP_ERR_START_LINE);
        }
        msg->anomalies |= SIP_ANOM_LEADING_CRLF;
    }
    const char *start = p;
    /* A header block still open after SIP_MAX_MSG bytes makes a longer message: no need to wait
     * for more. */
    if ((size_t)(bend - start) >= SIP_MAX_MSG) {
        st.end = start + SIP_MAX_MSG;
        st.capped = true;
    } else {
        st.end = bend;
    }
    if (p == st.end)
        return need_more(&st);

    /* Start line. */
    const char *q = find_ctl(p, st.end, buf), *next;
    rc = line_end(&st, q, &next);
    if (rc == -EAGAIN)
        return need_more(&st);
    if (rc)
        return fail(msg, rc, SIP_ERR_START_LINE);
    rc = parse_start_line(msg, p, q);
    if (rc)
        return rc;
    p = next;

    /* Header block: each line is name [WSP] ':' [WSP] value, continued by lines that start with
     * whitespace (RFC 3261 §7.3.1), up to an empty line. */
    uint32_t n = 0;
    for (;;) {
        if (p == st.end)
            return need_more(&st);
        if (*p == '\r' || *p == '\n') {
            rc = line_end(&st, p, &next);
            if (rc == -EAGAIN)
                return need_more(&st);
            if (rc)
                return fail(msg, rc, SIP_ERR_HEADER_SYNTAX);
            p = next;
            break;
        }
        if (n == max_hdrs) {
            msg->n_headers = n;
            return fail(msg, -E2BIG, SIP_ERR_TOO_MANY_HEADERS);
        }
        const char *ns = p;
        while (p < st.end && is_tok(*p))
            p++;
        const char *ne = p;
        while (p < st.end && is_wsp(*p))
            p++;
        if (p == st.end)
            return need_more(&st);
        if (*p != ':' || ne == ns) {
            msg->n_headers = n;
            return fail(msg, -EBADMSG, SIP_ERR_HEADER_SYNTAX);
        }
        p++;
        while (p < st.end && is_wsp(*p))
            p++;
        const char *vs = p;
        for (;;) {
            q = find_ctl(p, st.end, buf);
            rc = line_end(&st, q, &next);
            if (rc == -EAGAIN)
                return need_more(&st);
            if (rc) {
                msg->n_headers = n;
                return fail(msg, rc, SIP_ERR_HEADER_SYNTAX);
            }
            if (next == st.end)
                return need_more(&st);
            if (!is_wsp(*next))
                break;
            msg->anomalies |= SIP_ANOM_FOLDED;
            p = next;
        }
        struct sip_header *h = &hdrs[n++];
        h->name = slice_make(ns, (size_t)(ne - ns));
        h->value = slice_trim(slice_make(vs, (size_t)(q - vs)));
        h->id = (uint8_t)sip_header_id(h->name);
        if (h->id != SIP_HDR_OTHER && msg->first[h->id] == 0)
            msg->first[h->id] = (uint16_t)n;
        p = next;
    }
    msg->n_headers = n;
    size_t hdr_len = (size_t)(p - start);

    /* Values of the first header of each kind. */
    if (msg->first[SIP_HDR_CALL_ID])
        msg->call_id = hdrs[msg->first[SIP_HDR_CALL_ID] - 1].value;
    /* An empty Call-ID cannot key anything: it counts as missing. */
    if (msg->call_id.len == 0 || !msg->first[SIP_HDR_CSEQ] || !msg->first[SIP_HDR_FROM] ||
        !msg->first[SIP_HDR_TO] || !msg->first[SIP_HDR_VIA])
        return fail(msg, -EBADMSG, SIP_ERR_MISSING_HEADER);
    if (parse_cseq(msg, hdrs[msg->first[SIP_HDR_CSEQ] - 1].value))
        return fail(msg, -EBADMSG, SIP_ERR_CSEQ);
    parse_addr(hdrs[msg->first[SIP_HDR_FROM] - 1].value, &msg->from_uri, &msg->from_tag);
    parse_addr(hdrs[msg->first[SIP_HDR_TO] - 1].value, &msg->to_uri, &msg->to_tag);
    parse_via(msg, hdrs[msg->first[SIP_HDR_VIA] - 1].value);

    /* Body framing. */
    size_t avail = (size_t)(bend - p), body_len;
    if (msg->first[SIP_HDR_CONTENT_LENGTH])
        msg->content_length =
            parse_content_length(hdrs[msg->first[SIP_HDR_CONTENT_LENGTH] - 1].value);
    if (mode == SIP_PARSE_STREAM) {
        if (msg->content_length < 0)
            return fail(msg, -EBADMSG, SIP_ERR_CONTENT_LENGTH);
        body_len = (size_t)msg->content_length;
        if (hdr_len + body_len > SIP_MAX_MSG)
            return fail(msg, -E2BIG, SIP_ERR_TOO_LONG);
        if (body_len > avail)
            return -EAGAIN;
    } else if (msg->content_length < 0) {
        msg->anomalies |= msg->first[SIP_HDR_CONTENT_LENGTH] ? SIP_ANOM_BAD_CONTENT_LENGTH
                                                             : SIP_ANOM_NO_CONTENT_LENGTH;
        body_len = avail;
    } else {
        body_len = (size_t)msg->content_length;
        if (body_len > avail) {
            msg->anomalies |= SIP_ANOM_BODY_TRUNCATED;
            body_len = avail;
        } else if (body_len < avail) {
            msg->anomalies |= SIP_ANOM_TRAILING_DATA;
        }
    }
    if (hdr_len + body_len > SIP_MAX_MSG)
        return fail(msg, -E2BIG, SIP_ERR_TOO_LONG);
    msg->body = slice_make(p, body_len);
    msg->raw = slice_make(start, hdr_len + body_len);
    if (mode == SIP_PARSE_STREAM)
        return (int)((size_t)(start - buf) + hdr_len + body_len);
    return (int)len;
}
