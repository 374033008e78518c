/*
 * wsclient.c: tt-ws, a WebSocket client for end-to-end tests and for the
 * relay's fan-out benchmark.  Loopback only: the URL's host must be
 * 127.0.0.1, ::1 or localhost.  Exit codes: 0 done, 1 usage, 2 the
 * connection failed (print mode) or none could be opened (stats mode).
 *
 * Print mode (one connection, the default) writes every text message it
 * reads to stdout as "<recv_unix_ms> <text>", one line each, flushed per
 * line; a newline inside a JSON string becomes the two characters \n, one
 * outside a string a space, so a JSON message stays one line of valid JSON.
 * Binary messages are skipped.  The server closing the connection prints
 * "CLOSE <code> <reason>" (1005 for a close frame without a code, 1006 for
 * a connection lost without one); a failed connection or handshake prints
 * "ERROR <text>" ("ERROR HTTP 401: ..." when the server answered) and exits
 * 2.  The run ends after --duration seconds, after --messages messages
 * (exactly that many lines), or when the connection closes.  "connected"
 * goes to stderr once the handshake is done.
 *
 * Stats mode (--connections N > 1, or --stats) opens N connections at
 * --ramp per second and prints nothing per message: for each message that
 * is a JSON object with a numeric "seq" it counts, per seq, the connections
 * that received it, and for each with a numeric "sent_ms" it puts recv_ms -
 * sent_ms into a histogram of 1 ms buckets up to WS_HIST_MS, except for a
 * "type":"snapshot" (a stream's first message, as old as the second it
 * shows).  "delay_ms" holds the frames of seconds that began after every
 * connection had opened (or failed), "ramp_delay_ms" the earlier ones,
 * sent while connections were still being opened.  At the end it prints
 * one JSON line, e.g.
 *
 *   {"connections":2,"connections_ok":2,"connections_failed":0,
 *    "closed_by_server":0,"close_codes":{},"messages":6,"snapshots":2,
 *    "duplicates":0,"seqs":3,"complete_seqs":3,
 *    "frames":{"41":2,"42":2,"43":2},
 *    "delay_ms":{"count":4,"min":1.2,"p50":3,"p90":4,"p99":4,"max":4.6},
 *    "ramp_delay_ms":{"count":0,"min":null,...},
 *    "elapsed_s":3.0}
 *
 * (one line in reality; the delays are null without any).  Percentiles are
 * whole milliseconds rounded down.  A seq is complete unless a connection
 * that owed it missed it: a connection owes a seq if it was established
 * before the seq's sent_ms (or its first arrival, without sent_ms) and was
 * still open when its last copy arrived.  When the run
 * stops, seqs not seen yet no longer count (nor do their messages) and the
 * seqs in flight get WS_GRACE_MS to arrive everywhere before the connections
 * close.  With --messages M each connection closes itself after M messages.
 *
 * --slow stops reading each connection right after its handshake, so that
 * the server's queue for it grows, and never writes (no pings, no pongs).
 * At the end of the run it reads again for WS_DRAIN_MS to find the server's
 * close frame; in print mode the messages read then are printed too.  A
 * server that has closed behind a full window cannot be seen without
 * reading, so give --slow a --duration; one whose socket is gone altogether
 * (seen through keepalive probes and the TCP state) is read at once.
 *
 * Everything runs on one thread inside one lws context; the only state
 * outside struct ws_app is the signal flag.
 */
#include <ev.h>
#include <libwebsockets.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "cli.h"

#define WS_MAX_HEADERS 16         /* --header options accepted */
#define WS_MSG_MAX     (16 << 20) /* longest message reassembled */
#define WS_BUF_KEEP    (64 << 10) /* a bigger message buffer is freed */
#define WS_HIST_MS     10000      /* delay histogram: 1 ms buckets to 10 s */
#define WS_MAX_SEQS    65536      /* distinct seqs tracked */
#define WS_MAX_CODES   32         /* distinct close codes counted */
#define WS_GRACE_MS    1000       /* stats: in-flight seqs may still land */
#define WS_DRAIN_MS    1000       /* --slow: reading again for the close */
#define WS_CLOSE_MS    1000       /* our close handshakes may take this */
#define WS_TICK_US     100000     /* housekeeping period */
#define WS_FD_SPARE    256        /* fds beyond the connections */

/* What ws_scan() found in a message. */
#define WS_F_SEQ      1 /* "seq" */
#define WS_F_SENT     2 /* "sent_ms" */
#define WS_F_TYPE     4 /* "type" */
#define WS_F_SNAPSHOT 8 /* ... and it is "snapshot" */
#define WS_F_ALL      (WS_F_SEQ | WS_F_SENT | WS_F_TYPE)

/* Set by SIGINT/SIGTERM; the service loop wakes at least every tick. */
static volatile sig_atomic_t ws_signalled;

/* The command line, fixed once ws_parse_args() has run. */
struct ws_cfg {
    const char *url;         /* --url as given */
    const char *header_last; /* the last --header (all are in headers) */
    const char *headers[WS_MAX_HEADERS]; /* "Name: value", validated */
    int nheaders;
    double connections; /* N */
    double duration;    /* seconds; 0 = until closed */
    double messages;    /* per connection; 0 = unbounded */
    double ramp;        /* connections opened per second */
    int slow, stats;    /* --slow, --stats */
    char host[64];      /* address to connect to, without brackets */
    char host_hdr[80];  /* the Host header: host[:port] */
    int port;
    const char *path; /* path and query, from the URL */
};

/* What a connection is doing. */
enum ws_state { WS_IDLE, WS_CONNECTING, WS_OPEN, WS_FAILED, WS_ENDED };

/* One connection; all of it lives in ws_app.conns. */
struct ws_conn {
    struct lws *wsi;
    char *buf;              /* the message being reassembled, NUL-ended */
    size_t len, cap;        /* bytes in buf, bytes allocated */
    int64_t est_us, end_us; /* when established, when ended (0: not yet) */
    uint64_t *seen;         /* bit i: received the seq with index i */
    uint32_t nseen;         /* 64-bit words in seen */
    uint64_t msgs;          /* messages received */
    enum ws_state state;
    int close_code;          /* from the server's close frame, or 0 */
    unsigned binary : 1;     /* the message being read is binary */
    unsigned too_big : 1;    /* it is longer than WS_MSG_MAX: dropped */
    unsigned by_us : 1;      /* we are closing it (or killed it) */
    unsigned want_close : 1; /* send a close frame when writable */
    unsigned reading : 1;    /* --slow: reading again */
};

/* One seq seen in stats mode. */
struct ws_seq {
    int64_t seq;
    uint32_t count;  /* connections that received it */
    double ref_ms;   /* its sent_ms, or the first arrival without one */
    int64_t last_us; /* the latest arrival */
};

/* Delays in 1 ms buckets; the last bucket: overflow. */
struct ws_hist {
    uint32_t b[WS_HIST_MS + 1];
    uint64_t n;
    double min, max;
};

/* Phases of a run: running, the grace after stopping, closing, done. */
enum ws_phase { WS_RUN, WS_GRACE, WS_CLOSING, WS_DONE };

/* The whole client. */
struct ws_app {
    struct ws_cfg *cfg;
    struct lws_context *ctx;
    struct ws_conn *conns;
    int n, opened, active;     /* conns, started, connecting or open */
    int ok, failed, by_server; /* established, failed, closed by server */
    int rc;                    /* exit code */
    enum ws_phase phase;
    int64_t t0_us, stop_us;     /* start, stop (realtime, us) */
    uint64_t messages, dups;    /* messages counted, repeated seqs */
    uint64_t snapshots;         /* ... of which "type":"snapshot" */
    char first_err[200];        /* the first connection error */
    char close_reason[128];     /* print mode: the server's reason */
    int warned;                 /* skipped messages reported once */
    int codes[WS_MAX_CODES][2]; /* close code, count */
    int ncodes;
    /* Delays of the frames of seconds that began once every connection
     * was open, and of those before (the ramp). */
    struct ws_hist steady, ramp;
    double all_open_ms;  /* when the last connection opened or failed */
    struct ws_seq *seqs; /* in order of first arrival */
    uint32_t nseqs, capseqs;
    uint32_t *slots; /* hash of seq -> index + 1 */
    uint32_t nslots; /* a power of two */
    lws_sorted_usec_list_t sul_ramp, sul_tick, sul_stop, sul_phase;
};

static const char ws_head[] =
    "usage: tt-ws --url ws://127.0.0.1:PORT/PATH[?QUERY] [options]\n"
    "  WebSocket client: prints each message (one connection) or a JSON\n"
    "  summary of many connections' frames and delays.\n";

static const struct cli_opt ws_opts[] = {
    {"url", 's', offsetof(struct ws_cfg, url), 0, 0,
     "ws:// URL on 127.0.0.1, ::1 or localhost"},
    {"header", 's', offsetof(struct ws_cfg, header_last), 0, 0,
     "\"Name: value\" added to the handshake (repeatable)"},
    {"connections", 'w', offsetof(struct ws_cfg, connections), 1, 100000,
     "connections to open (default 1; > 1 implies --stats)"},
    {"duration", 'd', offsetof(struct ws_cfg, duration), 0, 1e7,
     "seconds to run (default 0: until closed)"},
    {"messages", 'w', offsetof(struct ws_cfg, messages), 0, 1e15,
     "stop a connection after this many messages (default 0: no limit)"},
    {"slow", 'f', offsetof(struct ws_cfg, slow), 0, 0,
     "stop reading after the handshake; report the server's close"},
    {"ramp", 'd', offsetof(struct ws_cfg, ramp), 0.001, 1e6,
     "connections opened per second (default 500)"},
    {"stats", 'f', offsetof(struct ws_cfg, stats), 0, 0,
     "print one JSON summary instead of the messages"},
};
#define WS_NOPTS ((int)(sizeof ws_opts / sizeof ws_opts[0]))

/* Wall-clock time in microseconds. */
static int64_t ws_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Give up on running out of memory: the numbers would be wrong anyway. */
static void *ws_realloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        cli_msg("out of memory");
        exit(2);
    }
    return q;
}

/* Check one --header value: a token, a colon, no CR or LF.  0 or -1. */
static int ws_check_header(const char *h)
{
    size_t nl = strcspn(h, ":");
    if (nl == 0 || h[nl] != ':' || strpbrk(h, "\r\n"))
        return -1;
    for (size_t i = 0; i < nl; i++)
        if (h[i] <= ' ' || h[i] >= 127 || strchr("()<>@,;\\\"/[]?={}", h[i]))
            return -1;
    return 0;
}

/* Split the ws:// URL into host, port, Host header and path; refuse any
 * host but the loopback.  0, or -1 after a message. */
static int ws_parse_url(struct ws_cfg *c)
{
    const char *u = c->url, *h, *e, *p;
    size_t hl;
    if (strncmp(u, "ws://", 5) != 0)
        goto bad;
    h = u + 5;
    if (*h == '[') {
        e = strchr(h, ']');
        if (e == NULL)
            goto bad;
        hl = (size_t)(e - h - 1);
        h++;
        p = e + 1;
    } else {
        hl = strcspn(h, ":/?#");
        p = h + hl;
    }
    if (hl == 0 || hl >= sizeof c->host)
        goto bad;
    memcpy(c->host, h, hl);
    c->host[hl] = '\0';
    c->port = 80;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535)
            goto bad;
        c->port = (int)port;
        p = end;
    }
    if (*p != '\0' && *p != '/' && *p != '?')
        goto bad;
    /* A bare "?query" still needs the root path in the request line. */
    c->path = *p == '/' ? p : *p == '?' ? NULL : "/";
    if (c->path == NULL) {
        size_t n = strlen(p) + 2;
        char *q = ws_realloc(NULL, n);
        snprintf(q, n, "/%s", p);
        c->path = q;
    }
    if (strcmp(c->host, "127.0.0.1") != 0 && strcmp(c->host, "::1") != 0 &&
        strcmp(c->host, "localhost") != 0) {
        cli_msg("invalid value \"%s\" for \"--url\": only 127.0.0.1, ::1 "
                "and localhost are allowed",
                c->url);
        return -1;
    }
    snprintf(c->host_hdr, sizeof c->host_hdr,
             strchr(c->host, ':') ? "[%s]" : "%s", c->host);
    if (c->port != 80) {
        size_t l = strlen(c->host_hdr);
        snprintf(c->host_hdr + l, sizeof c->host_hdr - l, ":%d", c->port);
    }
    return 0;
bad:
    cli_msg("invalid value \"%s\" for \"--url\": expected "
            "ws://HOST[:PORT][/PATH][?QUERY]",
            c->url);
    return -1;
}

/* Parse the command line into c.  0, or the exit code (1: usage). */
static int ws_parse_args(struct ws_cfg *c, int argc, char **argv)
{
    struct option lo[WS_NOPTS + 1];
    int opt, idx;
    c->connections = 1;
    c->ramp = 500;
    if (cli_parse(c, ws_head, ws_opts, WS_NOPTS, argc, argv) != 0)
        return 1;
    if (c->url == NULL) {
        cli_msg("--url is required");
        cli_usage(stderr, ws_head, ws_opts, WS_NOPTS);
        return 1;
    }
    /* cli_parse keeps the last --header; a second pass over the same
     * option table, which cli_parse has validated, collects them all. */
    memset(lo, 0, sizeof lo);
    for (int i = 0; i < WS_NOPTS; i++)
        lo[i] =
            (struct option){ws_opts[i].name, ws_opts[i].kind != 'f', NULL, i};
    optind = 0;
    while ((opt = getopt_long(argc, argv, "", lo, &idx)) != -1) {
        if (opt < 0 || opt >= WS_NOPTS || strcmp(lo[opt].name, "header"))
            continue;
        if (c->nheaders == WS_MAX_HEADERS) {
            cli_msg("too many --header options (at most %d)", WS_MAX_HEADERS);
            return 1;
        }
        if (ws_check_header(optarg) < 0) {
            cli_msg("invalid value \"%s\" for \"--header\": expected "
                    "\"Name: value\"",
                    optarg);
            return 1;
        }
        c->headers[c->nheaders++] = optarg;
    }
    if (c->connections > 1)
        c->stats = 1;
    return ws_parse_url(c) < 0 ? 1 : 0;
}

/* The first slot to probe for seq in a table of mask + 1 slots. */
static uint32_t ws_slot(int64_t seq, uint32_t mask)
{
    return (uint32_t)((uint64_t)seq * 0x9E3779B97F4A7C15ull >> 32) & mask;
}

/* Find seq in the table, adding it unless after the stop; NULL if it is
 * not (and will not be) tracked. */
static struct ws_seq *ws_seq_get(struct ws_app *a, int64_t seq, double ref_ms)
{
    uint32_t mask = a->nslots - 1, i = ws_slot(seq, mask);
    for (; a->slots[i]; i = (i + 1) & mask)
        if (a->seqs[a->slots[i] - 1].seq == seq)
            return &a->seqs[a->slots[i] - 1];
    if (a->phase != WS_RUN || a->nseqs == WS_MAX_SEQS)
        return NULL;
    if (a->nseqs == a->capseqs) {
        a->capseqs = a->capseqs ? a->capseqs * 2 : 64;
        a->seqs = ws_realloc(a->seqs, a->capseqs * sizeof *a->seqs);
    }
    a->seqs[a->nseqs] = (struct ws_seq){seq, 0, ref_ms, 0};
    a->slots[i] = ++a->nseqs;
    if (a->nseqs * 2 > a->nslots) {
        /* Rehash into twice the slots. */
        a->nslots *= 2;
        free(a->slots);
        a->slots = ws_realloc(NULL, a->nslots * sizeof *a->slots);
        memset(a->slots, 0, a->nslots * sizeof *a->slots);
        mask = a->nslots - 1;
        for (uint32_t k = 0; k < a->nseqs; k++) {
            for (i = ws_slot(a->seqs[k].seq, mask); a->slots[i];
                 i = (i + 1) & mask)
                ;
            a->slots[i] = k + 1;
        }
    }
    return &a->seqs[a->nseqs - 1];
}

/* Skip a JSON string starting after its opening quote; returns the index
 * after the closing quote, or n. */
static size_t ws_skip_string(const char *s, size_t i, size_t n)
{
    for (; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return n;
}

/* Find the top-level fields "seq" and "sent_ms" (numbers) and "type" of
 * the JSON object in s (n bytes, NUL-terminated).  It does not validate
 * the rest of the JSON: a cheap scan keeps the receive timestamps of 5000
 * connections honest.  Result: WS_F_SEQ, WS_F_SENT, WS_F_TYPE (any "type")
 * and WS_F_SNAPSHOT ("type":"snapshot") as found. */
static int ws_scan(const char *s, size_t n, double *seq, double *sent)
{
    size_t i = strspn(s, " \t\r\n");
    int depth = 0, want_key = 0, found = 0;
    if (i >= n || s[i] != '{')
        return 0;
    for (; i < n && (found & WS_F_ALL) != WS_F_ALL; i++) {
        char c = s[i];
        if (c == '{' || c == '[') {
            depth++;
            want_key = depth == 1;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                break;
        } else if (c == ',') {
            want_key = depth == 1;
        } else if (c == '"') {
            size_t k = i + 1, end = ws_skip_string(s, k, n);
            int which = 0;
            if (want_key && end - k == 4 && !memcmp(s + k, "seq\"", 4))
                which = WS_F_SEQ;
            else if (want_key && end - k == 8 && !memcmp(s + k, "sent_ms\"", 8))
                which = WS_F_SENT;
            else if (want_key && end - k == 5 && !memcmp(s + k, "type\"", 5))
                which = WS_F_TYPE;
            want_key = 0;
            i = end - 1;
            if (which == 0)
                continue;
            size_t v = end + strspn(s + end, " \t\r\n");
            if (v >= n || s[v] != ':')
                continue;
            v += 1 + strspn(s + v + 1, " \t\r\n");
            if (which == WS_F_TYPE) {
                found |= WS_F_TYPE;
                if (n - v >= 10 && !memcmp(s + v, "\"snapshot\"", 10))
                    found |= WS_F_SNAPSHOT;
                continue;
            }
            if (v >= n || !(s[v] == '-' || (s[v] >= '0' && s[v] <= '9')))
                continue;
            char *e;
            double d = strtod(s + v, &e);
            if (!isfinite(d))
                continue;
            *(which == WS_F_SEQ ? seq : sent) = d;
            found |= which;
            i = (size_t)(e - s) - 1;
        }
    }
    return found;
}

/* Count the delay of a frame sent at sent_ms (the end of its second)
 * that arrived at now_ms. */
static void ws_delay(struct ws_app *a, double sent_ms, double now_ms)
{
    struct ws_hist *h = a->all_open_ms > 0 && sent_ms - 1000 >= a->all_open_ms
                            ? &a->steady
                            : &a->ramp;
    double d = now_ms - sent_ms;
    int b = d <= 0 ? 0 : d >= WS_HIST_MS ? WS_HIST_MS : (int)d;
    h->b[b]++;
    if (h->n++ == 0 || d < h->min)
        h->min = d;
    if (h->n == 1 || d > h->max)
        h->max = d;
}

/* Every connection has opened or failed: the ramp is over. */
static void ws_opened_one(struct ws_app *a)
{
    if (a->all_open_ms == 0 && a->ok + a->failed >= a->n)
        a->all_open_ms = (double)ws_now_us() / 1000;
}

/* Stats mode: account one complete text message of connection c.  A
 * snapshot (what a stream opens with) counts for its seq but not for the
 * delays: its sent_ms is when its second closed, not when it was sent. */
static void ws_account(struct ws_app *a, struct ws_conn *c, const char *s,
                       size_t n, int64_t now_us)
{
    double seq = 0, sent = 0, now_ms = (double)now_us / 1000;
    int f = ws_scan(s, n, &seq, &sent);
    struct ws_seq *q = NULL;
    if ((f & WS_F_SEQ) && seq == floor(seq) && fabs(seq) < 9e15)
        q = ws_seq_get(a, (int64_t)seq, (f & WS_F_SENT) ? sent : now_ms);
    if (q == NULL && a->phase != WS_RUN)
        return; /* after the stop only the seqs in flight count */
    a->messages++;
    a->snapshots += (f & WS_F_SNAPSHOT) != 0;
    if ((f & WS_F_SENT) && !(f & WS_F_SNAPSHOT))
        ws_delay(a, sent, now_ms);
    if (q == NULL)
        return;
    uint32_t idx = (uint32_t)(q - a->seqs), w = idx / 64;
    if (w >= c->nseen) {
        uint32_t nw = c->nseen ? c->nseen : 1;
        while (nw <= w)
            nw *= 2;
        c->seen = ws_realloc(c->seen, nw * sizeof *c->seen);
        memset(c->seen + c->nseen, 0, (nw - c->nseen) * sizeof *c->seen);
        c->nseen = nw;
    }
    if (c->seen[w] & (1ull << (idx % 64))) {
        a->dups++;
        return;
    }
    c->seen[w] |= 1ull << (idx % 64);
    q->count++;
    q->last_us = now_us;
}

/* Print mode: write "<ms> <text>" keeping the text on one line. */
static void ws_print(const char *s, size_t n, int64_t now_us)
{
    int in_str = 0;
    size_t from = 0;
    printf("%lld ", (long long)(now_us / 1000));
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && in_str) {
            i++;
        } else if (c == '"') {
            in_str = !in_str;
        } else if (c == '\n' || c == '\r') {
            fwrite(s + from, 1, i - from, stdout);
            fputs(in_str ? (c == '\n' ? "\\n" : "\\r") : " ", stdout);
            from = i + 1;
        }
    }
    if (from < n)
        fwrite(s + from, 1, n - from, stdout);
    putchar('\n');
    fflush(stdout);
}

static void ws_stop(struct ws_app *a);

/* Close open connection c ourselves, with a close frame when writable. */
static void ws_close(struct ws_conn *c)
{
    c->by_us = c->want_close = 1;
    lws_callback_on_writable(c->wsi);
}

/* One complete message of c (s, n bytes, NUL-terminated) has arrived. */
static void ws_message(struct ws_app *a, struct ws_conn *c, const char *s,
                       size_t n)
{
    int64_t now = ws_now_us();
    c->msgs++;
    if (c->too_big || c->binary) {
        a->messages += a->phase == WS_RUN;
        if (!a->warned++)
            cli_msg("ignoring %s messages",
                    c->too_big ? "oversized" : "binary");
    } else if (a->cfg->stats) {
        ws_account(a, c, s, n, now);
    } else if (a->cfg->messages == 0 || c->msgs <= (uint64_t)a->cfg->messages) {
        ws_print(s, n, now); /* exactly --messages lines, whatever follows */
    }
    if (a->cfg->messages > 0 && c->msgs >= (uint64_t)a->cfg->messages) {
        if (!a->cfg->stats) {
            ws_stop(a);
        } else if (c->state == WS_OPEN && !c->by_us) {
            ws_close(c);
        }
    }
}

/* Receive one chunk of a message into c; whole messages go on. */
static void ws_rx(struct ws_app *a, struct ws_conn *c, const char *in,
                  size_t len)
{
    int final = lws_is_final_fragment(c->wsi);
    if (c->len == 0 && !c->too_big)
        c->binary = lws_frame_is_binary(c->wsi) != 0;
    if (final && c->len == 0 && !c->too_big) {
        ws_message(a, c, in, len); /* lws NUL-terminates what it hands us */
    } else if (!c->too_big) {
        if (c->len + len > WS_MSG_MAX) {
            c->too_big = 1;
        } else {
            /* Room for the rest of this frame at once: one allocation for
             * the usual message of one frame in several chunks. */
            size_t need =
                c->len + len + lws_remaining_packet_payload(c->wsi) + 1;
            if (need > c->cap) {
                c->cap = need > 2 * c->cap ? need : 2 * c->cap;
                c->buf = ws_realloc(c->buf, c->cap);
            }
            memcpy(c->buf + c->len, in, len);
            c->len += len;
            c->buf[c->len] = '\0';
        }
    }
    if (!final)
        return;
    if (c->len || c->too_big)
        ws_message(a, c, c->buf ? c->buf : "", c->len);
    c->len = 0;
    c->too_big = 0;
    if (c->cap > WS_BUF_KEEP || (a->cfg->stats && c->cap)) {
        free(c->buf);
        c->buf = NULL;
        c->cap = 0;
    }
}

/* Make the text s (n bytes) one printable line: controls become spaces. */
static void ws_one_line(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < ' ')
            s[i] = ' ';
}

/* Count a close code for the summary. */
static void ws_count_code(struct ws_app *a, int code)
{
    int i = 0;
    while (i < a->ncodes && a->codes[i][0] != code)
        i++;
    if (i == a->ncodes && a->ncodes < WS_MAX_CODES)
        a->codes[a->ncodes++][0] = code;
    if (i < a->ncodes)
        a->codes[i][1]++;
}

/* Is the run over: everything started has ended? */
static void ws_check_done(struct ws_app *a)
{
    if (a->active == 0 && (a->opened == a->n || a->phase != WS_RUN))
        a->phase = WS_DONE;
}

/* Connection c has closed (established before). */
static void ws_closed(struct ws_app *a, struct ws_conn *c)
{
    int code = c->close_code ? c->close_code : 1006;
    c->state = WS_ENDED;
    c->end_us = ws_now_us();
    c->wsi = NULL;
    a->active--;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
    if (!c->by_us) {
        a->by_server++;
        ws_count_code(a, code);
        if (!a->cfg->stats) {
            const char *r = c->close_code ? a->close_reason
                                          : "abnormal closure (no close frame)";
            printf("CLOSE %d %s\n", code, r);
            fflush(stdout);
        }
    }
    if (!a->cfg->stats)
        a->phase = WS_DONE;
    ws_check_done(a);
}

/* Connection c failed before it was established; why is lws's text. */
static void ws_failed(struct ws_app *a, struct ws_conn *c, struct lws *wsi,
                      const char *why)
{
    char msg[sizeof a->first_err];
    unsigned status = wsi ? lws_http_client_http_response(wsi) : 0;
    if (c->state != WS_CONNECTING)
        return;
    c->state = WS_FAILED;
    c->wsi = NULL;
    a->active--;
    if (status)
        snprintf(msg, sizeof msg, "HTTP %u: %s", status,
                 why ? why : "handshake failed");
    else
        snprintf(msg, sizeof msg, "%s", why ? why : "connection failed");
    ws_one_line(msg, strlen(msg));
    if (!c->by_us) {
        a->failed++;
        ws_opened_one(a);
        if (!a->first_err[0])
            snprintf(a->first_err, sizeof a->first_err, "%s", msg);
        if (!a->cfg->stats) {
            printf("ERROR %s\n", msg);
            fflush(stdout);
            a->rc = 2;
            a->phase = WS_DONE;
        }
    }
    ws_check_done(a);
}

/* --slow: has the server closed its side (FIN or RST seen)? */
static int ws_peer_gone(struct lws *wsi)
{
    struct tcp_info ti;
    socklen_t sl = sizeof ti;
    int fd = (int)lws_get_socket_fd(wsi);
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &sl) != 0)
        return 1;
    return ti.tcpi_state != TCP_ESTABLISHED;
}

/* --slow: read connection c again, to collect what the server sent last.
 * The backlog may hold pings, and a pong sent to a server that has closed
 * its socket meanwhile would draw a reset that discards the rest, close
 * frame included.  A close reason stashed now (lws sends it only when we
 * close) makes lws drop pings instead of answering them. */
static void ws_read_again(struct ws_conn *c)
{
    if (c->state != WS_OPEN || c->reading)
        return;
    c->reading = 1;
    lws_close_reason(c->wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"done",
                     4);
    lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
    lws_rx_flow_control(c->wsi, 1);
}

/* --slow: look at connection wsi's TCP state again after a while. */
static void ws_watch(const struct ws_app *a, struct lws *wsi)
{
    lws_set_timer_usecs(wsi, a->cfg->stats ? 1000000 : WS_TICK_US);
}

/* --slow: probe an idle connection every second, so that a server that has
 * gone (its reset lost against our closed window) shows in the TCP state. */
static void ws_keepalive(struct lws *wsi)
{
    int fd = (int)lws_get_socket_fd(wsi), on = 1, idle = 1, intvl = 1, cnt = 3;
    if (fd < 0)
        return;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

/* The handshake of c succeeded. */
static void ws_established(struct ws_app *a, struct ws_conn *c, struct lws *wsi)
{
    c->state = WS_OPEN;
    c->wsi = wsi;
    c->est_us = ws_now_us();
    a->ok++;
    ws_opened_one(a);
    if (!a->cfg->stats)
        cli_msg("connected to %s", a->cfg->url);
    if (!a->cfg->slow)
        return;
    /* Stop reading: the kernel's receive buffer fills (it does not grow
     * for a reader that never reads), then the server's queue grows.  No
     * smaller SO_RCVBUF: below the loopback MSS the window crawls open at
     * the persist timer's pace, and the final drain would take minutes. */
    lws_rx_flow_control(wsi, 0);
    ws_keepalive(wsi);
    ws_watch(a, wsi);
}

/* The one protocol callback for every connection. */
static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
                       void *user, void *in, size_t len)
{
    struct ws_app *a = lws_context_user(lws_get_context(wsi));
    /* The opaque pointer, unlike user, is set before any callback. */
    struct ws_conn *c = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **p = in, *end = *p + len;
        for (int i = 0; i < a->cfg->nheaders; i++) {
            const char *h = a->cfg->headers[i];
            size_t nl = strcspn(h, ":") + 1;
            char name[256];
            const char *v = h + nl + strspn(h + nl, " \t");
            if (nl >= sizeof name)
                return -1;
            memcpy(name, h, nl);
            name[nl] = '\0';
            if (lws_add_http_header_by_name(wsi, (unsigned char *)name,
                                            (const unsigned char *)v,
                                            (int)strlen(v), p, end))
                return -1;
        }
        break;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (c)
            ws_established(a, c, wsi);
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (c && c->state == WS_OPEN)
            ws_rx(a, c, in ? in : "", len);
        break;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c == NULL)
            break;
        if (len >= 2) {
            const unsigned char *b = in;
            c->close_code = b[0] << 8 | b[1];
        } else {
            c->close_code = 1005; /* a close frame without a code */
        }
        if (!a->cfg->stats) {
            size_t rl = len > 2 ? len - 2 : 0;
            if (rl >= sizeof a->close_reason)
                rl = sizeof a->close_reason - 1;
            memcpy(a->close_reason, (char *)in + (len > 2 ? 2 : 0), rl);
            a->close_reason[rl] = '\0';
            ws_one_line(a->close_reason, rl);
        }
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (c && c->want_close) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL,
                             (unsigned char *)"done", 4);
            return -1;
        }
        break;
    case LWS_CALLBACK_TIMER:
        if (c && c->state == WS_OPEN && !c->reading) {
            if (ws_peer_gone(wsi))
                ws_read_again(c);
            else
                ws_watch(a, wsi);
        }
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c)
            ws_failed(a, c, wsi, in);
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c && c->state == WS_OPEN)
            ws_closed(a, c);
        else if (c)
            ws_failed(a, c, wsi, "closed during the handshake");
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols ws_protocols[] = {
    {"tt-ws", ws_callback, 0, 0, 0, NULL, 0}, {NULL, NULL, 0, 0, 0, NULL, 0}};

/* --slow connections must not ping and then hang up on their own: not
 * reading, they never see a pong.  (Nothing here retries, but lws wants a
 * backoff table in every policy.) */
static const uint32_t ws_slow_backoff[] = {1000};
static const lws_retry_bo_t ws_slow_policy = {
    .retry_ms_table = ws_slow_backoff,
    .retry_ms_table_count = 1,
    .secs_since_valid_ping = 65535,
    .secs_since_valid_hangup = 65535,
};

/* Start connection c. */
static void ws_connect(struct ws_app *a, struct ws_conn *c)
{
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof i);
    i.context = a->ctx;
    i.address = a->cfg->host;
    i.port = a->cfg->port;
    i.path = a->cfg->path;
    i.host = a->cfg->host_hdr;
    i.local_protocol_name = "tt-ws";
    i.userdata = c;
    i.opaque_user_data = c;
    i.pwsi = &c->wsi;
    if (a->cfg->slow)
        i.retry_and_idle_policy = &ws_slow_policy;
    c->state = WS_CONNECTING;
    a->opened++;
    a->active++;
    if (lws_client_connect_via_info(&i) == NULL)
        ws_failed(a, c, NULL, "cannot start the connection");
}

/* Open the connections that are due by --ramp, then wait for the next. */
static void ws_ramp(lws_sorted_usec_list_t *sul)
{
    struct ws_app *a = lws_container_of(sul, struct ws_app, sul_ramp);
    double el = (double)(ws_now_us() - a->t0_us) / 1e6;
    int due = (int)fmin(a->n, floor(el * a->cfg->ramp) + 1);
    while (a->phase == WS_RUN && a->opened < due)
        ws_connect(a, &a->conns[a->opened]);
    if (a->phase == WS_RUN && a->opened < a->n) {
        double next = (double)a->opened / a->cfg->ramp - el;
        lws_sul_schedule(a->ctx, 0, sul, ws_ramp,
                         (lws_usec_t)fmax(1000, next * 1e6));
    }
}

/* End of the grace or drain: close every connection still open. */
static void ws_close_all(lws_sorted_usec_list_t *sul)
{
    struct ws_app *a = lws_container_of(sul, struct ws_app, sul_phase);
    if (a->phase == WS_CLOSING) {
        a->phase = WS_DONE; /* the close handshakes took too long */
        return;
    }
    a->phase = WS_CLOSING;
    for (int i = 0; i < a->opened; i++) {
        struct ws_conn *c = &a->conns[i];
        if (c->state == WS_OPEN) {
            ws_close(c);
        } else if (c->state == WS_CONNECTING && c->wsi) {
            c->by_us = 1;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
    }
    ws_check_done(a);
    if (a->phase != WS_DONE)
        lws_sul_schedule(a->ctx, 0, sul, ws_close_all,
                         (lws_usec_t)WS_CLOSE_MS * 1000);
}

/* Stop the run: no new connections or seqs; after a grace (stats mode) or
 * a drain (--slow), close the connections. */
static void ws_stop(struct ws_app *a)
{
    int grace_ms = a->cfg->slow ? WS_DRAIN_MS : a->cfg->stats ? WS_GRACE_MS : 0;
    if (a->phase != WS_RUN)
        return;
    a->phase = WS_GRACE;
    a->stop_us = ws_now_us();
    lws_sul_cancel(&a->sul_ramp);
    if (a->cfg->slow)
        for (int i = 0; i < a->opened; i++)
            ws_read_again(&a->conns[i]);
    lws_sul_schedule(a->ctx, 0, &a->sul_phase, ws_close_all,
                     (lws_usec_t)grace_ms * 1000);
}

/* --duration has passed. */
static void ws_duration(lws_sorted_usec_list_t *sul)
{
    ws_stop(lws_container_of(sul, struct ws_app, sul_stop));
}

/* Housekeeping: notice signals and runs with nothing left to do. */
static void ws_tick(lws_sorted_usec_list_t *sul)
{
    struct ws_app *a = lws_container_of(sul, struct ws_app, sul_tick);
    if (ws_signalled)
        ws_stop(a);
    ws_check_done(a);
    lws_sul_schedule(a->ctx, 0, sul, ws_tick, WS_TICK_US);
}

/* Does connection c owe seq q (see the top of the file)? */
static int ws_owes(const struct ws_conn *c, const struct ws_seq *q)
{
    return c->est_us > 0 && (double)c->est_us / 1000 < q->ref_ms &&
           (c->end_us == 0 || c->end_us > q->last_us);
}

/* Order seq indexes by seq. */
static int ws_cmp_seq(const void *x, const void *y, void *arg)
{
    const struct ws_seq *s = arg;
    int64_t a = s[*(const uint32_t *)x].seq, b = s[*(const uint32_t *)y].seq;
    return a < b ? -1 : a > b;
}

/* The delay in whole ms at percentile p (0..1), from the histogram. */
static double ws_pct(const struct ws_hist *h, double p)
{
    uint64_t want = (uint64_t)ceil(p * (double)h->n), sum = 0;
    if (want == 0)
        want = 1;
    for (int b = 0; b < WS_HIST_MS; b++)
        if ((sum += h->b[b]) >= want)
            return b;
    return floor(h->max);
}

/* Print a histogram as "name":{"count":..,"min":..,"p50":..,...}. */
static void ws_print_hist(const char *name, const struct ws_hist *h)
{
    if (h->n)
        printf(",\"%s\":{\"count\":%llu,\"min\":%.1f,\"p50\":%.0f,"
               "\"p90\":%.0f,\"p99\":%.0f,\"max\":%.1f}",
               name, (unsigned long long)h->n, h->min, ws_pct(h, .5),
               ws_pct(h, .9), ws_pct(h, .99), h->max);
    else
        printf(",\"%s\":{\"count\":0,\"min\":null,\"p50\":null,"
               "\"p90\":null,\"p99\":null,\"max\":null}",
               name);
}

/* Print the stats-mode summary line, once the run has stopped. */
static void ws_summary(struct ws_app *a)
{
    uint32_t *ord = ws_realloc(NULL, (a->nseqs + 1) * sizeof *ord);
    uint32_t complete = 0;
    for (uint32_t k = 0; k < a->nseqs; k++) {
        const struct ws_seq *q = &a->seqs[k];
        int got = 1;
        ord[k] = k;
        for (int i = 0; i < a->opened && got; i++) {
            const struct ws_conn *c = &a->conns[i];
            if (!ws_owes(c, q))
                continue;
            got = k / 64 < c->nseen && (c->seen[k / 64] >> (k % 64) & 1);
        }
        complete += got;
    }
    qsort_r(ord, a->nseqs, sizeof *ord, ws_cmp_seq, a->seqs);
    printf("{\"connections\":%d,\"connections_ok\":%d,"
           "\"connections_failed\":%d,\"closed_by_server\":%d,"
           "\"close_codes\":{",
           a->n, a->ok, a->failed, a->by_server);
    for (int i = 0; i < a->ncodes; i++)
        printf("%s\"%d\":%d", i ? "," : "", a->codes[i][0], a->codes[i][1]);
    printf("},\"messages\":%llu,\"snapshots\":%llu,\"duplicates\":%llu,"
           "\"seqs\":%u,\"complete_seqs\":%u,\"frames\":{",
           (unsigned long long)a->messages, (unsigned long long)a->snapshots,
           (unsigned long long)a->dups, a->nseqs, complete);
    for (uint32_t k = 0; k < a->nseqs; k++)
        printf("%s\"%lld\":%u", k ? "," : "", (long long)a->seqs[ord[k]].seq,
               a->seqs[ord[k]].count);
    printf("}");
    ws_print_hist("delay_ms", &a->steady);
    ws_print_hist("ramp_delay_ms", &a->ramp);
    printf(",\"elapsed_s\":%.1f}\n", (double)(a->stop_us - a->t0_us) / 1e6);
    fflush(stdout);
    free(ord);
}

/* Before the loop would block: stop it once the run is over. */
static void ws_until_done(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    const struct ws_app *a = w->data;
    if (a->phase == WS_DONE)
        ev_break(loop, EVBREAK_ALL);
}

/* Let n connections have file descriptors: raise the soft limit. */
static void ws_raise_nofile(int n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
        rl.rlim_cur < (rlim_t)n + WS_FD_SPARE)
        cli_msg("only %llu file descriptors: some of the %d connections "
                "will fail",
                (unsigned long long)rl.rlim_cur, n);
}

/* Record a signal; the tick stops the run. */
static void ws_on_signal(int sig)
{
    (void)sig;
    ws_signalled = 1;
}

int main(int argc, char **argv)
{
    static struct ws_cfg cfg;
    static struct ws_app app;
    struct lws_context_creation_info info;
    struct sigaction sa;
    int rc;
    cli_prog = "tt-ws";
    if ((rc = ws_parse_args(&cfg, argc, argv)) != 0)
        return rc;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ws_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    ws_raise_nofile((int)cfg.connections);

    app.cfg = &cfg;
    app.n = (int)cfg.connections;
    app.conns = ws_realloc(NULL, (size_t)app.n * sizeof *app.conns);
    memset(app.conns, 0, (size_t)app.n * sizeof *app.conns);
    app.nslots = 128;
    app.slots = ws_realloc(NULL, app.nslots * sizeof *app.slots);
    memset(app.slots, 0, app.nslots * sizeof *app.slots);

    lws_set_log_level(LLL_ERR, NULL);
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = ws_protocols;
    info.user = &app;
    /* No fd_limit_per_thread: with it lws finds a connection by its fd in a
     * linear search, a fifth of the CPU at 5000 connections; without, the
     * fd indexes a table as large as RLIMIT_NOFILE. */
    info.timeout_secs = 10;
    info.connect_timeout_secs = 10;
    /* libev's epoll loop: lws's own poll() walks every connection on every
     * wakeup, which at thousands of connections cost more than the reads
     * and delayed them. */
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOSIGMASK);
    void *loops[1] = {loop};
    info.options |= LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = loops;
    app.ctx = loop != NULL ? lws_create_context(&info) : NULL;
    if (app.ctx == NULL) {
        cli_msg("cannot create the libwebsockets context");
        return 2;
    }
    app.t0_us = ws_now_us();
    lws_sul_schedule(app.ctx, 0, &app.sul_ramp, ws_ramp, 1);
    lws_sul_schedule(app.ctx, 0, &app.sul_tick, ws_tick, WS_TICK_US);
    if (cfg.duration > 0)
        lws_sul_schedule(app.ctx, 0, &app.sul_stop, ws_duration,
                         (lws_usec_t)(cfg.duration * 1e6));
    ev_prepare done;
    ev_prepare_init(&done, ws_until_done);
    done.data = &app;
    ev_prepare_start(loop, &done);
    ev_run(loop, 0);
    ev_prepare_stop(loop, &done);
    if (app.stop_us == 0)
        app.stop_us = ws_now_us();
    lws_context_destroy(app.ctx);
    ev_loop_destroy(loop);
    if (cfg.stats) {
        ws_summary(&app);
        if (app.first_err[0])
            cli_msg("%d connection(s) failed; the first: %s", app.failed,
                    app.first_err);
        if (app.ok == 0)
            app.rc = 2;
    }
    for (int i = 0; i < app.n; i++) {
        free(app.conns[i].buf);
        free(app.conns[i].seen);
    }
    free(app.conns);
    free(app.seqs);
    free(app.slots);
    return app.rc;
}
