/*
 * netguard.c: which addresses notifications may connect to (netguard.h).
 *
 * The ranges denied by default are a table of CIDR strings, first match
 * wins, so a reviewer can read them as the RFCs write them.  The table is
 * parsed on every call with the same code that parses the allow list: a
 * couple of dozen inet_pton calls cost nothing beside the connect they
 * guard, and this way there is no initialisation step and no shared state
 * to get wrong between threads.  A table entry that fails to parse (a bug
 * here) denies everything rather than nothing.
 */
#include "netguard.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest entry worth reading: an IPv6 address with an embedded IPv4
 * address (45 bytes), "/" and three digits, with room to spare. */
#define NETGUARD_ENTRY 64

/* One default rule.  A rule either denies its range, saying what the
 * address is, or hands the IPv4 address embedded at byte embed to the
 * IPv4 rules, its note naming the kind of embedding.  The family is the
 * table's (and the text's). */
struct netguard_rule {
    const char *net;  /* the range, "a.b.c.d/n" or "v6/n" */
    const char *what; /* "a loopback address", or NULL to embed */
    const char *note; /* in brackets after what ("cloud metadata"), or the
                         embedding ("IPv4-mapped") when what is NULL */
    int embed;        /* where the embedded IPv4 address starts */
};

/* Denied IPv4 ranges (RFC 6890 and the IANA special-purpose registry).
 * Single addresses come before the ranges that hold them so that they get
 * their own note. */
static const struct netguard_rule netguard_rules4[] = {
    {"0.0.0.0/8", "a \"this network\" address", NULL, 0},
    {"10.0.0.0/8", "a private address", NULL, 0},
    {"100.100.100.200/32", "a carrier-grade NAT address", "cloud metadata", 0},
    {"100.64.0.0/10", "a carrier-grade NAT address", NULL, 0},
    {"127.0.0.0/8", "a loopback address", NULL, 0},
    {"169.254.169.254/32", "a link-local address", "cloud metadata", 0},
    {"169.254.0.0/16", "a link-local address", NULL, 0},
    {"172.16.0.0/12", "a private address", NULL, 0},
    {"192.0.0.0/24", "an IETF protocol assignment address", NULL, 0},
    {"192.0.2.0/24", "a documentation address", NULL, 0},
    {"192.168.0.0/16", "a private address", NULL, 0},
    {"198.18.0.0/15", "a benchmarking address", NULL, 0},
    {"198.51.100.0/24", "a documentation address", NULL, 0},
    {"203.0.113.0/24", "a documentation address", NULL, 0},
    {"224.0.0.0/4", "a multicast address", NULL, 0},
    {"255.255.255.255/32", "a broadcast address", NULL, 0},
    {"240.0.0.0/4", "a reserved address", NULL, 0},
};

/* Denied IPv6 ranges, and those that carry an IPv4 address.  Only
 * 2000::/3 holds global unicast addresses, so after the named ranges
 * everything outside it is denied as reserved; the embedding prefixes
 * (all inside ::/8) come before that catch-all. */
static const struct netguard_rule netguard_rules6[] = {
    {"::/128", "an unspecified address", NULL, 0},
    {"::1/128", "a loopback address", NULL, 0},
    {"::ffff:0:0/96", NULL, "IPv4-mapped", 12},
    {"::/96", NULL, "IPv4-compatible", 12},
    {"64:ff9b::/96", NULL, "NAT64", 12},
    {"64:ff9b:1::/48", "a local-use NAT64 address", NULL, 0},
    {"2002::/16", NULL, "6to4", 2},
    {"fd00:ec2::254/128", "a unique-local address", "cloud metadata", 0},
    {"fc00::/7", "a unique-local address", NULL, 0},
    {"fe80::/10", "a link-local address", NULL, 0},
    {"fec0::/10", "a site-local address", NULL, 0},
    {"ff00::/8", "a multicast address", NULL, 0},
    {"2001:db8::/32", "a documentation address", NULL, 0},
    {"100::/64", "a discard-only address", NULL, 0},
    {"::/3", "a reserved address", NULL, 0},
    {"4000::/2", "a reserved address", NULL, 0},
    {"8000::/1", "a reserved address", NULL, 0},
};

#define NETGUARD_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Write a printf-style message to buf (n bytes) when there is room. */
#define netguard_say(buf, n, ...)                                              \
    do {                                                                       \
        if ((buf) != NULL && (n) > 0)                                          \
            snprintf((buf), (n), __VA_ARGS__);                                 \
    } while (0)

/* The number of address bytes of family. */
static int netguard_len(int family)
{
    return family == AF_INET ? 4 : 16;
}

/* The bits of byte i of an address that a prefix of prefix bits covers. */
static unsigned netguard_mask(int prefix, int i)
{
    int bits = prefix - 8 * i;
    return bits >= 8 ? 0xff : bits <= 0 ? 0 : (0xff00 >> bits) & 0xff;
}

/* Copy the entry s (len bytes) into out (NETGUARD_ENTRY bytes) for an
 * error message: control bytes become '?' and a long entry is cut with
 * "...". */
static void netguard_quote(const char *s, size_t len, char *out)
{
    size_t max = NETGUARD_ENTRY - 4, i;
    for (i = 0; i < len && i < max; i++)
        out[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
    strcpy(out + i, len > max ? "..." : "");
}

/* Parse the entry s (len bytes) into r.  Returns 0, or -1 with a
 * sentence quoting the entry in err. */
static int netguard_range_parse(const char *s, size_t len,
                                struct netguard_range *r, char *err, size_t n)
{
    char text[NETGUARD_ENTRY], shown[NETGUARD_ENTRY], why[2 * NETGUARD_ENTRY];
    if (len >= sizeof(text)) {
        snprintf(why, sizeof(why), "it is too long");
        goto bad;
    }
    memcpy(text, s, len);
    text[len] = '\0';

    char *slash = strchr(text, '/');
    if (slash != NULL)
        *slash = '\0';
    memset(r, 0, sizeof(*r));
    r->family = strchr(text, ':') != NULL ? AF_INET6 : AF_INET;
    int max = r->family == AF_INET ? 32 : 128;
    if (inet_pton(r->family, text, r->addr) != 1) {
        char addr[NETGUARD_ENTRY];
        netguard_quote(text, strlen(text), addr);
        snprintf(why, sizeof(why), "\"%s\" is not an IPv4 or IPv6 address",
                 addr);
        goto bad;
    }

    /* The prefix length: one to three digits, at most the address's bits;
     * no sign, no spaces, nothing after. */
    r->prefix = max;
    if (slash != NULL) {
        const char *p = slash + 1;
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || digits > 3 || p[digits] != '\0' || atoi(p) > max) {
            snprintf(why, sizeof(why),
                     "the prefix length must be a number from 0 to %d", max);
            goto bad;
        }
        r->prefix = atoi(p);
    }

    /* Host bits must be zero: "10.1.2.3/8" is more likely a slip than a
     * way of writing 10.0.0.0/8, so it is refused, naming the network. */
    unsigned char net[16];
    int bytes = netguard_len(r->family);
    for (int i = 0; i < bytes; i++)
        net[i] = r->addr[i] & netguard_mask(r->prefix, i);
    if (memcmp(net, r->addr, (size_t)bytes) != 0) {
        char want[INET6_ADDRSTRLEN];
        inet_ntop(r->family, net, want, sizeof(want));
        snprintf(why, sizeof(why), "host bits are set (the network is %s/%d)",
                 want, r->prefix);
        goto bad;
    }
    return 0;
bad:
    netguard_quote(s, len, shown);
    netguard_say(err, n, "bad network \"%s\": %s", shown, why);
    return -1;
}

/* Is a (an address of family) inside r?  r's host bits are zero. */
static int netguard_in(const struct netguard_range *r, int family,
                       const unsigned char *a)
{
    if (r->family != family)
        return 0;
    for (int i = 0; i < netguard_len(family); i++)
        if ((a[i] & netguard_mask(r->prefix, i)) != r->addr[i])
            return 0;
    return 1;
}

/* Does the allow list g (NULL for none) hold a? */
static int netguard_opened(const struct netguard *g, int family,
                           const unsigned char *a)
{
    for (int i = 0; g != NULL && i < g->nallow && i < NETGUARD_MAX; i++)
        if (netguard_in(&g->allow[i], family, a))
            return 1;
    return 0;
}

int netguard_parse(struct netguard *g, const char *list, char *err, size_t n)
{
    struct netguard out;
    memset(&out, 0, sizeof(out));
    memset(g, 0, sizeof(*g));
    netguard_say(err, n, "%s", "");
    for (const char *p = list; p != NULL && *p != '\0';) {
        if (*p == ',' || isspace((unsigned char)*p)) {
            p++;
            continue;
        }
        size_t len = 0;
        while (p[len] != '\0' && p[len] != ',' &&
               !isspace((unsigned char)p[len]))
            len++;
        if (out.nallow == NETGUARD_MAX) {
            char shown[NETGUARD_ENTRY];
            netguard_quote(p, len, shown);
            netguard_say(err, n,
                         "too many networks: at most %d, and \"%s\" is one "
                         "more",
                         NETGUARD_MAX, shown);
            return -1;
        }
        if (netguard_range_parse(p, len, &out.allow[out.nallow], err, n) != 0)
            return -1;
        out.nallow++;
        p += len;
    }
    *g = out;
    return 0;
}

/* Judge the address a of family (shown as text, and carried by an IPv6
 * address in the way how when how is not NULL) by the rules of its
 * family; the allow list has been consulted for a already. */
static int netguard_judge(const struct netguard *g, int family,
                          const unsigned char *a, const char *text,
                          const char *how, char *why, size_t n)
{
    const struct netguard_rule *rules =
        family == AF_INET ? netguard_rules4 : netguard_rules6;
    int nrules = family == AF_INET ? NETGUARD_N(netguard_rules4)
                                   : NETGUARD_N(netguard_rules6);
    for (int i = 0; i < nrules; i++) {
        const struct netguard_rule *rule = &rules[i];
        struct netguard_range r;
        if (netguard_range_parse(rule->net, strlen(rule->net), &r, NULL, 0) !=
            0) {
            netguard_say(why, n, "%s is not checked: bad rule \"%s\"", text,
                         rule->net);
            return 0;
        }
        if (!netguard_in(&r, family, a))
            continue;
        if (rule->what == NULL) {
            const unsigned char *v4 = a + rule->embed;
            if (netguard_opened(g, AF_INET, v4))
                return 1;
            return netguard_judge(g, AF_INET, v4, text, rule->note, why, n);
        }
        const char *note = rule->note != NULL ? rule->note : "";
        const char *comma = rule->note != NULL && how != NULL ? ", " : "";
        const char *open = rule->note != NULL || how != NULL ? " (" : "";
        netguard_say(why, n, "%s is %s%s%s%s%s%s", text, rule->what, open, note,
                     comma, how != NULL ? how : "", *open ? ")" : "");
        return 0;
    }
    return 1;
}

int netguard_allowed(const struct netguard *g, const struct sockaddr *sa,
                     char *why, size_t n)
{
    unsigned char a[16];
    sa_family_t family = AF_UNSPEC;
    netguard_say(why, n, "%s", "");

    /* Copy rather than dereference: the caller's sockaddr is trusted to
     * be whole, not to be aligned (libcurl's curl_sockaddr holds it after
     * four ints, and other callers may pack it tighter). */
    if (sa != NULL)
        memcpy(&family, (const char *)sa + offsetof(struct sockaddr, sa_family),
               sizeof(family));
    if (family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof(sin));
        memcpy(a, &sin.sin_addr, 4);
    } else if (family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof(sin6));
        memcpy(a, &sin6.sin6_addr, 16);
    } else {
        netguard_say(why, n, "address family %d is not IPv4 or IPv6",
                     (int)family);
        return 0;
    }

    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(family, a, text, sizeof(text)) == NULL)
        snprintf(text, sizeof(text), "the address");
    if (netguard_opened(g, family, a))
        return 1;
    return netguard_judge(g, family, a, text, NULL, why, n);
}
