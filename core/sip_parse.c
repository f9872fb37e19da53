/* sip_parse: one pass over the start line and header block of a SIP message, producing views into
 * the caller's buffer. It extracts what tracking needs on every message and nothing else: no URI
 * validation beyond locating it, no SDP, no header-specific grammar past Via, CSeq, From and To. */
#include "sip_parse.h"

#include <errno.h>

/* SSE2 is baseline on x86-64; AVX2 or AVX-512BW, where the CPU has them, are chosen at run time
 * for the chunk masks. NEON is baseline on aarch64. Elsewhere the scans work on 64-bit words.
 * SIP_PARSE_NO_SIMD, SIP_PARSE_NO_AVX2 and SIP_PARSE_NO_AVX512 force the fallbacks, for testing
 * them. SIP_V16 says that one of the 16-byte vector sets (SSE2, NEON) is there. */
#if defined(__SSE2__) && !defined(SIP_PARSE_NO_SIMD)
#define SIP_SSE2 1
#define SIP_V16 1
#include <emmintrin.h>
#if defined(__x86_64__) && defined(__GNUC__) && !defined(SIP_PARSE_NO_AVX2)
#define SIP_AVX2 1
#include <immintrin.h>
#if !defined(SIP_PARSE_NO_AVX512)
#define SIP_AVX512 1
#endif
#endif
#elif defined(__aarch64__) && defined(__ARM_NEON) && !defined(SIP_PARSE_NO_SIMD) &&               \
    defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SIP_NEON 1
#define SIP_V16 1
#include <arm_neon.h>
#endif

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* RFC 3261 §25.1 token characters: the only bytes allowed in a method or a header name. */
static const uint8_t tok_char[256] = {
    ['!'] = 1, ['%'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['_'] = 1,
    ['`'] = 1, ['~'] = 1, ['0'] = 1,  ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1,  ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1,
    ['E'] = 1, ['F'] = 1, ['G'] = 1,  ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1,  ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
    ['U'] = 1, ['V'] = 1, ['W'] = 1,  ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1,
    ['c'] = 1, ['d'] = 1, ['e'] = 1,  ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,
    ['k'] = 1, ['l'] = 1, ['m'] = 1,  ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1,  ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static ALWAYS_INLINE bool is_tok(char c)
{
    return tok_char[(unsigned char)c];
}

static ALWAYS_INLINE bool is_digit(char c)
{
    return (unsigned)((unsigned char)c - '0') <= 9;
}

static ALWAYS_INLINE bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

static ALWAYS_INLINE bool is_lws(char c)
{
    return slice_is_lws(c);
}

static bool all_tok(const char *p, const char *e)
{
    for (; p < e; p++)
        if (!is_tok(*p))
            return false;
    return true;
}

#ifdef SIP_V16
/* 16-byte vectors, one set of operations over SSE2 and NEON. A compare gives 0xff in the bytes
 * where it holds and 0 elsewhere; v16_bits makes a 16-bit mask of that, bit i from byte i. */
#ifdef SIP_SSE2
typedef __m128i v16;
/* Keeps a constant vector in its register: GCC would otherwise build it again on every use. */
#define V16_KEEP(v) __asm__("" : "+x"(v))

static ALWAYS_INLINE v16 v16_load(const char *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

static ALWAYS_INLINE v16 v16_set(char c)
{
    return _mm_set1_epi8(c);
}

static ALWAYS_INLINE v16 v16_eq(v16 a, v16 b)
{
    return _mm_cmpeq_epi8(a, b);
}

/* Bytes of a at most those of b, unsigned. */
static ALWAYS_INLINE v16 v16_le(v16 a, v16 b)
{
    return _mm_cmpeq_epi8(_mm_min_epu8(a, b), a);
}

static ALWAYS_INLINE v16 v16_or(v16 a, v16 b)
{
    return _mm_or_si128(a, b);
}

static ALWAYS_INLINE unsigned v16_bits(v16 m)
{
    return (unsigned)_mm_movemask_epi8(m);
}

/* The masks of four compares of 64 consecutive bytes as one, bit i from byte i. */
static ALWAYS_INLINE uint64_t v16_bits64(v16 m0, v16 m1, v16 m2, v16 m3)
{
    return (uint64_t)v16_bits(m0) | (uint64_t)v16_bits(m1) << 16 | (uint64_t)v16_bits(m2) << 32 |
           (uint64_t)v16_bits(m3) << 48;
}
#else
typedef uint8x16_t v16;
#define V16_KEEP(v) __asm__("" : "+w"(v))

static ALWAYS_INLINE v16 v16_load(const char *p)
{
    return vld1q_u8((const uint8_t *)p);
}

static ALWAYS_INLINE v16 v16_set(char c)
{
    return vdupq_n_u8((uint8_t)c);
}

static ALWAYS_INLINE v16 v16_eq(v16 a, v16 b)
{
    return vceqq_u8(a, b);
}

static ALWAYS_INLINE v16 v16_le(v16 a, v16 b)
{
    return vcleq_u8(a, b);
}

static ALWAYS_INLINE v16 v16_or(v16 a, v16 b)
{
    return vorrq_u8(a, b);
}

/* NEON has no movemask: each byte keeps its own bit of weight 1 << (i % 8), and pairwise adds
 * sum eight neighbouring bytes into one. */
static ALWAYS_INLINE v16 v16_weigh(v16 m)
{
    static const uint8_t weight[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    return vandq_u8(m, vld1q_u8(weight));
}

static ALWAYS_INLINE unsigned v16_bits(v16 m)
{
    v16 t = v16_weigh(m);
    t = vpaddq_u8(t, t);
    t = vpaddq_u8(t, t);
    t = vpaddq_u8(t, t);
    return vgetq_lane_u16(vreinterpretq_u16_u8(t), 0);
}

static ALWAYS_INLINE uint64_t v16_bits64(v16 m0, v16 m1, v16 m2, v16 m3)
{
    v16 t = vpaddq_u8(vpaddq_u8(v16_weigh(m0), v16_weigh(m1)),
                      vpaddq_u8(v16_weigh(m2), v16_weigh(m3)));
    t = vpaddq_u8(t, t);
    return vgetq_lane_u64(vreinterpretq_u64_u8(t), 0);
}
#endif
#else
/* Without vectors the scans and the chunk masks work on eight bytes at a time in a 64-bit word
 * (SWAR): byte loops made the parse six times slower than with SSE2. Byte i of the input is
 * byte i of the word, counted from its least significant end. */
static ALWAYS_INLINE uint64_t swar_load(const char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

#define SWAR_ONES 0x0101010101010101ULL

/* The high bit of each byte of w below n (1 to 128), and nothing else. Exact, unlike the usual
 * "(w - 0x01..) & ~w & 0x80.." test, whose borrow also marks a 0x01 byte above a zero byte:
 * adding 0x80 - n to the low seven bits of a byte never carries out of it, and sets its high
 * bit when they reach n; a byte with its own high bit set is not below n. */
static ALWAYS_INLINE uint64_t swar_below(uint64_t w, unsigned n)
{
    const uint64_t low7 = 0x7f7f7f7f7f7f7f7fULL;
    return ~(((w & low7) + (0x80 - n) * SWAR_ONES) | w) & ~low7;
}

/* The high bit of each byte of w equal to c. */
static ALWAYS_INLINE uint64_t swar_equal(uint64_t w, char c)
{
    return swar_below(w ^ ((unsigned char)c * SWAR_ONES), 1);
}

/* The eight high bits of m's bytes as one byte, bit i from byte i: the multiplication moves the
 * bit of byte i to bit 56 + i, and no two of its partial products meet. */
static ALWAYS_INLINE uint64_t swar_gather(uint64_t m)
{
    return ((m >> 7) * 0x0102040810204080ULL) >> 56;
}
#endif

/* Byte scanning inside a header value: "first byte of a small class", 16 bytes at a time with SSE2
 * and a bit scan, so that no loop branches per byte. A scan of [p, e) may load bytes past e, but
 * only inside the span of bytes known to be readable (the caller's buffer in sip_parse, the slice
 * itself in the public helpers). */
struct span {
    const char *lo, *hi;
};

enum scan_class {
    CLS_NONE,  /* only the listed bytes */
    CLS_SPACE, /* a byte <= 0x20 (whitespace, line breaks, controls), or a listed byte */
};

static ALWAYS_INLINE bool scan_hit(char x, enum scan_class cls, char a, char b, char c, char d)
{
    if (cls == CLS_SPACE && (unsigned char)x <= 0x20)
        return true;
    return (a && x == a) || (b && x == b) || (c && x == c) || (d && x == d);
}

#ifdef SIP_V16
static ALWAYS_INLINE unsigned scan_block(v16 v, enum scan_class cls, char a, char b, char c, char d)
{
    v16 m = v16_set(0);
    if (cls == CLS_SPACE)
        m = v16_le(v, v16_set(0x20));
    if (a)
        m = v16_or(m, v16_eq(v, v16_set(a)));
    if (b)
        m = v16_or(m, v16_eq(v, v16_set(b)));
    if (c)
        m = v16_or(m, v16_eq(v, v16_set(c)));
    if (d)
        m = v16_or(m, v16_eq(v, v16_set(d)));
    return v16_bits(m);
}
#else
static ALWAYS_INLINE uint64_t scan_word(uint64_t w, enum scan_class cls, char a, char b, char c,
                                        char d)
{
    uint64_t m = cls == CLS_SPACE ? swar_below(w, 0x21) : 0;
    if (a)
        m |= swar_equal(w, a);
    if (b)
        m |= swar_equal(w, b);
    if (c)
        m |= swar_equal(w, c);
    if (d)
        m |= swar_equal(w, d);
    return m;
}
#endif

/* Returns the first byte of [p, e) in the class, or e. Needs e <= rd.hi and p >= rd.lo. */
static ALWAYS_INLINE const char *scan(const char *p, const char *e, struct span rd,
                                      enum scan_class cls, char a, char b, char c, char d)
{
#ifdef SIP_V16
    while (p < e) {
        unsigned m;
        if (rd.hi - p >= 16) {
            m = scan_block(v16_load(p), cls, a, b, c, d);
            if (m) {
                p += __builtin_ctz(m);
                return p < e ? p : e;
            }
            p += 16;
            continue;
        }
        if (rd.hi - rd.lo < 16)
            break;
        /* Near the end of the readable bytes: the last 16 of them, bits before p shifted out. */
        const char *q = rd.hi - 16;
        m = scan_block(v16_load(q), cls, a, b, c, d);
        m >>= (unsigned)(p - q);
        if (m)
            p += __builtin_ctz(m);
        else
            p = e;
        return p < e ? p : e;
    }
#else
    for (; p < e && rd.hi - p >= 8; p += 8) {
        uint64_t m = scan_word(swar_load(p), cls, a, b, c, d);
        if (m) {
            p += (unsigned)__builtin_ctzll(m) / 8;
            return p < e ? p : e;
        }
    }
#endif
    for (; p < e; p++)
        if (scan_hit(*p, cls, a, b, c, d))
            return p;
    return e; /* also when the last block went past e */
}

/* Returns the last byte of [p, e) equal to a, b or c, or NULL. Needs p >= rd.lo. */
static ALWAYS_INLINE const char *rscan(const char *p, const char *e, struct span rd, char a, char b,
                                       char c)
{
#ifdef SIP_V16
    while (e > p && e - rd.lo >= 16) {
        const char *q = e - 16;
        unsigned m = scan_block(v16_load(q), CLS_NONE, a, b, c, 0);
        if (m) {
            const char *r = q + (31 - __builtin_clz(m));
            return r >= p ? r : NULL;
        }
        e = q;
    }
#else
    while (e > p && e - rd.lo >= 8) {
        const char *q = e - 8;
        uint64_t m = scan_word(swar_load(q), CLS_NONE, a, b, c, 0);
        if (m) {
            const char *r = q + (63 - (unsigned)__builtin_clzll(m)) / 8;
            return r >= p ? r : NULL;
        }
        e = q;
    }
#endif
    while (e > p) {
        e--;
        if (*e == a || *e == b || *e == c)
            return e;
    }
    return NULL;
}

/* Returns the byte after the quoted string opening at *p (a '"'), honouring backslash escapes
 * (RFC 3261 §25.1 quoted-pair), or NULL when it is not closed before e. */
static const char *skip_quoted(const char *p, const char *e, struct span rd)
{
    for (p++;;) {
        p = scan(p, e, rd, CLS_NONE, '"', '\\', 0, 0);
        if (p == e)
            return NULL;
        if (*p == '"')
            return p + 1;
        p += 2;
        if (p >= e)
            return NULL;
    }
}

static ALWAYS_INLINE uint64_t load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static ALWAYS_INLINE uint32_t load32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static ALWAYS_INLINE uint16_t load16(const char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* Decimal numbers, eight bytes at a time (SWAR): the CSeq, the Content-Length and the Via's port
 * are a few digits each, and a byte loop spent more on them than on the rest of their headers.
 * Byte i of the input is byte i of the word, counted from its least significant end. */
static ALWAYS_INLINE uint64_t load64_le(const char *p)
{
    uint64_t w = load64(p);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

/* How many of the bytes of w, from byte 0, are digits before the first that is not (0 to 8). A
 * digit's high nibble is 3 and stays 3 when 6 is added to it. A byte of 0xfa or more carries
 * into the next one, which only a byte after the first non-digit can be. */
static ALWAYS_INLINE unsigned swar_digit_run(uint64_t w)
{
    const uint64_t high = 0xf0f0f0f0f0f0f0f0ULL, threes = 0x3030303030303030ULL;
    uint64_t other = ((w & high) ^ threes) | (((w + 0x0606060606060606ULL) & high) ^ threes);
    return other ? (unsigned)__builtin_ctzll(other) / 8 : 8;
}

/* The value of the n (1 to 8) digits that start w, byte 0 the most significant. They are moved
 * to the top of the word, zeros before them, and combined in pairs, fours and eights; a borrow
 * from a byte after them (w - '0' of a space) only reaches the bytes shifted out. */
static ALWAYS_INLINE uint32_t swar_digits_value(uint64_t w, unsigned n)
{
    uint64_t d = (w - 0x3030303030303030ULL) << (8 * (8 - n));
    d = (d * 10 + (d >> 8)) & 0x00ff00ff00ff00ffULL;
    d = (d * 100 + (d >> 16)) & 0x0000ffff0000ffffULL;
    return (uint32_t)(d * 10000 + (d >> 32));
}

/* The decimal digits that start [p, e), e <= rd.hi, in one word: sets *n to their count and
 * returns their value, or sets *n to 8 and returns 0 when there are eight or more, or when fewer
 * than eight bytes are readable at p (the caller then reads them byte by byte). */
static ALWAYS_INLINE uint32_t digits_at(const char *p, const char *e, struct span rd, size_t *n)
{
    if (rd.hi - p < 8) {
        *n = 8;
        return 0;
    }
    uint64_t w = load64_le(p);
    size_t k = swar_digit_run(w);
    /* A line break follows every value in a message, so digits never run past e there; the
     * clip keeps the reader from depending on it. */
    if (k > (size_t)(e - p))
        k = (size_t)(e - p);
    *n = k;
    return k && k < 8 ? swar_digits_value(w, (unsigned)k) : 0;
}

/* Compares n bytes with a lower-case literal, ignoring ASCII case, by setting bit 5 of every byte.
 * Every literal byte here has bit 5 set (letters, digits, "-/.;="), so besides the upper-case
 * letters only a control byte can pass for another (CR for '-'): it is used where control bytes
 * other than line breaks are already excluded, and no literal has a '-' where a folded value could
 * hold a CR. n is a constant at every call: the loads fold into a few compares. */
static ALWAYS_INLINE bool eq_ci(const char *p, const char *lit, size_t n)
{
    if (n >= 8) {
        uint64_t diff = 0;
        size_t i = 0;
        for (; i + 8 <= n; i += 8)
            diff |= (load64(p + i) | 0x2020202020202020ULL) ^ load64(lit + i);
        if (i < n)
            diff |= (load64(p + n - 8) | 0x2020202020202020ULL) ^ load64(lit + n - 8);
        return diff == 0;
    }
    if (n >= 4)
        return (((load32(p) | 0x20202020u) ^ load32(lit)) |
                ((load32(p + n - 4) | 0x20202020u) ^ load32(lit + n - 4))) == 0;
    if (n >= 2)
        return (((load16(p) | 0x2020u) ^ load16(lit)) |
                ((load16(p + n - 2) | 0x2020u) ^ load16(lit + n - 2))) == 0;
    return n == 0 || (p[0] | 0x20) == lit[0];
}

/* The compact forms of RFC 3261 §7.3.3 and of the extensions that define one. */
/* clang-format off */
static const uint8_t compact_hdr[256] = {
    ['i'] = SIP_HDR_CALL_ID,          ['I'] = SIP_HDR_CALL_ID,
    ['m'] = SIP_HDR_CONTACT,          ['M'] = SIP_HDR_CONTACT,
    ['e'] = SIP_HDR_CONTENT_ENCODING, ['E'] = SIP_HDR_CONTENT_ENCODING,
    ['l'] = SIP_HDR_CONTENT_LENGTH,   ['L'] = SIP_HDR_CONTENT_LENGTH,
    ['c'] = SIP_HDR_CONTENT_TYPE,     ['C'] = SIP_HDR_CONTENT_TYPE,
    ['f'] = SIP_HDR_FROM,             ['F'] = SIP_HDR_FROM,
    ['s'] = SIP_HDR_SUBJECT,          ['S'] = SIP_HDR_SUBJECT,
    ['k'] = SIP_HDR_SUPPORTED,        ['K'] = SIP_HDR_SUPPORTED,
    ['t'] = SIP_HDR_TO,               ['T'] = SIP_HDR_TO,
    ['v'] = SIP_HDR_VIA,              ['V'] = SIP_HDR_VIA,
    ['o'] = SIP_HDR_EVENT,            ['O'] = SIP_HDR_EVENT,
    ['u'] = SIP_HDR_ALLOW_EVENTS,     ['U'] = SIP_HDR_ALLOW_EVENTS,
    ['r'] = SIP_HDR_REFER_TO,         ['R'] = SIP_HDR_REFER_TO,
    ['x'] = SIP_HDR_SESSION_EXPIRES,  ['X'] = SIP_HDR_SESSION_EXPIRES,
    ['b'] = SIP_HDR_REFERRED_BY,      ['B'] = SIP_HDR_REFERRED_BY,
};
/* clang-format on */

#define IS(lit) eq_ci(p, lit, sizeof(lit) - 1)

/* Header identification on a name with no control bytes: a switch on the length, then the first
 * letter, leaves at most one full comparison. */
static ALWAYS_INLINE enum sip_hdr hdr_id(const char *p, size_t n)
{
    char c = (char)(p[0] | 0x20);

    switch (n) {
    case 1:
        return (enum sip_hdr)compact_hdr[(unsigned char)p[0]];
    case 2:
        return IS("to") ? SIP_HDR_TO : SIP_HDR_OTHER;
    case 3:
        return IS("via") ? SIP_HDR_VIA : SIP_HDR_OTHER;
    case 4:
        if (c == 'f')
            return IS("from") ? SIP_HDR_FROM : SIP_HDR_OTHER;
        if (c == 'c')
            return IS("cseq") ? SIP_HDR_CSEQ : SIP_HDR_OTHER;
        if (IS("rseq"))
            return SIP_HDR_RSEQ;
        return IS("rack") ? SIP_HDR_RACK : SIP_HDR_OTHER;
    case 5:
        if (c == 'r')
            return IS("route") ? SIP_HDR_ROUTE : SIP_HDR_OTHER;
        if (c == 'e')
            return IS("event") ? SIP_HDR_EVENT : SIP_HDR_OTHER;
        return IS("allow") ? SIP_HDR_ALLOW : SIP_HDR_OTHER;
    case 6:
        if (c == 'm')
            return IS("min-se") ? SIP_HDR_MIN_SE : SIP_HDR_OTHER;
        if (c == 's')
            return IS("server") ? SIP_HDR_SERVER : SIP_HDR_OTHER;
        return IS("reason") ? SIP_HDR_REASON : SIP_HDR_OTHER;
    case 7:
        if (c == 'c') {
            if (IS("call-id"))
                return SIP_HDR_CALL_ID;
            return IS("contact") ? SIP_HDR_CONTACT : SIP_HDR_OTHER;
        }
        if (c == 'e')
            return IS("expires") ? SIP_HDR_EXPIRES : SIP_HDR_OTHER;
        if (c == 'r')
            return IS("require") ? SIP_HDR_REQUIRE : SIP_HDR_OTHER;
        return IS("subject") ? SIP_HDR_SUBJECT : SIP_HDR_OTHER;
    case 8:
        return IS("refer-to") ? SIP_HDR_REFER_TO : SIP_HDR_OTHER;
    case 9:
        return IS("supported") ? SIP_HDR_SUPPORTED : SIP_HDR_OTHER;
    case 10:
        return IS("user-agent") ? SIP_HDR_USER_AGENT : SIP_HDR_OTHER;
    case 11:
        return IS("referred-by") ? SIP_HDR_REFERRED_BY : SIP_HDR_OTHER;
    case 12:
        if (c == 'c')
            return IS("content-type") ? SIP_HDR_CONTENT_TYPE : SIP_HDR_OTHER;
        if (c == 'm')
            return IS("max-forwards") ? SIP_HDR_MAX_FORWARDS : SIP_HDR_OTHER;
        if (c == 'r')
            return IS("record-route") ? SIP_HDR_RECORD_ROUTE : SIP_HDR_OTHER;
        return IS("allow-events") ? SIP_HDR_ALLOW_EVENTS : SIP_HDR_OTHER;
    case 13:
        return IS("authorization") ? SIP_HDR_AUTHORIZATION : SIP_HDR_OTHER;
    case 14:
        return IS("content-length") ? SIP_HDR_CONTENT_LENGTH : SIP_HDR_OTHER;
    case 15:
        return IS("session-expires") ? SIP_HDR_SESSION_EXPIRES : SIP_HDR_OTHER;
    case 16:
        if (c == 'c')
            return IS("content-encoding") ? SIP_HDR_CONTENT_ENCODING : SIP_HDR_OTHER;
        return IS("www-authenticate") ? SIP_HDR_WWW_AUTHENTICATE : SIP_HDR_OTHER;
    case 18:
        return IS("proxy-authenticate") ? SIP_HDR_PROXY_AUTHENTICATE : SIP_HDR_OTHER;
    case 19:
        if (IS("proxy-authorization"))
            return SIP_HDR_PROXY_AUTHORIZATION;
        return IS("p-asserted-identity") ? SIP_HDR_P_ASSERTED_IDENTITY : SIP_HDR_OTHER;
    default:
        return SIP_HDR_OTHER;
    }
}

#undef IS

#ifdef SIP_V16
/* Header lines whose colon is among their first 16 bytes are identified with the 16 bytes already
 * loaded: a perfect hash of (first two letters, length) picks the one known name it could be, and
 * one vector compare, colon included (so the length must match too), decides. The multiplier
 * gives the 28 known names of 2 to 15 bytes 28 distinct slots of 64 (found by a search). */
#define HDR_HASH_MUL 0x2d1dde09u

struct hdr_hash_entry {
    _Alignas(16) char lit[16]; /* lower-case name, then ':', zero-padded */
    uint32_t want;             /* bits of lit to compare: the name and its colon (0: empty) */
    uint8_t id;                /* enum sip_hdr; SIP_HDR_OTHER in an empty slot */
};

static ALWAYS_INLINE unsigned hdr_hash(const char *p, size_t n)
{
    uint32_t w = (uint32_t)(load16(p) | 0x2020u) | (uint32_t)n << 16;
    return (w * HDR_HASH_MUL) >> 26;
}

/* Slot of a name from its first two bytes and length, as a constant expression. */
#define HDR_SLOT(a, b, n)                                                                          \
    ((((uint32_t)((a) | 0x20) | (uint32_t)((b) | 0x20) << 8 | (uint32_t)(n) << 16) * HDR_HASH_MUL) \
     >> 26)
#define HDR_ENTRY(a, b, lit, id)                                                                   \
    [HDR_SLOT(a, b, sizeof(lit) - 1)] = {lit ":", (2u << (sizeof(lit) - 1)) - 1, id}

/* clang-format off */
static const struct hdr_hash_entry hdr_hash_table[64] = {
    HDR_ENTRY('t', 'o', "to", SIP_HDR_TO),
    HDR_ENTRY('v', 'i', "via", SIP_HDR_VIA),
    HDR_ENTRY('f', 'r', "from", SIP_HDR_FROM),
    HDR_ENTRY('c', 's', "cseq", SIP_HDR_CSEQ),
    HDR_ENTRY('r', 's', "rseq", SIP_HDR_RSEQ),
    HDR_ENTRY('r', 'a', "rack", SIP_HDR_RACK),
    HDR_ENTRY('r', 'o', "route", SIP_HDR_ROUTE),
    HDR_ENTRY('e', 'v', "event", SIP_HDR_EVENT),
    HDR_ENTRY('a', 'l', "allow", SIP_HDR_ALLOW),
    HDR_ENTRY('m', 'i', "min-se", SIP_HDR_MIN_SE),
    HDR_ENTRY('s', 'e', "server", SIP_HDR_SERVER),
    HDR_ENTRY('r', 'e', "reason", SIP_HDR_REASON),
    HDR_ENTRY('c', 'a', "call-id", SIP_HDR_CALL_ID),
    HDR_ENTRY('c', 'o', "contact", SIP_HDR_CONTACT),
    HDR_ENTRY('e', 'x', "expires", SIP_HDR_EXPIRES),
    HDR_ENTRY('r', 'e', "require", SIP_HDR_REQUIRE),
    HDR_ENTRY('s', 'u', "subject", SIP_HDR_SUBJECT),
    HDR_ENTRY('r', 'e', "refer-to", SIP_HDR_REFER_TO),
    HDR_ENTRY('s', 'u', "supported", SIP_HDR_SUPPORTED),
    HDR_ENTRY('u', 's', "user-agent", SIP_HDR_USER_AGENT),
    HDR_ENTRY('r', 'e', "referred-by", SIP_HDR_REFERRED_BY),
    HDR_ENTRY('c', 'o', "content-type", SIP_HDR_CONTENT_TYPE),
    HDR_ENTRY('m', 'a', "max-forwards", SIP_HDR_MAX_FORWARDS),
    HDR_ENTRY('r', 'e', "record-route", SIP_HDR_RECORD_ROUTE),
    HDR_ENTRY('a', 'l', "allow-events", SIP_HDR_ALLOW_EVENTS),
    HDR_ENTRY('a', 'u', "authorization", SIP_HDR_AUTHORIZATION),
    HDR_ENTRY('c', 'o', "content-length", SIP_HDR_CONTENT_LENGTH),
    HDR_ENTRY('s', 'e', "session-expires", SIP_HDR_SESSION_EXPIRES),
};
/* clang-format on */

#undef HDR_ENTRY
#undef HDR_SLOT
#endif

enum sip_hdr sip_header_id(struct slice name)
{
    /* hdr_id's case folding is exact on token bytes only. */
    if (name.len == 0 || !all_tok(name.p, name.p + name.len))
        return SIP_HDR_OTHER;
    return hdr_id(name.p, name.len);
}

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
    [SIP_METHOD_OTHER] = "other",
    [SIP_METHOD_INVITE] = "INVITE",
    [SIP_METHOD_ACK] = "ACK",
    [SIP_METHOD_BYE] = "BYE",
    [SIP_METHOD_CANCEL] = "CANCEL",
    [SIP_METHOD_REGISTER] = "REGISTER",
    [SIP_METHOD_OPTIONS] = "OPTIONS",
    [SIP_METHOD_PRACK] = "PRACK",
    [SIP_METHOD_SUBSCRIBE] = "SUBSCRIBE",
    [SIP_METHOD_NOTIFY] = "NOTIFY",
    [SIP_METHOD_PUBLISH] = "PUBLISH",
    [SIP_METHOD_INFO] = "INFO",
    [SIP_METHOD_REFER] = "REFER",
    [SIP_METHOD_MESSAGE] = "MESSAGE",
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

/* Finds the first ';' or ',' of [p, e) outside quotes and <...>: where the parameters of a header
 * value start (after the display name and URI, or after a Via's sent-by). */
static const char *params_start(const char *p, const char *e, struct span rd)
{
    for (;;) {
        p = scan(p, e, rd, CLS_NONE, ';', ',', '"', '<');
        if (p == e || *p == ';' || *p == ',')
            return p;
        if (*p == '"') {
            p = skip_quoted(p, e, rd);
            if (!p)
                return e;
        } else {
            p = scan(p + 1, e, rd, CLS_NONE, '>', 0, 0, 0);
            if (p == e)
                return e;
            p++;
        }
    }
}

static ALWAYS_INLINE const char *skip_lws_p(const char *p, const char *e)
{
    while (p < e && is_lws(*p))
        p++;
    return p;
}

/* Looks for parameter name[nlen] (case-insensitive) among the ';' parameters from p to the first
 * ',' outside quotes, or e. A quoted value is returned with its quotes. */
static bool param_find(const char *p, const char *e, struct span rd, const char *name, size_t nlen,
                       struct slice *val)
{
    for (;;) {
        p = scan(p, e, rd, CLS_NONE, ';', ',', '"', 0);
        if (p == e || *p == ',')
            return false;
        if (*p == '"') {
            p = skip_quoted(p, e, rd);
            if (!p)
                return false;
            continue;
        }
        p = skip_lws_p(p + 1, e);
        const char *ns = p;
        while (p < e && is_tok(*p))
            p++;
        const char *ne = p;
        p = skip_lws_p(p, e);
        const char *vs = p, *ve = p;
        if (p < e && *p == '=') {
            vs = p = skip_lws_p(p + 1, e);
            if (p < e && *p == '"') {
                p = skip_quoted(p, e, rd);
                if (!p)
                    p = e;
            } else {
                p = scan(p, e, rd, CLS_SPACE, ';', ',', 0, 0);
            }
            ve = p;
        }
        if ((size_t)(ne - ns) == nlen &&
            slice_eq_nocase(slice_make(ns, nlen), slice_make(name, nlen))) {
            *val = slice_make(vs, (size_t)(ve - vs));
            return true;
        }
    }
}

/* Splits a name-addr or addr-spec: the URI, and where its header parameters start. RFC 3261 §20:
 * without <...> every ';' parameter belongs to the header, not to the URI. Returns false on
 * garbage (unclosed quote or bracket, a display name without <...>, junk after an addr-spec). */
static bool addr_split(const char *p, const char *e, struct span rd, struct slice *uri,
                       const char **params)
{
    bool quoted = false;

    p = skip_lws_p(p, e);
    const char *s = p, *q = p;
    for (;;) {
        q = scan(q, e, rd, CLS_NONE, '<', ';', ',', '"');
        if (q == e || *q != '"')
            break;
        quoted = true;
        q = skip_quoted(q, e, rd);
        if (!q)
            return false;
    }
    if (q < e && *q == '<') {
        const char *gt = scan(q + 1, e, rd, CLS_NONE, '>', 0, 0, 0);
        if (gt == e)
            return false;
        *uri = slice_trim(slice_make(q + 1, (size_t)(gt - q - 1)));
        *params = gt + 1;
        return true;
    }
    if (quoted || q == s)
        return false;
    const char *u = scan(s, q, rd, CLS_SPACE, 0, 0, 0, 0);
    if (skip_lws_p(u, q) != q)
        return false;
    *uri = slice_make(s, (size_t)(u - s));
    *params = q;
    return true;
}

/* Callers check for an empty slice first: its pointer may be NULL. */
static struct span span_of(struct slice s)
{
    return (struct span){s.p, s.p + s.len};
}

bool sip_list_next(struct slice value, size_t *pos, struct slice *item)
{
    if (*pos >= value.len) { /* also keeps NULL + 0 away from an absent header's empty slice */
        *pos = value.len;
        return false;
    }
    struct span rd = span_of(value);
    const char *p = value.p + *pos, *e = rd.hi;

    while (p < e) {
        while (p < e && (is_lws(*p) || *p == ','))
            p++;
        const char *s = p;
        for (;;) {
            p = scan(p, e, rd, CLS_NONE, ',', '"', '<', 0);
            if (p == e || *p == ',')
                break;
            if (*p == '"') {
                p = skip_quoted(p, e, rd);
            } else {
                p = scan(p + 1, e, rd, CLS_NONE, '>', 0, 0, 0);
                p = p < e ? p + 1 : p;
            }
            if (!p) {
                p = e;
                break;
            }
        }
        struct slice it = slice_trim(slice_make(s, (size_t)(p - s)));
        if (it.len) {
            *pos = (size_t)(p - value.p);
            *item = it;
            return true;
        }
    }
    *pos = value.len;
    return false;
}

bool sip_header_param(struct slice value, struct slice name, struct slice *val)
{
    if (value.len == 0 || name.len == 0)
        return false;
    struct span rd = span_of(value);
    return param_find(params_start(rd.lo, rd.hi, rd), rd.hi, rd, name.p, name.len, val);
}

struct slice sip_addr_uri(struct slice value)
{
    struct slice uri;
    const char *params;

    if (value.len == 0)
        return slice_make(NULL, 0);
    struct span rd = span_of(value);
    if (!addr_split(rd.lo, rd.hi, rd, &uri, &params))
        return slice_make(NULL, 0);
    return uri;
}

/* The parse proper.
 *
 * Line ends come from bitmaps rather than from a scan per line: the header block is read in
 * 64-byte chunks, each turned into a mask of its LF bytes, and every line end is the next set bit.
 * Finding a line end then depends only on the previous one (a bit scan), not on the colon or value
 * scans of the line, so the work on consecutive lines overlaps in the CPU. The same pass flags
 * control bytes that are not part of a line break (NUL, a CR not followed by LF, ...). */

struct lines;
struct lines_pos;

/* Computes the LF mask of the 64-byte chunk at b (chunk_lf and its SIMD variants). */
typedef uint64_t (*chunk_fn)(struct lines *it, const char *b);

/* The header block's parse (parse_headers), built once per SIMD variant with its chunk code
 * inlined. */
typedef int (*headers_fn)(struct lines *it, struct lines_pos *atp, const char **lep,
                          struct sip_msg *msg, struct sip_header *hdrs, size_t max_hdrs);

struct lines {
    const char *s;         /* start of the message (after any leading empty lines) */
    const char *end;       /* end of what may be parsed: the input, or SIP_MAX_MSG bytes; cut
                            * back to the start of first_bad's chunk when one is found */
    const char *first_bad; /* the first stray control byte seen; NULL while none */
    struct span rd;        /* the caller's buffer */
    uintptr_t wide_end;    /* a line starting at or below it has 16 readable bytes (0: none) */
    bool capped;      /* end is SIP_MAX_MSG: more input cannot complete the header block */
    chunk_fn chunk;   /* the widest variant the CPU has (variant_best) */
    headers_fn headers; /* the same variant's header block parse */
    const char *start_lf; /* the tolerant parse's (parse_with): the start line's LF, or end */
};

/* The position in the LF masks. Kept apart from struct lines so that it stays in registers: the
 * next line end must not wait on a store and reload. */
struct lines_pos {
    const char *base; /* the current chunk */
    uint64_t lf;      /* LF bits of the current chunk not handed out yet */
};

/* LF bytes and control bytes (HT, CR and LF included) of the 64 bytes at p. */
static ALWAYS_INLINE void chunk_masks(const char *p, uint64_t *lf, uint64_t *ctl)
{
#ifdef SIP_V16
    const v16 nl = v16_set('\n'), c1f = v16_set(0x1f);
    v16 v0 = v16_load(p), v1 = v16_load(p + 16), v2 = v16_load(p + 32), v3 = v16_load(p + 48);
    *lf = v16_bits64(v16_eq(v0, nl), v16_eq(v1, nl), v16_eq(v2, nl), v16_eq(v3, nl));
    *ctl = v16_bits64(v16_le(v0, c1f), v16_le(v1, c1f), v16_le(v2, c1f), v16_le(v3, c1f));
#else
    uint64_t l = 0, c = 0;
    for (unsigned k = 0; k < 8; k++) {
        uint64_t w = swar_load(p + 8 * k);
        l |= swar_gather(swar_equal(w, '\n')) << (8 * k);
        c |= swar_gather(swar_below(w, 0x20)) << (8 * k);
    }
    *lf = l;
    *ctl = c;
#endif
}

#ifdef SIP_AVX2
__attribute__((target("avx2"))) static ALWAYS_INLINE void
chunk_masks_avx2(const char *p, uint64_t *lf, uint64_t *ctl)
{
    const __m256i nl = _mm256_set1_epi8('\n'), c1f = _mm256_set1_epi8(0x1f);
    __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
    *lf = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, nl)) |
          (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, nl)) << 32;
    *ctl = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(a, c1f), a)) |
           (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(b, c1f), b))
               << 32;
}
#endif

/* Where to read the chunk at base: 64 bytes in place when they are readable, else the last 64
 * readable bytes (then the masks are shifted right by *shift), else a zero-padded copy. */
static ALWAYS_INLINE const char *chunk_src(const struct lines *it, const char *b, char *tmp,
                                           unsigned *shift)
{
    *shift = 0;
    if (it->rd.hi - b >= 64)
        return b;
    if (it->rd.hi - it->rd.lo >= 64) {
        *shift = (unsigned)(b - (it->rd.hi - 64));
        return it->rd.hi - 64;
    }
    memset(tmp, 0, 64);
    memcpy(tmp, b, (size_t)(it->rd.hi - b));
    return tmp;
}

/* Whether the byte at p follows an odd number of backslashes (from s on). */
static bool after_odd_backslashes(const char *s, const char *p)
{
    size_t k = 0;

    while (p > s && p[-1] == '\\') {
        p--;
        k++;
    }
    return k & 1;
}

/* Whether the stray byte at p is a control byte escaped as a quoted-pair in a header line: RFC
 * 3261 §25.1, quoted-pair = "\" and any byte but CR and LF. RFC 4475 §3.1.1.2 (intmeth), a valid
 * message, has "\" NUL and "\" BEL in its To display name. start_lf ends the start line, where
 * no control byte is allowed. Whether the pair is inside a quoted string is not checked: outside
 * one it is invalid anyway, and harmless. */
static bool escaped_ctl(const char *s, const char *start_lf, const char *p)
{
    return *p != '\r' && p > start_lf && after_odd_backslashes(s, p);
}

/* Records the first stray control byte of the chunk at b (n bytes of it are input; the byte
 * after it is readable when n > 64): a control byte that is no LF and precedes no LF. An HT is
 * fine, so is a CR that ends the input (its LF may follow), and in the tolerant parse
 * (parse_with) a control byte escaped as a quoted-pair in a header line. Returns lf without the
 * LFs after a stray byte, and stops the lines at this chunk: a line that holds one is never
 * handed out, so the header loop needs no check of its own, and its lines end with need_more's
 * error. A stray byte after the empty line is in the body, where it is no error: the lines have
 * ended by then. tolerant is a constant at each use (chunk_odd, chunk_odd_tolerant). */
static ALWAYS_INLINE uint64_t chunk_odd_with(struct lines *it, const char *b, uint64_t lf,
                                             uint64_t ctl, size_t n, bool tolerant)
{
    bool next_lf = n > 64 && b[64] == '\n';
    uint64_t odd = ctl & ~lf & ~(lf >> 1 | (uint64_t)next_lf << 63);

    while (odd && !it->first_bad) {
        unsigned i = (unsigned)__builtin_ctzll(odd);
        odd &= odd - 1;
        if (b[i] == '\t' || (b[i] == '\r' && i + 1 == n) ||
            (tolerant && escaped_ctl(it->s, it->start_lf, b + i)))
            continue;
        it->first_bad = b + i;
        it->end = b;
        return lf & ((1ULL << i) - 1);
    }
    return lf;
}

__attribute__((noinline)) static uint64_t chunk_odd(struct lines *it, const char *b, uint64_t lf,
                                                    uint64_t ctl, size_t n)
{
    return chunk_odd_with(it, b, lf, ctl, n, false);
}

/* The tolerant parse's, a function of its own reached only through the function pointers that
 * parse sets: the quoted-pair test in chunk_odd itself took registers from the header loop
 * around its call (GCC's IPA-RA), 34 instructions more per message (callgrind, invite_sdp.sip),
 * for messages that hardly ever come. */
__attribute__((noinline, cold)) static uint64_t
chunk_odd_tolerant(struct lines *it, const char *b, uint64_t lf, uint64_t ctl, size_t n)
{
    return chunk_odd_with(it, b, lf, ctl, n, true);
}

/* Expected control bytes are LF and whatever precedes an LF (a CR, or checked by the line).
 * When every line of the chunk ends in CRLF its control bytes are exactly the LFs and the bytes
 * before them, one compare; anything else (an HT, a CRLF cut by the chunk's end, a bare LF, a
 * stray byte) is sorted out by chunk_odd. Returns the LF mask. */
static ALWAYS_INLINE uint64_t chunk_check(struct lines *it, const char *b, uint64_t lf,
                                          uint64_t ctl, size_t n, bool tolerant)
{
    if (__builtin_expect(ctl != (lf | lf >> 1), 0))
        return tolerant ? chunk_odd_tolerant(it, b, lf, ctl, n) : chunk_odd(it, b, lf, ctl, n);
    return lf;
}

/* Computes the LF and control-byte masks of the 64 bytes at p (chunk_masks and its SIMD
 * variants). */
typedef void (*masks_fn)(const char *p, uint64_t *lf, uint64_t *ctl);

/* The last chunk, which may be cut by the end of the input or of the buffer; masks is the
 * variant's own (inlined: a constant at each use). Most messages end their header block in
 * their last 64 bytes, so this is the common last step, not a rare one. */
static ALWAYS_INLINE uint64_t chunk_tail_with(struct lines *it, const char *b, masks_fn masks,
                                              bool tolerant)
{
    size_t n = (size_t)(it->end - b);
    char tmp[64];
    unsigned shift;
    uint64_t lf, ctl;

    masks(chunk_src(it, b, tmp, &shift), &lf, &ctl);
    lf >>= shift;
    ctl >>= shift;
    if (n < 64) {
        lf &= (1ULL << n) - 1;
        ctl &= (1ULL << n) - 1;
    }
    return chunk_check(it, b, lf, ctl, n, tolerant);
}

/* LF mask of the chunk at base (below it->end), computed when the lines reach it: a header block
 * costs the chunks it spans, not those of the body after it. A chunk with input after it is read
 * in place and needs no masking; the last one goes through chunk_tail_with. masks is the
 * variant's (a constant where this is inlined). */
static ALWAYS_INLINE uint64_t chunk_lf_with(struct lines *it, const char *b, masks_fn masks,
                                            bool tolerant)
{
    uint64_t lf, ctl;

    if (it->end - b <= 64)
        return chunk_tail_with(it, b, masks, tolerant);
    masks(b, &lf, &ctl);
    return chunk_check(it, b, lf, ctl, 65, tolerant);
}

__attribute__((noinline)) static uint64_t chunk_lf(struct lines *it, const char *b)
{
    return chunk_lf_with(it, b, chunk_masks, false);
}

__attribute__((noinline, cold)) static uint64_t chunk_lf_tolerant(struct lines *it, const char *b)
{
    return chunk_lf_with(it, b, chunk_masks, true);
}

#ifdef SIP_AVX2
__attribute__((noinline, target("avx2"))) static uint64_t chunk_lf_avx2(struct lines *it,
                                                                       const char *b)
{
    return chunk_lf_with(it, b, chunk_masks_avx2, false);
}
#endif

#ifdef SIP_AVX512
/* One 64-byte load and two compares into mask registers. */
__attribute__((target("avx512bw"))) static ALWAYS_INLINE void
chunk_masks_avx512(const char *p, uint64_t *lf, uint64_t *ctl)
{
    __m512i v = _mm512_loadu_si512((const void *)p);
    *lf = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\n'));
    *ctl = _mm512_cmplt_epu8_mask(v, _mm512_set1_epi8(0x20));
}

__attribute__((noinline, target("avx512bw"))) static uint64_t chunk_lf_avx512(struct lines *it,
                                                                             const char *b)
{
    return chunk_lf_with(it, b, chunk_masks_avx512, false);
}
#endif

static ALWAYS_INLINE uint64_t chunk_lf_any(struct lines *it, const struct lines_pos *at)
{
    return it->chunk(it, at->base);
}

/* Sets *pos to the next LF. Returns false when the input ends first. With masks (a constant),
 * the chunk code is inlined; without (NULL), the variant is called through it->chunk. */
static ALWAYS_INLINE bool lines_next_with(struct lines *it, struct lines_pos *at,
                                          const char **pos, masks_fn masks)
{
    while (at->lf == 0) {
        if (it->end - at->base <= 64)
            return false;
        at->base += 64;
        at->lf = masks ? chunk_lf_with(it, at->base, masks, false) : chunk_lf_any(it, at);
    }
    *pos = at->base + (size_t)__builtin_ctzll(at->lf);
    at->lf &= at->lf - 1;
    return true;
}

static ALWAYS_INLINE bool lines_next(struct lines *it, struct lines_pos *at, const char **pos)
{
    return lines_next_with(it, at, pos, NULL);
}

/* Where the line that ends with the LF at le (and starts at ls) ends without its line break.
 * Returns false if the byte before the LF is a control byte other than CR or HT. */
static ALWAYS_INLINE bool line_body_end(const char *ls, const char *le, const char **ve,
                                        uint32_t *anomalies)
{
    if (le > ls && le[-1] == '\r') {
        *ve = le - 1;
        return true;
    }
    *anomalies |= SIP_ANOM_BARE_LF;
    *ve = le;
    return !(le > ls && (unsigned char)le[-1] < 0x20 && le[-1] != '\t');
}

struct name_value {
    const char *ne; /* end of the name, NULL when the line has no colon */
    const char *vs; /* start of the value */
};

/* The general case of splitting a header line [ln, le1) at its colon; vend ends the value. */
__attribute__((noinline)) static struct name_value name_split(const char *ln, const char *le1,
                                                              const char *vend, struct span rd)
{
    struct name_value r = {NULL, NULL};
    const char *colon = scan(ln, le1, rd, CLS_NONE, ':', 0, 0, 0);
    if (colon == le1)
        return r;
    r.ne = colon;
    while (r.ne > ln && is_wsp(r.ne[-1]))
        r.ne--;
    r.vs = colon + 1;
    while (r.vs < vend && is_wsp(*r.vs))
        r.vs++;
    return r;
}

/* memset of the message, which compilers turn into "rep stos": slow to start for ~300 bytes and
 * measurable per message. Unrolled stores instead. */
static ALWAYS_INLINE void zero_msg(struct sip_msg *msg)
{
#ifdef SIP_SSE2
    char *p = (char *)msg;
    size_t i = 0;
#pragma GCC unroll 32
    for (; i + 16 <= sizeof(*msg); i += 16)
        _mm_storeu_si128((__m128i *)(void *)(p + i), _mm_setzero_si128());
    memset(p + i, 0, sizeof(*msg) - i);
#else
    memset(msg, 0, sizeof(*msg));
#endif
}

static int fail(struct sip_msg *msg, int rc, enum sip_error why)
{
    msg->error = (uint8_t)why;
    return rc;
}

/* A failure inside the header block: the headers before it stay readable. */
static int fail_at(struct sip_msg *msg, uint32_t n, int rc, enum sip_error why)
{
    msg->n_headers = n;
    return fail(msg, rc, why);
}

/* The input ended inside the header block. Every byte seen so far belongs to it, so a stray
 * control byte among them is an error now; otherwise more input helps, unless the window already
 * holds SIP_MAX_MSG bytes. */
static int need_more(const struct lines *it, struct sip_msg *msg, bool in_start)
{
    if (it->first_bad)
        return fail(msg, -EBADMSG, in_start ? SIP_ERR_START_LINE : SIP_ERR_HEADER_SYNTAX);
    if (it->capped)
        return fail(msg, -E2BIG, SIP_ERR_TOO_LONG);
    return -EAGAIN;
}

#ifdef SIP_V16
/* The name of a header line ln whose colon is among its first 16 bytes, with no whitespace before
 * it (most lines): sets *ne and *id from the 16 bytes v at ln and returns true; false sends the
 * line to the general path. ve1 ends the line. colon and lower are v16_set(':') and
 * v16_set(0x20), made once by the caller. */
static ALWAYS_INLINE bool name_fast(const char *ln, v16 v, const char *ve1, const char **ne,
                                    enum sip_hdr *id, v16 colon, v16 lower)
{
    unsigned ci = (unsigned)__builtin_ctz(v16_bits(v16_eq(v, colon)) | 0x10000u);
    /* Stray controls were rejected, so the byte before the colon is whitespace iff <= ' '. */
    if (ci - 1 >= 15 || (size_t)(ve1 - ln) <= ci || (unsigned char)ln[ci - 1] <= ' ')
        return false;
    *ne = ln + ci;
    if (ci == 1) {
        *id = (enum sip_hdr)compact_hdr[(unsigned char)ln[0]];
        return true;
    }
    /* The slot's name and colon must all match: the colon at ci in both means equal lengths (an
     * empty slot wants nothing, and its id is SIP_HDR_OTHER). */
    const struct hdr_hash_entry *he = &hdr_hash_table[hdr_hash(ln, ci)];
    unsigned eq = v16_bits(v16_eq(v16_or(v, lower), v16_load(he->lit)));
    *id = (eq & he->want) == he->want ? (enum sip_hdr)he->id : SIP_HDR_OTHER;
    return true;
}
#endif

/* Header block: each line is name [WSP] ':' [WSP] value, continued by lines that start with
 * whitespace (RFC 3261 §7.3.1), up to an empty line. The start line ends with the LF at *lep;
 * on success *lep is the LF of the empty line, msg->n_headers and msg->first[] are set and 0 is
 * returned; otherwise what sip_parse returns. A function of its own so that the loop's state
 * stays in registers, built once per SIMD variant (masks) so that the chunk code is inlined in
 * the loop: an INVITE's header block spans nine or ten chunks. */
static ALWAYS_INLINE int parse_headers_with(struct lines *it, struct lines_pos *atp,
                                            const char **lep, struct sip_msg *msg,
                                            struct sip_header *hdrs, size_t max_hdrs,
                                            masks_fn masks)
{
    struct lines_pos at = *atp;
    const char *le = *lep;
    uint32_t n = 0;
#ifdef SIP_V16
    /* name_fast's constants, made opaque so that they are built once here and kept: GCC would
     * otherwise build them again on every line (three instructions each with SSE2). */
    v16 colon = v16_set(':'), lower = v16_set(0x20);
    V16_KEEP(colon);
    V16_KEEP(lower);
#endif

    for (;;) {
        const char *ln = le + 1, *vend;
        if (!lines_next_with(it, &at, &le, masks)) {
            if (it->first_bad) /* the lines stopped before a stray byte */
                return fail_at(msg, n, -EBADMSG, SIP_ERR_HEADER_SYNTAX);
            return need_more(it, msg, false);
        }
        /* The byte before le is readable even for an empty bare-LF line: the LF of the line
         * before, which is no CR. */
        if (__builtin_expect(le[-1] == '\r', 1))
            vend = le - 1;
        else if (!line_body_end(ln, le, &vend, &msg->anomalies))
            return fail_at(msg, n, -EBADMSG, SIP_ERR_HEADER_SYNTAX);
        if (vend == ln)
            break; /* the empty line */
        /* Stray controls were rejected: a line that starts with a byte <= ' ' starts with
         * whitespace, and continues the header before it, whose value then runs to here. */
        if (__builtin_expect((unsigned char)*ln <= ' ', 0)) {
            if (n == 0)
                return fail_at(msg, n, -EBADMSG, SIP_ERR_HEADER_SYNTAX);
            struct sip_header *prev = &hdrs[n - 1];
            msg->anomalies |= SIP_ANOM_FOLDED;
            prev->value = slice_trim(slice_make(prev->value.p, (size_t)(vend - prev->value.p)));
            continue;
        }
        if (n == max_hdrs)
            return fail_at(msg, n, -E2BIG, SIP_ERR_TOO_MANY_HEADERS);

        /* The name: up to the colon; the value starts after whitespace. */
        const char *ne, *vs;
        enum sip_hdr id = SIP_HDR_OTHER;
#ifdef SIP_V16
        if ((uintptr_t)ln <= it->wide_end &&
            name_fast(ln, v16_load(ln), vend, &ne, &id, colon, lower)) {
            vs = ne + 1;
        } else
#endif
        {
            struct name_value nv = name_split(ln, vend, vend, it->rd);
            if (!nv.ne || nv.ne == ln)
                return fail_at(msg, n, -EBADMSG, SIP_ERR_HEADER_SYNTAX);
            ne = nv.ne;
            vs = nv.vs;
            id = hdr_id(ln, (size_t)(ne - ln));
        }
        if (id == SIP_HDR_OTHER && !all_tok(ln, ne))
            return fail_at(msg, n, -EBADMSG, SIP_ERR_HEADER_SYNTAX);
        /* The line ends in CR or LF at vend, so neither scan needs another bound (inside a line
         * only SP and HT are <= ' '). Most values start after one space. */
        vs += *vs == ' ';
        if (__builtin_expect((unsigned char)*vs <= ' ', 0))
            while (is_wsp(*vs))
                vs++;
        if (vs < vend)
            while ((unsigned char)vend[-1] <= ' ')
                vend--;
        struct sip_header *h = &hdrs[n++];
        h->name = slice_make(ln, (size_t)(ne - ln));
        h->value = slice_make(vs, (size_t)(vend - vs));
        h->id = (uint8_t)id;
        /* first[SIP_HDR_OTHER] takes the unknown headers' writes and is cleared after. */
        if (msg->first[id] == 0)
            msg->first[id] = (uint16_t)n;
    }
    msg->first[SIP_HDR_OTHER] = 0;
    msg->n_headers = n;
    *lep = le;
    return 0;
}

__attribute__((noinline)) static int parse_headers(struct lines *it, struct lines_pos *atp,
                                                   const char **lep, struct sip_msg *msg,
                                                   struct sip_header *hdrs, size_t max_hdrs)
{
    return parse_headers_with(it, atp, lep, msg, hdrs, max_hdrs, chunk_masks);
}

/* The tolerant parse's: chunks through it->chunk (chunk_lf_tolerant). */
__attribute__((noinline, cold)) static int
parse_headers_tolerant(struct lines *it, struct lines_pos *atp, const char **lep,
                       struct sip_msg *msg, struct sip_header *hdrs, size_t max_hdrs)
{
    return parse_headers_with(it, atp, lep, msg, hdrs, max_hdrs, NULL);
}

#ifdef SIP_AVX2
__attribute__((noinline, target("avx2"))) static int
parse_headers_avx2(struct lines *it, struct lines_pos *atp, const char **lep, struct sip_msg *msg,
                   struct sip_header *hdrs, size_t max_hdrs)
{
    return parse_headers_with(it, atp, lep, msg, hdrs, max_hdrs, chunk_masks_avx2);
}
#endif

#ifdef SIP_AVX512
__attribute__((noinline, target("avx512bw"))) static int
parse_headers_avx512(struct lines *it, struct lines_pos *atp, const char **lep,
                     struct sip_msg *msg, struct sip_header *hdrs, size_t max_hdrs)
{
    return parse_headers_with(it, atp, lep, msg, hdrs, max_hdrs, chunk_masks_avx512);
}
#endif

/* The widest variant the CPU has, chosen on the first call: an indirect call per message and
 * per start line chunk instead of testing the CPU's features on every message and every chunk.
 * Threads that race to choose it store the same values. */
static void variant_best(struct lines *it)
{
    static chunk_fn best_chunk;
    static headers_fn best_headers;
    chunk_fn c = __atomic_load_n(&best_chunk, __ATOMIC_ACQUIRE);

    if (!c) {
        headers_fn h = parse_headers;
        c = chunk_lf;
#ifdef SIP_AVX2
        if (__builtin_cpu_supports("avx2")) {
            c = chunk_lf_avx2;
            h = parse_headers_avx2;
        }
#endif
#ifdef SIP_AVX512
        if (__builtin_cpu_supports("avx512bw")) {
            c = chunk_lf_avx512;
            h = parse_headers_avx512;
        }
#endif
        __atomic_store_n(&best_headers, h, __ATOMIC_RELAXED);
        __atomic_store_n(&best_chunk, c, __ATOMIC_RELEASE);
    }
    it->chunk = c;
    it->headers = __atomic_load_n(&best_headers, __ATOMIC_RELAXED);
}

static bool is_version(const char *p, size_t n)
{
    return n == 7 && eq_ci(p, "sip/2.0", 7);
}

static bool looks_like_version(const char *p, size_t n)
{
    return n >= 4 && eq_ci(p, "sip/", 4);
}

/* Request-Line = Method SP Request-URI SP SIP-Version; Status-Line = SIP-Version SP Status-Code SP
 * Reason-Phrase (RFC 3261 §7.1, §7.2). The SIP-Version is case-insensitive. Trailing whitespace
 * is tolerated. The line holds no control bytes but HT. */
static int parse_start_line(struct sip_msg *msg, const char *p, const char *eol, struct span rd)
{
    while (eol > p && is_wsp(eol[-1]))
        eol--;
    size_t n = (size_t)(eol - p);

    if (looks_like_version(p, n)) {
        /* "SIP/2.0 " almost always: the space is then where the version ends. */
        const char *sp = n > 7 && p[7] == ' ' ? p + 7 : memchr(p, ' ', n);
        if (!is_version(p, sp ? (size_t)(sp - p) : n))
            return fail(msg, -EBADMSG, SIP_ERR_VERSION);
        if (!sp)
            return fail(msg, -EBADMSG, SIP_ERR_STATUS_CODE);
        const char *c = sp + 1;
        if (eol - c < 3 || (eol - c > 3 && c[3] != ' '))
            return fail(msg, -EBADMSG, SIP_ERR_STATUS_CODE);
        unsigned d0 = (unsigned char)c[0] - (unsigned)'0', d1 = (unsigned char)c[1] - (unsigned)'0',
                 d2 = (unsigned char)c[2] - (unsigned)'0';
        if (d0 < 1 || d0 > 6 || d1 > 9 || d2 > 9)
            return fail(msg, -EBADMSG, SIP_ERR_STATUS_CODE);
        msg->status = (uint16_t)(d0 * 100 + d1 * 10 + d2);
        if (eol - c > 3)
            msg->reason = slice_make(c + 4, (size_t)(eol - c) - 4);
        else
            msg->reason = slice_make(eol, 0);
        return 0;
    }

    /* The method runs to the first space (the line holds no control byte but HT); a known
     * method is a token, another one is checked. */
    const char *q = scan(p, eol, rd, CLS_SPACE, 0, 0, 0, 0);
    if (q == p || q == eol || *q != ' ')
        return fail(msg, -EBADMSG, SIP_ERR_START_LINE);
    struct slice method = slice_make(p, (size_t)(q - p));
    enum sip_method id = sip_method_id(method);
    if (id == SIP_METHOD_OTHER && !all_tok(p, q))
        return fail(msg, -EBADMSG, SIP_ERR_START_LINE);
    const char *u = q + 1;
    const char *sp = scan(u, eol, rd, CLS_NONE, ' ', 0, 0, 0);
    if (sp == eol || sp == u)
        return fail(msg, -EBADMSG, SIP_ERR_START_LINE);
    const char *v = sp + 1;
    if (!is_version(v, (size_t)(eol - v)))
        return fail(msg, -EBADMSG,
                    looks_like_version(v, (size_t)(eol - v)) ? SIP_ERR_VERSION
                                                             : SIP_ERR_START_LINE);
    msg->is_request = 1;
    msg->method_name = method;
    msg->ruri = slice_make(u, (size_t)(sp - u));
    msg->method = (uint8_t)id;
    return 0;
}

/* CSeq = 1*DIGIT LWS Method (RFC 3261 §20.16). */
static int parse_cseq(struct sip_msg *msg, struct slice v, struct span rd)
{
    const char *p = v.p, *e = v.p + v.len;
    size_t n;
    uint64_t num;

    if (v.len > 1 && is_digit(p[0]) && is_lws(p[1])) { /* "1 INVITE", most often */
        num = (uint64_t)(p[0] - '0');
        p++;
    } else if (num = digits_at(p, e, rd, &n), n < 8) {
        p += n;
    } else { /* eight digits or more, or near the end of the buffer: with an overflow test */
        while (p < e && is_digit(*p))
            p++;
        for (const char *d = v.p; d < p; d++) {
            num = num * 10 + (unsigned)(*d - '0');
            if (num > UINT32_MAX)
                return -EBADMSG;
        }
    }
    if (p == v.p || p == e || !is_lws(*p))
        return -EBADMSG;
    p = skip_lws_p(p, e);
    /* The value is trimmed, so the method runs to its end; a known method is a token. */
    struct slice m = slice_make(p, (size_t)(e - p));
    enum sip_method id = sip_method_id(m);
    if (id == SIP_METHOD_OTHER && (m.len == 0 || !all_tok(p, e)))
        return -EBADMSG;
    msg->cseq = (uint32_t)num;
    msg->cseq_method_name = m;
    msg->cseq_method = (uint8_t)id;
    return 0;
}

/* via-parm = sent-protocol LWS sent-by *( SEMI via-params ), sent-protocol = "SIP" SLASH "2.0"
 * SLASH transport, where SLASH and COLON allow whitespace around them (RFC 3261 §20.42, §25.1).
 * Reads the first element of the first Via. Fills what it can: a Via it cannot read leaves the
 * slices empty; that is not a parse error. */
static void parse_via(struct sip_msg *msg, struct slice value, struct span rd)
{
    const char *p = value.p, *e = value.p + value.len;

    while (p < e && (is_lws(*p) || *p == ',')) /* empty list elements */
        p++;
    if (e - p >= 8 && eq_ci(p, "sip/2.0/", 8)) {
        p += 8;
    } else {
        for (int part = 0; part < 2; part++) {
            while (p < e && is_tok(*p))
                p++;
            p = skip_lws_p(p, e);
            if (p == e || *p != '/')
                return;
            p = skip_lws_p(p + 1, e);
        }
    }
    const char *ts = p;
    while (p < e && is_tok(*p))
        p++;
    if (p == ts || p == e || !is_lws(*p))
        return;
    msg->via_transport = slice_make(ts, (size_t)(p - ts));
    p = skip_lws_p(p, e);
    const char *hs = p;
    if (p < e && *p == '[') {
        p = scan(p, e, rd, CLS_NONE, ']', 0, 0, 0);
        if (p == e)
            return;
        p++;
    } else {
        p = scan(p, e, rd, CLS_SPACE, ':', ';', ',', 0);
    }
    if (p == hs)
        return;
    const char *he = p;
    p = skip_lws_p(p, e);
    if (p < e && *p == ':') {
        p = skip_lws_p(p + 1, e);
        const char *ps = p;
        size_t n;
        (void)digits_at(p, e, rd, &n);
        if (n < 8)
            p += n;
        else
            while (p < e && is_digit(*p))
                p++;
        if (p > ps)
            he = p;
    }
    msg->via_sent_by = slice_make(hs, (size_t)(he - hs));
    /* Most Vias put the branch first: try that before the general search. */
    if (e - he > 8 && eq_ci(he, ";branch=", 8))
        msg->via_branch =
            slice_make(he + 8, (size_t)(scan(he + 8, e, rd, CLS_SPACE, ';', ',', 0, 0) - (he + 8)));
    else
        param_find(he, e, rd, "branch", 6, &msg->via_branch);
}

/* Whether lt, a '<', is the first '<' of [p, lt] outside quoted strings and before any ';'
 * outside them (RFC 3261 §25.1: a display name is tokens or a quoted string, which may hold '<').
 * Otherwise lt is among the parameters of a name-addr or addr-spec, or in a second value. An
 * unterminated quoted string runs to lt, and a ',' does not stop the search: their URI is still
 * their <...> (RFC 4475 quotbal, baddn's unquoted "Bell, Alexander"). Most display names are one
 * short token run or quoted string. */
static ALWAYS_INLINE bool addr_is_first_laquot(const char *p, const char *lt, struct span rd)
{
    /* Most display names are one quoted string without escapes, or tokens, or none: one scan. */
    if (p < lt && *p == '"') {
        const char *q = scan(p + 1, lt, rd, CLS_NONE, '"', '\\', 0, 0);
        if (q == lt)
            return true; /* unterminated */
        if (*q == '"' && skip_lws_p(q + 1, lt) == lt)
            return true;
    }
    for (;;) {
        p = scan(p, lt, rd, CLS_NONE, '<', '"', ';', 0);
        if (p == lt)
            return true;
        if (*p != '"')
            return false;
        p = skip_quoted(p, lt, rd);
        if (!p)
            return true;
    }
}

/* From and To. Most are name-addrs: the URI is then the last <...> of the value, found from the
 * end in two short backward scans, and taken when nothing before it but a display name
 * (addr_is_first_laquot): the URI of RFC 3261 §25.1 is inside the first '<' outside quotes, and
 * the tag a header parameter after its '>'. Anything else (an addr-spec, a quote after the last
 * '>', brackets among the parameters or in a second value, both outside the grammar) takes the
 * general path, which reads the first <...> outside quotes: a hostile parameter can then neither
 * replace the URI nor hide the tag that keys the call. */
static ALWAYS_INLINE void parse_addr(struct slice value, struct span rd, struct slice *uri,
                                     struct slice *tag)
{
    const char *params, *e = value.p + value.len;
    const char *gt = rscan(value.p, e, rd, '>', '<', '"');
    const char *lt = gt && *gt == '>' ? rscan(value.p, gt, rd, '<', '>', '"') : NULL;

    if (lt && *lt == '<' && addr_is_first_laquot(value.p, lt, rd)) {
        *uri = slice_make(lt + 1, (size_t)(gt - lt - 1));
        /* Spaces inside <...> are rare: trim only when an end is one. */
        if (uri->len && ((unsigned char)uri->p[0] <= ' ' ||
                         (unsigned char)uri->p[uri->len - 1] <= ' '))
            *uri = slice_trim(*uri);
        params = gt + 1;
    } else if (!addr_split(value.p, e, rd, uri, &params)) {
        *uri = slice_make(NULL, 0);
        return;
    }
    /* Most often the tag is the first parameter: try that before the general search. A value
     * that ends with its URI has no parameters at all. */
    if (e - params > 5 && params[0] == ';' && eq_ci(params + 1, "tag=", 4))
        *tag = slice_make(params + 5, (size_t)(scan(params + 5, e, rd, CLS_SPACE, ';', ',', 0, 0) -
                                               (params + 5)));
    else if (params < e)
        param_find(params, e, rd, "tag", 3, tag);
}

/* Content-Length = 1*DIGIT; anything else (or a value past INT32_MAX) is unparsable. */
static int32_t parse_content_length(struct slice v, struct span rd)
{
    uint64_t n = 0;
    size_t k;

    if (v.len == 0)
        return -1;
    if (v.len == 1) /* "0", most often */
        return is_digit(v.p[0]) ? v.p[0] - '0' : -1;
    uint32_t value = digits_at(v.p, v.p + v.len, rd, &k);
    if (k < 8)
        return k == v.len ? (int32_t)value : -1;
    for (size_t i = 0; i < v.len; i++) {
        unsigned d = (unsigned char)v.p[i] - (unsigned)'0';
        if (d > 9)
            return -1;
        n = n * 10 + d;
        if (n > INT32_MAX)
            return -1;
    }
    return (int32_t)n;
}

/* parse_with's how: the parse mode, and this bit for the tolerant parse. */
#define PARSE_TOLERANT 0x100u

/* The parse; with PARSE_TOLERANT in how, a control byte escaped as a quoted-pair in a header
 * line is no error. A first parse without it hands the message over to a second with it when a
 * header line failed on such a byte; only then is the start line's end looked for ahead of the
 * lines. One body for both, the flag a run-time value (two copies, one per value, cost the
 * inlining of its helpers: 30 instructions more per message), with six arguments (sip_parse's
 * call is then a jump). */
__attribute__((noinline)) static int parse_with(const char *buf, size_t len, unsigned how,
                                                struct sip_msg *msg, struct sip_header *hdrs,
                                                size_t max_hdrs)
{
    enum sip_parse_mode mode = (enum sip_parse_mode)(how & 0xff);
    bool tolerant = how & PARSE_TOLERANT;
    int rc;

    zero_msg(msg);
    msg->headers = hdrs;
    msg->content_length = -1;
    if (len == 0) /* buf may then be NULL */
        return -EAGAIN;
    /* The return value is an int; no real input comes near this. */
    if (len > INT32_MAX)
        return fail(msg, -E2BIG, SIP_ERR_TOO_LONG);
    const char *p = buf, *bend = buf + len;
    struct span rd = {buf, bend};
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
    const char *s = p;
    /* A header block still open after SIP_MAX_MSG bytes makes a longer message: no need to wait
     * for more. */
    bool capped = (size_t)(bend - s) >= SIP_MAX_MSG;
    const char *end = capped ? s + SIP_MAX_MSG : bend, *le, *ve;
    struct lines it = {.s = s,
                       .end = end,
                       .first_bad = NULL,
                       .rd = rd,
                       .wide_end = len >= 16 ? (uintptr_t)bend - 16 : 0,
                       .capped = capped};
    if (end == s)
        return need_more(&it, msg, true);
    struct lines_pos at = {.base = s};
    variant_best(&it);
    if (__builtin_expect(tolerant, 0)) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        it.start_lf = nl ? nl : end;
        it.chunk = chunk_lf_tolerant;
        it.headers = parse_headers_tolerant;
    }
    at.lf = chunk_lf_any(&it, &at);

    /* Start line. */
    if (!lines_next(&it, &at, &le))
        return need_more(&it, msg, true);
    if (!line_body_end(s, le, &ve, &msg->anomalies))
        return fail(msg, -EBADMSG, SIP_ERR_START_LINE);
    rc = parse_start_line(msg, s, ve, rd);
    if (rc)
        return rc;

    rc = it.headers(&it, &at, &le, msg, hdrs, max_hdrs);
    if (rc) {
        /* le is still the start line's LF. */
        if (!tolerant && it.first_bad && msg->error == SIP_ERR_HEADER_SYNTAX &&
            escaped_ctl(s, le, it.first_bad))
            return parse_with(buf, len, (unsigned)mode | PARSE_TOLERANT, msg, hdrs, max_hdrs);
        return rc;
    }
    p = le + 1;
    size_t hdr_len = (size_t)(p - s);

    /* Values of the first header of each kind. */
    if (msg->first[SIP_HDR_CALL_ID])
        msg->call_id = hdrs[msg->first[SIP_HDR_CALL_ID] - 1].value;
    /* An empty Call-ID cannot key anything: it counts as missing. */
    if (msg->call_id.len == 0 || !msg->first[SIP_HDR_CSEQ] || !msg->first[SIP_HDR_FROM] ||
        !msg->first[SIP_HDR_TO] || !msg->first[SIP_HDR_VIA])
        return fail(msg, -EBADMSG, SIP_ERR_MISSING_HEADER);
    if (parse_cseq(msg, hdrs[msg->first[SIP_HDR_CSEQ] - 1].value, rd))
        return fail(msg, -EBADMSG, SIP_ERR_CSEQ);
    parse_addr(hdrs[msg->first[SIP_HDR_FROM] - 1].value, rd, &msg->from_uri, &msg->from_tag);
    parse_addr(hdrs[msg->first[SIP_HDR_TO] - 1].value, rd, &msg->to_uri, &msg->to_tag);
    parse_via(msg, hdrs[msg->first[SIP_HDR_VIA] - 1].value, rd);

    /* Body framing. */
    size_t avail = (size_t)(bend - p), body_len;
    if (msg->first[SIP_HDR_CONTENT_LENGTH])
        msg->content_length =
            parse_content_length(hdrs[msg->first[SIP_HDR_CONTENT_LENGTH] - 1].value, rd);
    if (mode == SIP_PARSE_STREAM) {
        if (msg->content_length < 0)
            return fail(msg, -EBADMSG, SIP_ERR_CONTENT_LENGTH);
        body_len = (size_t)msg->content_length;
        if (hdr_len + body_len > SIP_MAX_MSG)
            return fail(msg, -E2BIG, SIP_ERR_TOO_LONG);
        if (body_len > avail) {
            msg->body = slice_make(p, 0); /* where it will begin (sip_parse's contract) */
            return -EAGAIN;
        }
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
    msg->raw = slice_make(s, hdr_len + body_len);
    if (mode == SIP_PARSE_STREAM)
        return (int)((size_t)(s - buf) + hdr_len + body_len);
    return (int)len;
}

int sip_parse(const char *buf, size_t len, enum sip_parse_mode mode, struct sip_msg *msg,
              struct sip_header *hdrs, size_t max_hdrs)
{
    return parse_with(buf, len, (unsigned)mode, msg, hdrs, max_hdrs);
}
