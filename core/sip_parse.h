/* sip_parse: a zero-copy parser for one SIP message (RFC 3261 §7). It locates the start line and
 * every header, identifies the known ones (compact forms included) and extracts the few values
 * that tracking needs on every message. It never allocates, never writes to its input and never
 * reads past buf[len). It does not interpret SDP or validate URIs beyond what is extracted here.
 *
 * Malformed input, where RFC 4475 (SIP torture test messages; tests/fixtures/sip/rfc4475) lets a
 * parser reject or accept: a message is rejected only when a value tracking needs cannot be
 * read, and otherwise accepted with the values below, anomalies counted.
 *  - Rejected: a start line with other than one SP between its elements (lwsstart, lwsruri:
 *    start_line), a SIP-Version other than 2.0 (badvers: version), a status code that is not
 *    three digits (bigcode: status_code), a CSeq number over 32 bits (scalar02, scalarlg: cseq),
 *    a missing Call-ID, CSeq, From, To or Via (insuf: missing_header).
 *  - Accepted: whitespace ending the start line (trws); a Request-URI as written, not validated
 *    (ltgtruri's "<sip:...>", escruri's headers); a header repeated that should be single
 *    (multi01): the first of each is read; several Content-Lengths (mcl01): the first frames
 *    the body; a CSeq method other than the request's (mismatch01, mismatch02): both reported
 *    as written; header values outside their grammar (badinv01, quotbal, badaspec, baddn,
 *    regbadct, baddate): read as far as they go (an unterminated display name's URI is still
 *    its <...>, a Via without a branch has an empty one); other scalars (Max-Forwards, Expires,
 *    Retry-After) are not read. Content-Length framing of a datagram: see sip_parse_mode
 *    (clerr: body_truncated, ncl: bad_content_length, dblreq: trailing_data). */
#ifndef SIPSCOPE_SIP_PARSE_H
#define SIPSCOPE_SIP_PARSE_H

#include <stdint.h>

#include "slice.h"

/* Largest message accepted, start line to end of body (RFC 3261 §18.1.1 allows 64 KiB on TCP). */
#define SIP_MAX_MSG 65535
/* Headers stored per message; a message with more is rejected with -E2BIG (reason
 * SIP_ERR_TOO_MANY_HEADERS). Real traffic stays far below this, long proxy paths included. */
#define SIP_MAX_HEADERS 256

/* Methods of RFC 3261 and its extensions. The order is stable: it indexes tables elsewhere. */
enum sip_method {
    SIP_METHOD_OTHER = 0, /* any other token: a label value of "other" */
    SIP_METHOD_INVITE,
    SIP_METHOD_ACK,
    SIP_METHOD_BYE,
    SIP_METHOD_CANCEL,
    SIP_METHOD_REGISTER,
    SIP_METHOD_OPTIONS,
    SIP_METHOD_PRACK,
    SIP_METHOD_SUBSCRIBE,
    SIP_METHOD_NOTIFY,
    SIP_METHOD_PUBLISH,
    SIP_METHOD_INFO,
    SIP_METHOD_REFER,
    SIP_METHOD_MESSAGE,
    SIP_METHOD_UPDATE,
    SIP_METHOD_COUNT
};

/* Known headers. SIP_HDR_OTHER is every header not listed. The order is stable. */
enum sip_hdr {
    SIP_HDR_OTHER = 0,
    SIP_HDR_CALL_ID,          /* i */
    SIP_HDR_FROM,             /* f */
    SIP_HDR_TO,               /* t */
    SIP_HDR_VIA,              /* v */
    SIP_HDR_CSEQ,
    SIP_HDR_CONTACT,          /* m */
    SIP_HDR_CONTENT_LENGTH,   /* l */
    SIP_HDR_CONTENT_TYPE,     /* c */
    SIP_HDR_CONTENT_ENCODING, /* e */
    SIP_HDR_EXPIRES,
    SIP_HDR_SESSION_EXPIRES, /* x */
    SIP_HDR_MIN_SE,
    SIP_HDR_USER_AGENT,
    SIP_HDR_SERVER,
    SIP_HDR_RSEQ,
    SIP_HDR_RACK,
    SIP_HDR_MAX_FORWARDS,
    SIP_HDR_ROUTE,
    SIP_HDR_RECORD_ROUTE,
    SIP_HDR_SUPPORTED, /* k */
    SIP_HDR_REQUIRE,
    SIP_HDR_SUBJECT,      /* s */
    SIP_HDR_REFER_TO,     /* r */
    SIP_HDR_REFERRED_BY,  /* b */
    SIP_HDR_EVENT,        /* o */
    SIP_HDR_ALLOW_EVENTS, /* u */
    SIP_HDR_AUTHORIZATION,
    SIP_HDR_PROXY_AUTHORIZATION,
    SIP_HDR_WWW_AUTHENTICATE,
    SIP_HDR_PROXY_AUTHENTICATE,
    SIP_HDR_REASON,
    SIP_HDR_P_ASSERTED_IDENTITY,
    SIP_HDR_ALLOW,
    SIP_HDR_COUNT
};

/* Anomalies: accepted deviations, counted by the caller (sipscope_parse_errors_total{stage="sip"})
 * but not fatal. A bit set in sip_msg.anomalies. */
enum sip_anomaly {
    SIP_ANOM_BARE_LF = 1u << 0,         /* a line ended in LF without CR */
    SIP_ANOM_FOLDED = 1u << 1,          /* a header continued on a folded line (obsolete) */
    SIP_ANOM_BODY_TRUNCATED = 1u << 2,  /* datagram shorter than Content-Length */
    SIP_ANOM_TRAILING_DATA = 1u << 3,   /* datagram longer than Content-Length */
    SIP_ANOM_NO_CONTENT_LENGTH = 1u << 4, /* datagram without Content-Length: body to the end */
    SIP_ANOM_BAD_CONTENT_LENGTH = 1u << 5, /* unparsable Content-Length in a datagram: ignored */
    SIP_ANOM_LEADING_CRLF = 1u << 6,    /* empty lines before the start line (RFC 3261 §7.5) */
};

/* Why a message was rejected (sip_msg.error when the parser returns -EBADMSG or -E2BIG). */
enum sip_error {
    SIP_ERR_NONE = 0,
    SIP_ERR_START_LINE,       /* not a SIP request or status line (or a control byte in it) */
    SIP_ERR_VERSION,          /* SIP-Version other than SIP/2.0 */
    SIP_ERR_STATUS_CODE,      /* status code not three digits in 100..699 */
    SIP_ERR_HEADER_SYNTAX,    /* a header line without a colon, an empty or non-token name, or a
                               * control byte other than HT and the line break (NUL, lone CR)
                               * that is not escaped as a quoted-pair ("\" NUL: RFC 4475
                               * §3.1.1.2) */
    SIP_ERR_TOO_MANY_HEADERS, /* more than the caller's header array holds */
    SIP_ERR_TOO_LONG,         /* message over SIP_MAX_MSG */
    SIP_ERR_MISSING_HEADER,   /* Call-ID (or an empty one), CSeq, From, To or Via missing */
    SIP_ERR_CSEQ,             /* CSeq not "number method" */
    SIP_ERR_CONTENT_LENGTH,   /* stream mode: Content-Length missing or not a number */
    SIP_ERR_COUNT
};

struct sip_header {
    struct slice name;  /* as written, e.g. "v" or "VIA" */
    struct slice value; /* trimmed; a folded value spans its line breaks */
    uint8_t id;         /* enum sip_hdr */
};

/* One parsed message. Every slice points into the caller's buffer and lives as long as it. */
struct sip_msg {
    struct slice raw; /* the whole message: start line to end of body */
    uint8_t is_request;
    uint8_t method;      /* enum sip_method, requests only */
    uint8_t cseq_method; /* enum sip_method of the CSeq header */
    uint16_t status;     /* responses only: 100..699 */
    struct slice method_name, ruri, reason; /* method_name and ruri: requests; reason: responses */

    struct sip_header *headers; /* the caller's array, n_headers used, in message order */
    uint32_t n_headers;
    uint16_t first[SIP_HDR_COUNT]; /* index + 1 of the first header of each id, 0 when absent */

    /* Values every message carries (RFC 3261 §8.1.1), extracted during the parse. */
    struct slice call_id;
    /* uri: inside the first <...> outside quotes (RFC 3261 §25.1), else the addr-spec (empty if
     * unreadable); tag: the header parameter after it, empty if none */
    struct slice from_uri, from_tag;
    struct slice to_uri, to_tag;
    uint32_t cseq;
    struct slice cseq_method_name;
    struct slice via_branch;    /* top Via's branch parameter, empty if none */
    struct slice via_sent_by;   /* top Via's host[:port] */
    struct slice via_transport; /* top Via's transport token, e.g. "UDP" */

    int32_t content_length; /* -1 when absent or unparsable */
    struct slice body;      /* what follows the empty line, as framed (see sip_parse) */

    uint32_t anomalies; /* enum sip_anomaly bits */
    uint8_t error;      /* enum sip_error when the parse failed */
};

/* Parse modes. */
enum sip_parse_mode {
    /* One datagram holds one message: the body is Content-Length bytes, clamped to what is there
     * (SIP_ANOM_BODY_TRUNCATED); bytes past it are ignored (SIP_ANOM_TRAILING_DATA); without
     * Content-Length the body runs to the end (RFC 3261 §18.3). */
    SIP_PARSE_DATAGRAM = 0,
    /* A byte stream (TCP): Content-Length is mandatory and the whole body must be present;
     * otherwise -EAGAIN asks for more bytes. */
    SIP_PARSE_STREAM = 1,
};

/* Parses one message at the start of buf[0..len). Empty lines before the start line are skipped
 * (SIP_ANOM_LEADING_CRLF). hdrs[max_hdrs] is the caller's storage for header views.
 *
 * Returns the number of bytes the message occupies from buf (leading empty lines included, and in
 * datagram mode everything up to len), or:
 *   -EAGAIN  the header block (or, in stream mode, the body) is not complete within len; in
 *            stream mode with the header block complete, msg->content_length is set and
 *            msg->body is empty at the place the body begins (sip_frame waits for it whole);
 *   -EBADMSG not a well-formed SIP message; msg->error says why;
 *   -E2BIG   more than max_hdrs headers, or longer than SIP_MAX_MSG; msg->error says which.
 * On any return msg is fully written (slices of a failed parse may be empty). */
int sip_parse(const char *buf, size_t len, enum sip_parse_mode mode, struct sip_msg *msg,
              struct sip_header *hdrs, size_t max_hdrs);

/* Identifies a header name (full or compact form, any case, no surrounding whitespace).
 * Returns an enum sip_hdr, SIP_HDR_OTHER when unknown. */
enum sip_hdr sip_header_id(struct slice name);

/* Canonical name of a known header ("Call-ID"), or NULL for SIP_HDR_OTHER. */
const char *sip_header_name(enum sip_hdr id);

/* Identifies a method token (case-sensitive, RFC 3261 §7.1). Returns SIP_METHOD_OTHER if unknown. */
enum sip_method sip_method_id(struct slice token);

/* Upper-case name of a method, "other" for SIP_METHOD_OTHER. */
const char *sip_method_name(enum sip_method m);

/* Short snake_case name of an error or of one anomaly bit, for metric labels. */
const char *sip_error_name(enum sip_error e);
const char *sip_anomaly_name(enum sip_anomaly bit);

/* Value of the first header with this id, or an empty slice when absent. */
struct slice sip_msg_header(const struct sip_msg *msg, enum sip_hdr id);

/* Iterates the elements of a comma-separated header value (Via, Contact, Route...), honouring
 * quoted strings and <...>. Start with *pos = 0. Returns true and sets *item (trimmed) for each
 * element, false at the end. Empty elements are skipped. */
bool sip_list_next(struct slice value, size_t *pos, struct slice *item);

/* Finds parameter `name` (case-insensitive) among the ;-parameters of a header value or list
 * element, outside <...> and quotes (so a URI parameter inside <...> is not a header parameter).
 * Returns true and sets *val (empty for a flag parameter; a quoted value keeps its quotes), false
 * when absent. */
bool sip_header_param(struct slice value, struct slice name, struct slice *val);

/* The URI of a name-addr / addr-spec (From, To, Contact element, Route): inside <...> when
 * present, else up to the first ';' or whitespace. Returns an empty slice on garbage. */
struct slice sip_addr_uri(struct slice value);

#endif
