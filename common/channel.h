/*
 * channel.h: notification channels' settings: the types, validation of a
 * channel's config (with the path of a bad field), and the redacted form
 * every reader sees.  Secrets (passwords, routing keys, signing secrets,
 * webhook URLs' tokens, custom header values) are write-only: a reader
 * gets CHANNEL_REDACTED (or a URL with its secret parts replaced by it),
 * and an update that sends that redacted form back keeps the stored
 * secret, unless the update changes where the channel sends to.
 *
 * Ownership: channel_config_check's *out and channel_config_redact's
 * result are new references the caller releases (json_decref); neither
 * function keeps or changes its arguments.  channel_url_redact's result
 * is malloc'ed (free it).  No global state: any thread may call anything
 * here (libcurl's URL API needs no curl_global_init).
 */
#ifndef TT_CHANNEL_H
#define TT_CHANNEL_H

#include <jansson.h>
#include <stddef.h>

enum channel_type {
    CH_EMAIL,
    CH_SLACK,
    CH_PAGERDUTY,
    CH_WEBHOOK,
    CH_IN_APP,
    CH_NTYPES
};

#define CHANNEL_REDACTED "********"

/* "email", "slack", "pagerduty", "webhook", "in_app"; NULL when out of
 * range.  channel_type_parse: -1 when unknown. */
const char *channel_type_name(int t);
int channel_type_parse(const char *s);

/*
 * Validate in, the "config" object of a channel of type t, into *out: the
 * config to store (a new reference) with defaults filled in.  prev is the
 * stored config on an update (NULL on create): a field of in whose value is
 * the redacted form of prev's keeps prev's value, and a secret field left
 * out of in keeps prev's too.  Returns 0, or -1 with the path of the bad
 * field in path ("config.to[1]", "config.headers.X-Team") and a sentence
 * quoting the value (never a secret's) in msg.  path or msg may be NULL
 * when pn or mn is 0.
 *
 * Secrets, in detail: password, routing_key, secret, headers and the
 * slack and webhook URLs left out of in keep prev's (a client can PUT the
 * redacted config back, or only the fields it changes); null removes an
 * optional one (password, secret, headers; {} too for headers); a header
 * value CHANNEL_REDACTED keeps prev's value of that header (names compare
 * without case).  A redacted value with nothing stored behind it (on
 * create, or a header or URL prev does not have) is refused: "is
 * redacted: send the secret itself".  A value that is not prev's is
 * checked and stored as sent (URLs too: they are not rewritten).
 *
 * A new destination takes no stored secret: when the update changes the
 * scheme, host (compared without case) or port (a default port written
 * or not is the same) of email's smtp_url, pagerduty's events_url or
 * the webhook url, as libcurl reads them, every stored secret of the
 * channel must be sent again in full.  A redacted value, or a secret
 * field left out while one is stored (optional ones too: nothing is
 * dropped silently), is then refused at that field's path (a header's
 * for a redacted header value): "must be sent again: the destination
 * changed ...".  null (or {} for headers) still removes an optional one.
 * A pagerduty events_url left out is the default, a destination too.
 * Slack needs no rule: its webhook_url is the secret, and one with
 * another host is never the stored one's redacted form.  Otherwise,
 * whoever may update a channel could have its stored secrets (SMTP
 * password, routing key, signing secret, header values) sent to a host
 * of theirs.
 *
 * Fields (unknown ones are refused):
 *   every type: timeout_ms (1000..60000, default 10000), min_interval_ms
 *     (0..3600000; default 1000 for slack, else 0): the least time
 *     between two deliveries (the rate limit).
 *   email: smtp_url ("smtp://host[:port]" or "smtps://host[:port]": no
 *     userinfo, path or query; required), starttls (bool, default true;
 *     smtp only: refused with smtps), username (1..256 bytes, optional),
 *     password (secret, 1..256 bytes, optional; needs a username), from
 *     (an address, required), to (1..20 addresses, required).  An address
 *     is a plain "local@domain" of at most 254 bytes: no display name, no
 *     spaces or control characters, none of <>,;:"()[]\.
 *   slack: webhook_url (http or https; secret but its host; required).
 *   pagerduty: routing_key (secret, 1..64 printable ASCII without spaces;
 *     required), events_url (http or https without userinfo, default
 *     "https://events.pagerduty.com/v2/enqueue").
 *   webhook: url (http or https; its userinfo, query and path (when
 *     more than "/") are secret; required), secret (signing secret,
 *     1..256 bytes, optional), headers (object of at most 20 name:
 *     value; names are tokens of at most 128 bytes, unique without case,
 *     and not Host, Content-Type, Content-Length, Transfer-Encoding or
 *     X-Tokentap-Signature; values are 1..1024 bytes with no CR, LF or
 *     other control character but tab; values are secret), format
 *     ("tokentap" or "alertmanager", default "tokentap").
 *   in_app: no fields but the common ones.
 *
 * Every URL: at most 2048 bytes, parsed by libcurl, with a host, no
 * spaces or control characters, no port 0 and no #fragment.  Strings
 * with a NUL byte are refused; integers may be written 2500.0.
 */
int channel_config_check(int t, const json_t *in, const json_t *prev,
                         json_t **out, char *path, size_t pn, char *msg,
                         size_t mn);

/* The stored config of a type-t channel as readers see it: every secret
 * redacted (a new reference; NULL when out of memory).  Fields absent
 * from stored stay absent.  URLs: slack's webhook_url as
 * channel_url_redact(url, 1); the webhook url as
 * channel_url_redact(url, 1) when it has userinfo, a query or a path
 * other than "/" (Discord, Teams and Mattermost put their tokens in the
 * path), else as stored; any other URL with userinfo as
 * channel_url_redact(url, 0).  Secrets are found by field name whatever
 * t says, and a secret field of an unexpected JSON type is replaced
 * whole, so that a damaged or mistyped config still shows none. */
json_t *channel_config_redact(int t, const json_t *stored);

/* A URL's redacted form: "scheme://host[:port]/path" with any userinfo
 * and query replaced by CHANNEL_REDACTED, and, when path_secret, the path
 * too (the Slack webhook URL keeps only its scheme and host:
 * https://hooks.slack.com/ then CHANNEL_REDACTED; a bare "/" stays).  The
 * fragment is dropped; empty userinfo or query count as none.  Rebuilt by
 * libcurl, so the scheme is lowercase and an empty path is "/".  malloc'ed;
 * NULL when url does not parse (or is NULL, or out of memory). */
char *channel_url_redact(const char *url, int path_secret);

#endif
