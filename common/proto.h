/*
 * proto.h: the wire protocol between the collector and its clients.
 *
 * The FastCGI workers and tt-ctl talk to the collector over a UNIX stream
 * socket (DIR/run/collector.sock).  Every message is a frame: a fixed
 * struct proto_hdr, then len bytes of payload.  A client sends a request
 * frame and waits for the reply frame carrying the same tag; one
 * connection carries one request at a time.
 *
 *   PROTO_INGEST  -> PROTO_ACK        events (struct proto_ingest + records);
 *                                     the ACK comes only after COMMIT
 *   PROTO_CMD     -> PROTO_CMD_REPLY  a JSON command (configuration writes)
 *   PROTO_TOUCH   (no reply)          key ids seen in use, for last_used
 *
 * The client helpers below block with a timeout and return 0 or -errno
 * (-ETIMEDOUT, -ECONNRESET on EOF, -EPROTO on a malformed frame).  They are
 * thread-safe as long as each thread uses its own descriptor.
 */
#ifndef TT_PROTO_H
#define TT_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_MAX_PAYLOAD (16u << 20)

enum proto_type {
    PROTO_INGEST = 1,
    PROTO_ACK = 2,
    PROTO_CMD = 3,
    PROTO_CMD_REPLY = 4,
    PROTO_TOUCH = 5,
};

/* Frame header; all fields in host byte order (same machine). */
struct proto_hdr {
    uint32_t len;    /* payload bytes after the header */
    uint16_t type;   /* enum proto_type */
    uint16_t flags;  /* reserved, 0 */
    uint64_t tag;    /* chosen by the client, echoed in the reply */
    int64_t sent_ms; /* client's wall clock when sent (queue age) */
};

/* Payload head of PROTO_INGEST; struct ev_rec records follow. */
struct proto_ingest {
    uint32_t count; /* records that follow */
    uint32_t reserved;
    char workspace[72];   /* NUL-terminated, from the API key */
    char request_id[136]; /* NUL-terminated, for the logs */
};

/* Outcomes in struct proto_ack.status. */
enum proto_status {
    PROTO_OK = 0,   /* committed */
    PROTO_BUSY = 1, /* queue full or too old: retry after retry_after_s */
    PROTO_FAIL = 2, /* the commit failed: message says why */
};

/* Payload of PROTO_ACK. */
struct proto_ack {
    int32_t status;         /* enum proto_status */
    uint32_t fresh;         /* events stored now */
    uint32_t dup;           /* events whose id was already stored */
    uint32_t retry_after_s; /* for PROTO_BUSY */
    char message[192];      /* for PROTO_FAIL */
};

/* Payload head of PROTO_CMD_REPLY; the JSON answer follows. */
struct proto_reply {
    int32_t http_status; /* status to answer with */
    uint32_t reserved;
};

/* Connect to the collector socket at path.  Returns a descriptor or
 * -errno. */
int proto_connect(const char *path);

/* Send one frame made of two payload parts (either may be empty). */
int proto_send(int fd, uint16_t type, uint64_t tag, const void *a, size_t alen,
               const void *b, size_t blen, int timeout_ms);

/* Receive one frame; *payload is malloc'ed (the caller frees it, even when
 * len is 0 it may be NULL).  Returns 0 or -errno. */
int proto_recv(int fd, struct proto_hdr *h, void **payload, int timeout_ms);

/* Send a JSON command and wait for the reply: *status gets the HTTP status
 * and *json the malloc'ed reply text.  Opens and closes its own connection.
 * Returns 0 or -errno. */
int proto_command(const char *path, const char *cmd, int timeout_ms,
                  int *status, char **json);

/* Wall clock in epoch milliseconds. */
int64_t proto_now_ms(void);

#endif
