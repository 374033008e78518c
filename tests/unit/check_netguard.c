/*
 * check_netguard.c: unit tests for the guard on notification addresses
 * (common/netguard.h): both edges of every range denied by default and
 * the addresses just outside them, public addresses, the sentence that
 * says why, IPv6 addresses that carry an IPv4 address, addresses as the
 * resolver produces them from odd spellings ("127.1"), allow lists in
 * both families, and every kind of error in an allow list.
 */
#include "netguard.h"

#include <arpa/inet.h>
#include <check.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

/* Assert that haystack contains needle, printing both. */
#define ck_assert_contains(haystack, needle)                                   \
    ck_assert_msg(strstr((haystack), (needle)) != NULL,                        \
                  "\"%s\" does not contain \"%s\"", (haystack), (needle))

/* An address of either family, as libcurl hands it over. */
union sockaddr_any {
    struct sockaddr sa;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr_un un;
    struct sockaddr_storage ss;
};

/* Make the sockaddr for text (a strict IPv4 or IPv6 address). */
static void sockaddr_of(const char *text, union sockaddr_any *u)
{
    memset(u, 0, sizeof(*u));
    if (strchr(text, ':') != NULL) {
        u->sin6.sin6_family = AF_INET6;
        u->sin6.sin6_port = htons(443);
        ck_assert_msg(inet_pton(AF_INET6, text, &u->sin6.sin6_addr) == 1,
                      "bad test address %s", text);
    } else {
        u->sin.sin_family = AF_INET;
        u->sin.sin_port = htons(443);
        ck_assert_msg(inet_pton(AF_INET, text, &u->sin.sin_addr) == 1,
                      "bad test address %s", text);
    }
}

/* Judge text under g (NULL for no allow list); why gets the reason. */
static int judge(const struct netguard *g, const char *text, char *why,
                 size_t n)
{
    union sockaddr_any u;
    sockaddr_of(text, &u);
    return netguard_allowed(g, &u.sa, why, n);
}

/* Assert that g allows text, and that why is then empty. */
static void allowed(const struct netguard *g, const char *text)
{
    char why[256] = "unset";
    ck_assert_msg(judge(g, text, why, sizeof(why)) == 1, "%s denied: %s", text,
                  why);
    ck_assert_str_eq(why, "");
}

/* Assert that g denies text with a reason containing says. */
static void denied(const struct netguard *g, const char *text, const char *says)
{
    char why[256] = "";
    ck_assert_msg(judge(g, text, why, sizeof(why)) == 0, "%s allowed", text);
    ck_assert_contains(why, says);
}

/* Assert that g denies text saying exactly says. */
static void denied_exactly(const struct netguard *g, const char *text,
                           const char *says)
{
    char why[256] = "";
    ck_assert_msg(judge(g, text, why, sizeof(why)) == 0, "%s allowed", text);
    ck_assert_str_eq(why, says);
}

/* Parse list into g; it must be valid. */
static void parse_ok(struct netguard *g, const char *list)
{
    char err[256] = "";
    ck_assert_msg(netguard_parse(g, list, err, sizeof(err)) == 0,
                  "\"%s\" refused: %s", list, err);
}

/* Parse list; it must fail, leaving g empty, with a message containing
 * names (the bad entry) and says. */
static void parse_bad(const char *list, const char *names, const char *says)
{
    struct netguard g;
    char err[256] = "";
    g.nallow = 7;
    ck_assert_msg(netguard_parse(&g, list, err, sizeof(err)) == -1,
                  "\"%s\" accepted", list);
    ck_assert_int_eq(g.nallow, 0);
    ck_assert_contains(err, names);
    ck_assert_contains(err, says);
}

/* ---- the ranges denied by default ---- */

/* An address and what is said of it: NULL when it is allowed. */
struct edge {
    const char *addr;
    const char *says;
};

/* Every denied range's first and last address and, where there is one
 * that is allowed, the addresses just outside. */
static const struct edge edges[] = {
    {"0.0.0.0", "0.0.0.0 is a \"this network\" address"},
    {"0.255.255.255", "\"this network\""},
    {"1.0.0.0", NULL},
    {"9.255.255.255", NULL},
    {"10.0.0.0", "10.0.0.0 is a private address"},
    {"10.255.255.255", "a private address"},
    {"11.0.0.0", NULL},
    {"100.63.255.255", NULL},
    {"100.64.0.0", "100.64.0.0 is a carrier-grade NAT address"},
    {"100.127.255.255", "a carrier-grade NAT address"},
    {"100.100.100.200", "carrier-grade NAT address (cloud metadata)"},
    {"100.128.0.0", NULL},
    {"126.255.255.255", NULL},
    {"127.0.0.0", "127.0.0.0 is a loopback address"},
    {"127.255.255.255", "a loopback address"},
    {"128.0.0.0", NULL},
    {"169.253.255.255", NULL},
    {"169.254.0.0", "169.254.0.0 is a link-local address"},
    {"169.254.169.253", "a link-local address"},
    {"169.254.169.255", "a link-local address"},
    {"169.254.255.255", "a link-local address"},
    {"169.255.0.0", NULL},
    {"172.15.255.255", NULL},
    {"172.16.0.0", "172.16.0.0 is a private address"},
    {"172.31.255.255", "a private address"},
    {"172.32.0.0", NULL},
    {"191.255.255.255", NULL},
    {"192.0.0.0", "192.0.0.0 is an IETF protocol assignment address"},
    {"192.0.0.255", "an IETF protocol assignment address"},
    {"192.0.1.0", NULL},
    {"192.0.1.255", NULL},
    {"192.0.2.0", "192.0.2.0 is a documentation address"},
    {"192.0.2.255", "a documentation address"},
    {"192.0.3.0", NULL},
    {"192.167.255.255", NULL},
    {"192.168.0.0", "192.168.0.0 is a private address"},
    {"192.168.255.255", "a private address"},
    {"192.169.0.0", NULL},
    {"198.17.255.255", NULL},
    {"198.18.0.0", "198.18.0.0 is a benchmarking address"},
    {"198.19.255.255", "a benchmarking address"},
    {"198.20.0.0", NULL},
    {"198.51.99.255", NULL},
    {"198.51.100.0", "198.51.100.0 is a documentation address"},
    {"198.51.100.255", "a documentation address"},
    {"198.51.101.0", NULL},
    {"203.0.112.255", NULL},
    {"203.0.113.0", "203.0.113.0 is a documentation address"},
    {"203.0.113.255", "a documentation address"},
    {"203.0.114.0", NULL},
    {"223.255.255.255", NULL},
    {"224.0.0.0", "224.0.0.0 is a multicast address"},
    {"239.255.255.255", "a multicast address"},
    {"240.0.0.0", "240.0.0.0 is a reserved address"},
    {"255.255.255.254", "a reserved address"},
    {"255.255.255.255", "255.255.255.255 is a broadcast address"},

    {"::", ":: is an unspecified address"},
    {"::1", "::1 is a loopback address"},
    {"::2", "::2 is a \"this network\" address (IPv4-compatible)"},
    {"::ffff:ffff", "::255.255.255.255 is a broadcast address "
                    "(IPv4-compatible)"},
    {"::1:0:0", "::1:0:0 is a reserved address"},
    {"::fffe:ffff:ffff", "a reserved address"},
    {"::ffff:0.0.0.0", "::ffff:0.0.0.0 is a \"this network\" address "
                       "(IPv4-mapped)"},
    {"::ffff:255.255.255.255", "a broadcast address (IPv4-mapped)"},
    {"::1:0:0:0", "a reserved address"},
    {"64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", "a reserved address"},
    {"64:ff9b::", "64:ff9b:: is a \"this network\" address (NAT64)"},
    {"64:ff9b::ffff:ffff", "a broadcast address (NAT64)"},
    {"64:ff9b::1:0:0", "a reserved address"},
    {"64:ff9b:1::", "64:ff9b:1:: is a local-use NAT64 address"},
    {"64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "a local-use NAT64 address"},
    {"100::", "100:: is a discard-only address"},
    {"100::ffff:ffff:ffff:ffff", "a discard-only address"},
    {"100:0:0:1::", "a reserved address"},
    {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "a reserved address"},
    {"2000::", NULL},
    {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
    {"2001:db8::", "2001:db8:: is a documentation address"},
    {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "a documentation address"},
    {"2001:db9::", NULL},
    {"2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
    {"2002::", "2002:: is a \"this network\" address (6to4)"},
    {"2002:7f00:1::", "2002:7f00:1:: is a loopback address (6to4)"},
    {"2002:a9fe:a9fe::1", "a link-local address (cloud metadata, 6to4)"},
    {"2002:ffff:ffff::", "a broadcast address (6to4)"},
    {"2002:808:808::1", NULL},
    {"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
    {"4000::", "4000:: is a reserved address"},
    {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "a reserved address"},
    {"fc00::", "fc00:: is a unique-local address"},
    {"fd00:ec2::253", "a unique-local address"},
    {"fd00:ec2::254", "fd00:ec2::254 is a unique-local address "
                      "(cloud metadata)"},
    {"fd00:ec2::255", "a unique-local address"},
    {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "a unique-local address"},
    {"fe00::", "a reserved address"},
    {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "a reserved address"},
    {"fe80::", "fe80:: is a link-local address"},
    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "a link-local address"},
    {"fec0::", "fec0:: is a site-local address"},
    {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "a site-local address"},
    {"ff00::", "ff00:: is a multicast address"},
    {"ff02::1", "a multicast address"},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "a multicast address"},
};

START_TEST(test_default_edges)
{
    const struct edge *e = &edges[_i];
    if (e->says == NULL)
        allowed(NULL, e->addr);
    else
        denied(NULL, e->addr, e->says);
}
END_TEST

START_TEST(test_public_allowed)
{
    static const char *const pub[] = {
        "8.8.8.8",          "1.1.1.1",         "93.184.216.34",
        "2606:4700::1111",  "2a00:1450::200e", "::ffff:8.8.8.8",
        "64:ff9b::808:808", "::8.8.8.8",       "2002:101:101::",
    };
    for (size_t i = 0; i < sizeof(pub) / sizeof(pub[0]); i++)
        allowed(NULL, pub[i]);
}
END_TEST

START_TEST(test_why_sentences)
{
    denied_exactly(NULL, "127.0.0.1", "127.0.0.1 is a loopback address");
    denied_exactly(NULL, "10.1.2.3", "10.1.2.3 is a private address");
    denied_exactly(NULL, "169.254.169.254",
                   "169.254.169.254 is a link-local address (cloud metadata)");
    denied_exactly(NULL, "::ffff:127.0.0.1",
                   "::ffff:127.0.0.1 is a loopback address (IPv4-mapped)");
    denied_exactly(NULL, "::ffff:10.0.0.1",
                   "::ffff:10.0.0.1 is a private address (IPv4-mapped)");
    denied_exactly(NULL, "::ffff:169.254.169.254",
                   "::ffff:169.254.169.254 is a link-local address "
                   "(cloud metadata, IPv4-mapped)");
    denied_exactly(NULL, "64:ff9b::7f00:1",
                   "64:ff9b::7f00:1 is a loopback address (NAT64)");
    denied_exactly(NULL, "::127.0.0.1",
                   "::127.0.0.1 is a loopback address (IPv4-compatible)");
    denied_exactly(NULL, "::1", "::1 is a loopback address");
}
END_TEST

START_TEST(test_why_buffers)
{
    union sockaddr_any u;
    char why[8];
    sockaddr_of("169.254.169.254", &u);
    ck_assert_int_eq(netguard_allowed(NULL, &u.sa, NULL, 0), 0);
    ck_assert_int_eq(netguard_allowed(NULL, &u.sa, why, 0), 0);
    memset(why, 'x', sizeof(why));
    ck_assert_int_eq(netguard_allowed(NULL, &u.sa, why, sizeof(why)), 0);
    ck_assert_str_eq(why, "169.254");
    sockaddr_of("8.8.8.8", &u);
    ck_assert_int_eq(netguard_allowed(NULL, &u.sa, NULL, 0), 1);
}
END_TEST

/* Addresses as getaddrinfo produces them: it reads the loose spellings
 * inet_aton accepts ("127.1", hex, octal, one number), but what the guard
 * sees is the sockaddr, 127.0.0.1. */
START_TEST(test_resolver_spellings)
{
    static const char *const names[] = {
        "127.1",      "127.0.1",       "0x7f.1",
        "0x7f000001", "2130706433",    "0177.0.0.1",
        "127.0.0.1",  "::ffff:7f00:1", "::ffff:127.1.2.3",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof(hints));
        hints.ai_flags = AI_NUMERICHOST;
        hints.ai_socktype = SOCK_STREAM;
        int rc = getaddrinfo(names[i], "443", &hints, &res);
        ck_assert_msg(rc == 0, "%s: %s", names[i], gai_strerror(rc));
        for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
            char why[256] = "";
            ck_assert_msg(
                netguard_allowed(NULL, ai->ai_addr, why, sizeof(why)) == 0,
                "%s allowed", names[i]);
            ck_assert_contains(why, "is a loopback address");
        }
        freeaddrinfo(res);
    }
}
END_TEST

/* The sockaddr need not be aligned: libcurl's curl_sockaddr holds it
 * after four ints, and the guard copies rather than casts. */
START_TEST(test_unaligned_sockaddr)
{
    union sockaddr_any u;
    unsigned char buf[sizeof(u) + 8];
    char why[256] = "";
    sockaddr_of("fd00:ec2::254", &u);
    memcpy(buf + 1, &u, sizeof(u));
    ck_assert_int_eq(netguard_allowed(NULL, (const struct sockaddr *)(buf + 1),
                                      why, sizeof(why)),
                     0);
    ck_assert_str_eq(why, "fd00:ec2::254 is a unique-local address "
                          "(cloud metadata)");
}
END_TEST

START_TEST(test_other_families)
{
    union sockaddr_any u;
    char why[256] = "";
    memset(&u, 0, sizeof(u));
    u.un.sun_family = AF_UNIX;
    snprintf(u.un.sun_path, sizeof(u.un.sun_path), "%s", "sock");
    ck_assert_int_eq(netguard_allowed(NULL, &u.sa, why, sizeof(why)), 0);
    ck_assert_contains(why, "is not IPv4 or IPv6");

    struct netguard g;
    parse_ok(&g, "0.0.0.0/0 ::/0");
    ck_assert_int_eq(netguard_allowed(&g, &u.sa, why, sizeof(why)), 0);
    u.sa.sa_family = AF_UNSPEC;
    ck_assert_int_eq(netguard_allowed(&g, &u.sa, why, sizeof(why)), 0);
    ck_assert_int_eq(netguard_allowed(&g, NULL, why, sizeof(why)), 0);
}
END_TEST

/* ---- allow lists ---- */

START_TEST(test_allow_one_loopback)
{
    struct netguard g;
    parse_ok(&g, "127.0.0.2/32");
    allowed(&g, "127.0.0.2");
    allowed(&g, "::ffff:127.0.0.2");
    allowed(&g, "64:ff9b::7f00:2");
    denied_exactly(&g, "127.0.0.1", "127.0.0.1 is a loopback address");
    denied(&g, "127.0.0.3", "loopback");
    denied(&g, "::ffff:127.0.0.1", "loopback address (IPv4-mapped)");
    denied(&g, "::1", "loopback");
    denied(&g, "10.0.0.1", "private");
}
END_TEST

START_TEST(test_allow_ipv4_ranges)
{
    struct netguard g;
    parse_ok(&g, "10.0.0.0/8, 169.254.169.0/25");
    allowed(&g, "10.0.0.0");
    allowed(&g, "10.255.255.255");
    allowed(&g, "::ffff:10.1.2.3");
    allowed(&g, "2002:a01:203::");
    allowed(&g, "169.254.169.127");
    denied(&g, "169.254.169.128", "link-local");
    denied(&g, "169.254.169.254", "cloud metadata");
    denied(&g, "172.16.0.1", "private");
    /* An IPv4 range does not open the rest of IPv6. */
    denied(&g, "fd0a::1", "unique-local");

    parse_ok(&g, "0.0.0.0/0");
    allowed(&g, "127.0.0.1");
    allowed(&g, "255.255.255.255");
    allowed(&g, "::ffff:169.254.169.254");
    denied(&g, "::1", "loopback");
    denied(&g, "fe80::1", "link-local");
}
END_TEST

START_TEST(test_allow_ipv6_ranges)
{
    struct netguard g;
    parse_ok(&g, "fd00::/8 2001:db8:1::/48 ::1");
    allowed(&g, "fd00::");
    allowed(&g, "fd12:3456::1");
    allowed(&g, "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    denied(&g, "fcff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "unique-local");
    allowed(&g, "2001:db8:1::");
    allowed(&g, "2001:db8:1:ffff:ffff:ffff:ffff:ffff");
    denied(&g, "2001:db8:2::", "documentation");
    denied(&g, "2001:db8::ffff", "documentation");
    allowed(&g, "::1");
    denied(&g, "::2", "IPv4-compatible");
    /* An IPv6 range does not open IPv4, nor its loopback. */
    denied(&g, "127.0.0.1", "loopback");

    /* An IPv6 range over IPv4-mapped addresses opens them as written. */
    parse_ok(&g, "::ffff:10.0.0.0/104, fe80::/64");
    allowed(&g, "::ffff:10.200.0.1");
    denied(&g, "10.200.0.1", "private");
    allowed(&g, "::ffff:11.0.0.0");
    denied(&g, "::ffff:172.16.0.1", "private address (IPv4-mapped)");
    allowed(&g, "fe80::1");
    denied(&g, "fe80:0:0:1::1", "link-local");

    parse_ok(&g, "::/0");
    allowed(&g, "::1");
    allowed(&g, "ff02::1");
    allowed(&g, "::ffff:127.0.0.1");
    denied(&g, "127.0.0.1", "loopback");
}
END_TEST

START_TEST(test_allow_odd_prefixes)
{
    struct netguard g;
    parse_ok(&g, "100.64.0.0/13 fe80::/9");
    allowed(&g, "100.71.255.255");
    denied(&g, "100.72.0.0", "carrier-grade NAT");
    allowed(&g, "fe80::");
    allowed(&g, "febf::1");
    allowed(&g, "fec0::1");
    allowed(&g, "feff:ffff::1");
    denied(&g, "fe7f::1", "reserved");
}
END_TEST

/* ---- parsing ---- */

START_TEST(test_parse_lists)
{
    struct netguard g;
    unsigned char want[16];

    parse_ok(&g, " 10.0.0.0/8,192.168.0.0/16\tfd00::/8\n,, 127.0.0.2 ,");
    ck_assert_int_eq(g.nallow, 4);
    ck_assert_int_eq(g.allow[0].family, AF_INET);
    ck_assert_int_eq(g.allow[0].prefix, 8);
    inet_pton(AF_INET, "10.0.0.0", want);
    ck_assert_mem_eq(g.allow[0].addr, want, 4);
    ck_assert_int_eq(g.allow[1].prefix, 16);
    ck_assert_int_eq(g.allow[2].family, AF_INET6);
    ck_assert_int_eq(g.allow[2].prefix, 8);
    inet_pton(AF_INET6, "fd00::", want);
    ck_assert_mem_eq(g.allow[2].addr, want, 16);
    ck_assert_int_eq(g.allow[3].family, AF_INET);
    ck_assert_int_eq(g.allow[3].prefix, 32);

    parse_ok(&g, "2001:db8::1");
    ck_assert_int_eq(g.nallow, 1);
    ck_assert_int_eq(g.allow[0].prefix, 128);
    parse_ok(&g, "0.0.0.0/0,::/0,1.2.3.4/32,::ffff:1.2.3.4/128");
    ck_assert_int_eq(g.nallow, 4);
    ck_assert_int_eq(g.allow[0].prefix, 0);

    parse_ok(&g, "");
    ck_assert_int_eq(g.nallow, 0);
    parse_ok(&g, " ,\t, ");
    ck_assert_int_eq(g.nallow, 0);
    ck_assert_int_eq(netguard_parse(&g, NULL, NULL, 0), 0);
    ck_assert_int_eq(g.nallow, 0);
}
END_TEST

START_TEST(test_parse_errors)
{
    parse_bad("1.2.3.4/33", "\"1.2.3.4/33\"", "from 0 to 32");
    parse_bad("::/129", "\"::/129\"", "from 0 to 128");
    parse_bad("10.0.0.0/8,1.2.3.4/", "\"1.2.3.4/\"", "prefix length");
    parse_bad("1.2.3.4/-1", "\"1.2.3.4/-1\"", "prefix length");
    parse_bad("1.2.3.4/+8", "\"1.2.3.4/+8\"", "prefix length");
    parse_bad("1.2.3.4/8x", "\"1.2.3.4/8x\"", "prefix length");
    parse_bad("1.2.3.4/0032", "\"1.2.3.4/0032\"", "prefix length");
    parse_bad("1.2.3.4/1/2", "\"1.2.3.4/1/2\"", "prefix length");
    parse_bad("abc", "\"abc\"", "not an IPv4 or IPv6 address");
    parse_bad("a\tb", "\"a\"", "not an IPv4 or IPv6 address");
    parse_bad("ab\001c/8", "\"ab?c/8\": \"ab?c\" is not", "IPv4");
    parse_bad("/8", "\"/8\"", "not an IPv4 or IPv6 address");
    parse_bad("127.1", "\"127.1\"", "not an IPv4 or IPv6 address");
    parse_bad("0x7f.0.0.1", "\"0x7f.0.0.1\"", "not an IPv4 or IPv6 address");
    parse_bad("1.2.3.256", "\"1.2.3.256\"", "not an IPv4 or IPv6 address");
    parse_bad("fe80::1%eth0", "\"fe80::1%eth0\"", "not an IPv4 or IPv6");
    parse_bad("1:2:3:4:5:6:7:8:9", "\"1:2:3:4:5:6:7:8:9\"", "not an IPv4");
    parse_bad("10.0.0.0/8;192.168.0.0/16", "\"10.0.0.0/8;192.168.0.0/16\"",
              "prefix length");
    parse_bad("10.1.2.3/8", "\"10.1.2.3/8\"", "host bits are set");
    parse_bad("10.1.2.3/8", "10.0.0.0/8", "the network is");
    parse_bad("fd00::1/8", "\"fd00::1/8\"", "the network is fd00::/8");
    parse_bad("169.254.169.254/30", "169.254.169.254/30",
              "the network is 169.254.169.252/30");
    parse_bad("1.2.3.4/\x01", "\"1.2.3.4/?\"", "prefix length");

    char longer[200];
    memset(longer, '1', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    parse_bad(longer, "\"111111", "...\": it is too long");
}
END_TEST

START_TEST(test_parse_too_many)
{
    char list[NETGUARD_MAX * 20 + 32] = "", err[256];
    struct netguard g;
    for (int i = 0; i < NETGUARD_MAX; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list),
                 "10.0.%d.0/24,", i);
    parse_ok(&g, list);
    ck_assert_int_eq(g.nallow, NETGUARD_MAX);
    allowed(&g, "10.0.31.255");
    denied(&g, "10.0.32.0", "private");

    strcat(list, " 10.0.99.0/24");
    parse_bad(list, "\"10.0.99.0/24\"", "at most 32");

    /* A failed parse leaves nothing open, whatever g held before. */
    parse_ok(&g, "127.0.0.0/8");
    ck_assert_int_eq(netguard_parse(&g, "127.0.0.1 abc", err, sizeof(err)), -1);
    ck_assert_int_eq(g.nallow, 0);
    denied(&g, "127.0.0.1", "loopback");
}
END_TEST

START_TEST(test_parse_err_buffers)
{
    struct netguard g;
    char err[8];
    ck_assert_int_eq(netguard_parse(&g, "abc", NULL, 0), -1);
    ck_assert_int_eq(netguard_parse(&g, "abc", err, 0), -1);
    ck_assert_int_eq(netguard_parse(&g, "abc", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "bad net");
    ck_assert_int_eq(netguard_parse(&g, "::1", err, sizeof(err)), 0);
    ck_assert_str_eq(err, "");
}
END_TEST

static Suite *netguard_suite(void)
{
    Suite *s = suite_create("netguard");
    TCase *tc = tcase_create("defaults");
    tcase_add_loop_test(tc, test_default_edges, 0,
                        (int)(sizeof(edges) / sizeof(edges[0])));
    tcase_add_test(tc, test_public_allowed);
    tcase_add_test(tc, test_why_sentences);
    tcase_add_test(tc, test_why_buffers);
    tcase_add_test(tc, test_resolver_spellings);
    tcase_add_test(tc, test_unaligned_sockaddr);
    tcase_add_test(tc, test_other_families);
    suite_add_tcase(s, tc);
    tc = tcase_create("allow");
    tcase_add_test(tc, test_allow_one_loopback);
    tcase_add_test(tc, test_allow_ipv4_ranges);
    tcase_add_test(tc, test_allow_ipv6_ranges);
    tcase_add_test(tc, test_allow_odd_prefixes);
    suite_add_tcase(s, tc);
    tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_lists);
    tcase_add_test(tc, test_parse_errors);
    tcase_add_test(tc, test_parse_too_many);
    tcase_add_test(tc, test_parse_err_buffers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(netguard_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
