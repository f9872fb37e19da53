/* sip_uri: canonical URI identity (RFC 3261 §19.1.4, §10.3 step 5) hashed in one pass over views
 * of the URI; no canonical text is ever built. */
#include "sip_uri.h"

#include <arpa/inet.h>
#include <endian.h>
#include <stdint.h>
#include <string.h>

/* The first word of a key says which encoding follows, so that a raw fallback and a parsed URI
 * never add the same words. */
#define TAG_RAW 0x52ULL   /* 'R': the raw bytes of a URI that did not parse */
#define TAG_FACTS 0x43ULL /* 'C': the fixed-size facts of a parsed URI, then its variable parts */
/* Ends of the variable parts: the tag in the top byte, the part's length below. */
#define TAG_USER 0x55ULL
#define TAG_HOST 0x48ULL
#define TAG_PARAM 0x50ULL /* + the parameter's index in sig_params */
#define TAG_HEADERS 0x3fULL
#define TAG_HNAME 0x4eULL
#define TAG_HVALUE 0x56ULL

/* Bits of the facts word. */
#define F_PORT (1ULL << 16) /* bits 0-15: the port's number */
#define F_SIPS (1ULL << 17)
#define F_USER (1ULL << 18)
#define F_IPV6 (1ULL << 19)
#define F_HEADERS (1ULL << 20)
#define F_FULL (1ULL << 21)
#define F_PARAM_SHIFT 24    /* bit 24 + i: parameter i of sig_params is present */
#define F_PARAM_EQ_SHIFT 32 /* bit 32 + i: ... and has '=' (a value, maybe empty) */

/* §19.1.4: the parameters that must match when present, sorted by name: the key takes them in
 * this order whatever the order in the URI. */
static const struct slice sig_params[] = {
    {"maddr", 5}, {"method", 6}, {"transport", 9}, {"ttl", 3}, {"user", 4},
};
#define N_SIG (sizeof(sig_params) / sizeof(sig_params[0]))

/* The parts of a parsed URI: views into it, and the IPv6 address decoded. */
struct uri_parts {
    struct slice user; /* userinfo before '@' (user[:password]) */
    struct slice host; /* a host name or IPv4 address; unused for IPv6 */
    struct slice sig[N_SIG];
    struct slice headers; /* after '?' */
    uint8_t addr6[16];
    uint64_t facts;
};

/* Canonical bytes are packed into words in registers and handed to hash2 eight at a time. */
struct canon {
    struct hash2 *h;
    uint64_t word;
    unsigned n;    /* bytes in word */
    uint32_t part; /* bytes in the current part */
};

static inline void put(struct canon *c, unsigned char b)
{
    c->word |= (uint64_t)b << (8 * c->n);
    c->part++;
    if (++c->n == 8) {
        hash2_add_u64(c->h, c->word);
        c->word = 0;
        c->n = 0;
    }
}

/* The 8 bytes at p as put() packs them: the first in the low byte, whatever the CPU's order. */
static inline uint64_t load_le(const char *p, size_t n)
{
    uint64_t w = 0;
    memcpy(&w, p, n);
    return le64toh(w);
}

/* put() of every byte of s (lower-cased when lower is set), at the start of a part (c->n is
 * 0), eight at a time: the same words, without a shift and a test per byte. */
static void put_run(struct canon *c, struct slice s, bool lower)
{
    size_t i = 0;

    for (; i + 8 <= s.len; i += 8) {
        uint64_t w = load_le(s.p + i, 8);
        hash2_add_u64(c->h, lower ? slice_lower8(w) : w);
    }
    if (i < s.len) {
        uint64_t w = load_le(s.p + i, s.len - i);
        c->word = lower ? slice_lower8(w) : w;
        c->n = (unsigned)(s.len - i);
    }
    c->part = (uint32_t)s.len;
}

/* Ends a variable part: its last partial word, then tag and length, so that the parts ("ab",
 * "c") and ("a", "bc") differ. */
static void end_part(struct canon *c, uint64_t tag)
{
    if (c->n)
        hash2_add_u64(c->h, c->word);
    hash2_add_u64(c->h, tag << 56 | c->part);
    c->word = 0;
    c->n = 0;
    c->part = 0;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = slice_lower_char(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* RFC 2396 §2.2 reserved characters, and '%': an escape of one of them is not the character
 * (§19.1.4), so it stays an escape; a literal '%' in canonical bytes then always starts one. */
static bool stays_escaped(unsigned char b)
{
    switch (b) {
    case '%':
    case ';':
    case '/':
    case '?':
    case ':':
    case '@':
    case '&':
    case '=':
    case '+':
    case '$':
    case ',':
        return true;
    default:
        return false;
    }
}

/* Adds s with its escapes decoded (lower-casing letters when lower is set), as a part of its
 * own: c is at the start of a part (c->n and c->part are 0), as every caller has it, with a
 * fresh canon or right after end_part. That is what lets s without escapes go to put_run
 * whole, without a test of c here. Returns false at a '%' without two hex digits. */
static bool put_decoded(struct canon *c, struct slice s, bool lower)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *p = s.p, *e = s.p + s.len;

    if (!memchr(s.p, '%', s.len)) {
        put_run(c, s, lower); /* nothing to decode: most URIs */
        return true;
    }
    while (p < e) {
        unsigned char b = (unsigned char)*p++;
        if (b == '%') {
            int hi = e - p >= 2 ? hex_value(p[0]) : -1, lo = hi >= 0 ? hex_value(p[1]) : -1;
            if (lo < 0)
                return false;
            p += 2;
            b = (unsigned char)(hi << 4 | lo);
            if (stays_escaped(b)) {
                put(c, '%');
                put(c, (unsigned char)hex[hi]);
                put(c, (unsigned char)hex[lo]);
                continue;
            }
        }
        put(c, lower ? (unsigned char)slice_lower_char((char)b) : b);
    }
    return true;
}

/* The bytes of a host name or IPv4 address: letters, digits, '-', '.' and '_'. */
static const bool host_chars[256] = {
    ['-'] = true, ['.'] = true, ['_'] = true, ['0'] = true, ['1'] = true, ['2'] = true,
    ['3'] = true, ['4'] = true, ['5'] = true, ['6'] = true, ['7'] = true, ['8'] = true,
    ['9'] = true, ['A'] = true, ['B'] = true, ['C'] = true, ['D'] = true, ['E'] = true,
    ['F'] = true, ['G'] = true, ['H'] = true, ['I'] = true, ['J'] = true, ['K'] = true,
    ['L'] = true, ['M'] = true, ['N'] = true, ['O'] = true, ['P'] = true, ['Q'] = true,
    ['R'] = true, ['S'] = true, ['T'] = true, ['U'] = true, ['V'] = true, ['W'] = true,
    ['X'] = true, ['Y'] = true, ['Z'] = true, ['a'] = true, ['b'] = true, ['c'] = true,
    ['d'] = true, ['e'] = true, ['f'] = true, ['g'] = true, ['h'] = true, ['i'] = true,
    ['j'] = true, ['k'] = true, ['l'] = true, ['m'] = true, ['n'] = true, ['o'] = true,
    ['p'] = true, ['q'] = true, ['r'] = true, ['s'] = true, ['t'] = true, ['u'] = true,
    ['v'] = true, ['w'] = true, ['x'] = true, ['y'] = true, ['z'] = true,
};

static int sig_index(struct slice name)
{
    for (unsigned i = 0; i < N_SIG; i++)
        if (slice_eq_nocase(name, sig_params[i]))
            return (int)i;
    return -1;
}

/* The significant parameters among the ;-parameters in [p, e), p at the first ';'. */
static void parse_params(const char *p, const char *e, struct uri_parts *u)
{
    while (p < e) {
        const char *s = ++p; /* past the ';' */
        const char *end = memchr(s, ';', (size_t)(e - s));
        if (!end)
            end = e;
        const char *eq = memchr(s, '=', (size_t)(end - s));
        int k = sig_index(slice_make(s, (size_t)((eq ? eq : end) - s)));
        if (k >= 0 && !(u->facts & 1ULL << (F_PARAM_SHIFT + k))) {
            u->facts |= 1ULL << (F_PARAM_SHIFT + k);
            if (eq) {
                u->facts |= 1ULL << (F_PARAM_EQ_SHIFT + k);
                u->sig[k] = slice_make(eq + 1, (size_t)(end - eq - 1));
            }
        }
        p = end;
    }
}

/* Splits uri into its parts (see sip_uri_hash for what does not parse). */
static bool parse(struct slice uri, bool full, struct uri_parts *u)
{
    const char *p = uri.p, *e, *colon, *at;

    u->facts = 0; /* every other field is read only when a bit of facts says it was set */
    /* An empty URI may have no bytes at all (p NULL): no pointer is made from it. */
    if (uri.len == 0 || (colon = memchr(p, ':', uri.len)) == NULL)
        return false;
    e = uri.p + uri.len;
    struct slice scheme = slice_make(p, (size_t)(colon - p));
    if (slice_eq_nocase(scheme, SLICE_LIT("sips")))
        u->facts |= F_SIPS;
    else if (!slice_eq_nocase(scheme, SLICE_LIT("sip")))
        return false;
    p = colon + 1;
    /* No '@' is allowed unescaped after the userinfo (host, parameters or headers). */
    if ((at = memchr(p, '@', (size_t)(e - p))) != NULL) {
        if (at == p)
            return false;
        u->user = slice_make(p, (size_t)(at - p));
        u->facts |= F_USER;
        p = at + 1;
    }
    if (p < e && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(e - p));
        char text[INET6_ADDRSTRLEN];
        size_t n = close ? (size_t)(close - p - 1) : 0;
        if (n == 0 || n >= sizeof(text))
            return false;
        memcpy(text, p + 1, n);
        text[n] = '\0';
        if (inet_pton(AF_INET6, text, u->addr6) != 1)
            return false;
        u->facts |= F_IPV6;
        p = close + 1;
    } else {
        const char *h = p;
        while (p < e && host_chars[(unsigned char)*p])
            p++;
        if (p == h)
            return false;
        u->host = slice_make(h, (size_t)(p - h));
    }
    if (p < e && *p == ':') {
        const char *d = ++p;
        uint32_t port = 0;
        for (; p < e && *p >= '0' && *p <= '9'; p++)
            if ((port = port * 10 + (uint32_t)(*p - '0')) > 65535)
                return false;
        if (p == d)
            return false;
        u->facts |= F_PORT | port;
    }
    if (p < e && *p != ';' && *p != '?')
        return false;
    if (!full)
        return true;
    u->facts |= F_FULL;
    /* No '?' is allowed in a parameter: the first one starts the headers. */
    const char *q = memchr(p, '?', (size_t)(e - p));
    parse_params(p, q ? q : e, u);
    if (q) {
        u->facts |= F_HEADERS;
        u->headers = slice_make(q + 1, (size_t)(e - q - 1));
    }
    return true;
}

/* The headers after '?', in any order (§19.1.4: "?subject=project%20x&priority=urgent" equals
 * "?priority=urgent&subject=project%20x"). Each header, its name lower-cased (header names are
 * case-insensitive) and its value as written, escapes decoded in both, is hashed on its own; the
 * sums of the two lanes over the headers and their count go into h. Returns false at a bad
 * escape. */
static bool add_headers(struct hash2 *h, struct slice hs)
{
    const char *p = hs.p, *e = hs.p + hs.len;
    uint64_t sum_a = 0, sum_b = 0, n = 0;

    for (;;) {
        const char *amp = memchr(p, '&', (size_t)(e - p)), *end = amp ? amp : e;
        const char *eq = memchr(p, '=', (size_t)(end - p));
        struct hash2 one = hash2_start(TAG_HEADERS);
        struct canon c = {&one, 0, 0, 0};
        uint64_t a, b;
        if (!put_decoded(&c, slice_make(p, (size_t)((eq ? eq : end) - p)), true))
            return false;
        end_part(&c, TAG_HNAME);
        if (eq) {
            if (!put_decoded(&c, slice_make(eq + 1, (size_t)(end - eq - 1)), false))
                return false;
            end_part(&c, TAG_HVALUE);
        }
        hash2_finish(&one, &a, &b);
        sum_a += a;
        sum_b += b;
        n++;
        if (!amp)
            break;
        p = amp + 1;
    }
    hash2_add_u64(h, sum_a);
    hash2_add_u64(h, sum_b);
    hash2_add_u64(h, TAG_HEADERS << 56 | n);
    return true;
}

/* The words of a parsed URI: the facts, then the userinfo, the host, the significant
 * parameters' values and the headers, each that is there. Returns false at a bad escape. */
static bool add_parts(struct hash2 *h, const struct uri_parts *u)
{
    struct canon c = {h, 0, 0, 0};

    hash2_add_u64(h, TAG_FACTS << 56 | u->facts);
    if (u->facts & F_USER) {
        if (!put_decoded(&c, u->user, false))
            return false;
        end_part(&c, TAG_USER);
    }
    if (u->facts & F_IPV6) {
        uint64_t w[2];
        memcpy(w, u->addr6, sizeof(w));
        hash2_add_u64(h, w[0]);
        hash2_add_u64(h, w[1]);
    } else {
        put_run(&c, u->host, true);
        end_part(&c, TAG_HOST);
    }
    for (unsigned k = 0; k < N_SIG; k++) {
        if (!(u->facts & 1ULL << (F_PARAM_EQ_SHIFT + k)))
            continue;
        if (!put_decoded(&c, u->sig[k], true))
            return false;
        end_part(&c, TAG_PARAM + k);
    }
    return !(u->facts & F_HEADERS) || add_headers(h, u->headers);
}

bool sip_uri_hash(struct hash2 *h, struct slice uri, enum sip_uri_form form)
{
    struct hash2 start = *h;
    struct uri_parts u;

    if (parse(uri, form == SIP_URI_FULL, &u) && add_parts(h, &u))
        return true;
    *h = start; /* a bad escape found while adding: start over with the raw bytes */
    hash2_add_u64(h, TAG_RAW << 56);
    hash2_add(h, uri);
    return false;
}
