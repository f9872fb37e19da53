/* call_cdr: what a call's line in the events file says about its signalling beyond the
 * tracker's own times and outcome: the first INVITE's addresses, ports, transport and
 * User-Agent, the answering side's Server, the codec the 2xx's SDP put first, and the Q.850
 * cause of the CANCEL or BYE. The call tracker (sip_dialog) takes them from the messages as it
 * sees them, into a fixed record in the call's table entry: no allocation, and no Lua. The
 * events writer formats them (events.h says where on the line); post-dial delay and who hung
 * up are not kept here, the tracker's own times and flags give them.
 *
 * These were a bundled Lua rule's fields (cdr_enrich) until the engine took them over: the rule
 * cost four fifths of an events line's time (BENCHMARK.md), for facts every CDR wants. Rules
 * still add fields of their own (d.cdr); a rule may not set one of the names listed here while
 * the engine writes it (--events-fields). */
#ifndef SIPSCOPE_CALL_CDR_H
#define SIPSCOPE_CALL_CDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sip_parse.h"
#include "slice.h"

struct packet;

/* The fields, in the order they are written. A bit per field in a mask (1u << field). */
enum call_cdr_field {
    CALL_CDR_SRC_IP = 0, /* the first INVITE's source address, "192.0.2.1" or RFC 5952 IPv6 */
    CALL_CDR_SRC_PORT,   /* its source port */
    CALL_CDR_DST_IP,     /* its destination address */
    CALL_CDR_DST_PORT,   /* its destination port */
    CALL_CDR_TRANSPORT,  /* "udp", "tcp" or "ws" */
    CALL_CDR_USER_AGENT, /* the first INVITE's User-Agent header */
    CALL_CDR_SERVER,     /* the 2xx's Server header, its User-Agent when it has none; for a call
                          * not answered, those of the final response that ended it */
    CALL_CDR_PDD,        /* post-dial delay: first INVITE to the first 180 or 183, in seconds
                          * rounded to the millisecond */
    CALL_CDR_CODEC,      /* first codec of the first audio stream of the 2xx's SDP ("PCMA") */
    CALL_CDR_HANGUP,     /* "caller" or "callee": who sent the BYE that ended the call */
    CALL_CDR_Q850,       /* cause number of "Reason: Q.850;cause=N" of the ending BYE, or of a
                          * CANCEL before the call ended */
    CALL_CDR_FIELD_COUNT
};

#define CALL_CDR_ALL ((1u << CALL_CDR_FIELD_COUNT) - 1)
#define CALL_CDR_TEXT_MAX 128 /* User-Agent and Server are cut to this (at a UTF-8 boundary) */
#define CALL_CDR_CODEC_MAX 32 /* an encoding name longer than this is left out */

enum call_cdr_transport {
    CALL_CDR_TRANSPORT_NONE = 0,
    CALL_CDR_TRANSPORT_UDP,
    CALL_CDR_TRANSPORT_TCP,
    CALL_CDR_TRANSPORT_WS,
};

/* One call's record. Lengths of 0 mean absent; ip_version 0: no addresses (no packet). Every
 * field but the three texts comes before codec: call_cdr_start resets up to there, and the
 * texts are read only up to their lengths (the call's entry is not zeroed past its text,
 * sip_dialog_init). */
struct call_cdr {
    uint8_t src[16], dst[16]; /* as struct packet keeps them: IPv4 in the first 4 bytes */
    uint16_t sport, dport;
    uint8_t ip_version; /* 4 or 6 */
    uint8_t transport;  /* enum call_cdr_transport */
    uint16_t q850;      /* the cause + 1; 0 for none */
    uint8_t user_agent_len, server_len, codec_len;
    char codec[CALL_CDR_CODEC_MAX];
    char user_agent[CALL_CDR_TEXT_MAX];
    char server[CALL_CDR_TEXT_MAX];
};

/* The field's name on the line ("src_ip"). */
const char *call_cdr_field_name(enum call_cdr_field f);

/* Parses a --events-fields value: "all", "none", or names separated by commas. Returns 0 with
 * *mask set, or -EINVAL with the reason in err[errlen]. */
int call_cdr_parse_fields(const char *list, uint32_t *mask, char *err, size_t errlen);

/* The field named name[len] among those in mask, or -1. */
int call_cdr_field_in(uint32_t mask, const char *name, size_t len);

/* A call started with invite, which came in pkt (NULL: no addresses): resets the record. */
void call_cdr_start(struct call_cdr *c, const struct sip_msg *invite, const struct packet *pkt);

/* The response that answered the call (2xx: Server and codec) or ended it unanswered (a final
 * failure: Server). A response without Server or User-Agent clears the field. */
void call_cdr_answer(struct call_cdr *c, const struct sip_msg *resp);
void call_cdr_final(struct call_cdr *c, const struct sip_msg *resp);

/* A CANCEL of the call before it was answered or ended, or the BYE that ended it: its Q.850 cause,
 * or none when it carries none (a later message's says what the call ended with). The answer
 * drops a CANCEL's cause: that CANCEL crossed the 2xx and ended nothing. */
void call_cdr_reason(struct call_cdr *c, const struct sip_msg *req);

/* The Q.850 cause among a message's Reason headers (RFC 3326): the first element whose protocol
 * is Q.850 with a cause of one to three digits. Returns true with *cause set. */
bool call_cdr_q850_of(const struct sip_msg *msg, unsigned *cause);

/* The first codec of the first audio stream ("m=audio") of an SDP body: the encoding name the
 * stream's rtpmap gives its first payload type, else the static name of RFC 3551 ("PCMU" for
 * 0), else the payload type's number. Writes it into out and returns its length; 0 when the
 * body has no audio stream with a payload type, or the name does not fit. */
size_t call_cdr_sdp_codec(struct slice body, char out[CALL_CDR_CODEC_MAX]);

#endif
