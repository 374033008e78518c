/*
 * netguard.h: which addresses notifications may connect to.  By default
 * every address is allowed except loopback, private, link-local (cloud
 * metadata included), unique-local, carrier-grade NAT, "this network",
 * multicast, broadcast and reserved ranges, in IPv4 and IPv6, IPv4-mapped,
 * -compatible, NAT64 (64:ff9b::/96) and 6to4 IPv6 addresses judged as the
 * IPv4 they carry; IPv6 outside global unicast (2000::/3) is reserved.
 * An allow list of CIDR ranges (the notify_allow_networks option) opens
 * ranges; an IPv4 range also opens the IPv6 addresses that carry an
 * address inside it (10.0.0.0/8 opens ::ffff:10.1.2.3).
 *
 * The dispatcher calls netguard_allowed() with the address libcurl is
 * about to connect to (CURLOPT_OPENSOCKETFUNCTION), so it judges what the
 * name resolved to, not the text of the URL.  The caller owns struct
 * netguard; nothing here allocates.  netguard_allowed() only reads g and
 * may be called from any number of threads at once.
 */
#ifndef TT_NETGUARD_H
#define TT_NETGUARD_H

#include <stddef.h>
#include <sys/socket.h>

#define NETGUARD_MAX 32 /* allowed ranges at most */

struct netguard_range {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network byte order, host bits zero */
    int prefix;             /* 0..32 or 0..128 */
};

struct netguard {
    struct netguard_range allow[NETGUARD_MAX];
    int nallow;
};

/* Parse a comma- or space-separated CIDR list ("127.0.0.2/32,
 * fd00::/8"; a bare address is /32 or /128; "" or NULL is none) into g.
 * Addresses are strict (inet_pton: "127.1" is refused) and host bits must
 * be zero ("10.1.2.3/8" is refused, naming 10.0.0.0/8).  Returns 0, or -1
 * with a sentence naming the bad entry in err (n bytes; err may be NULL)
 * and g left empty. */
int netguard_parse(struct netguard *g, const char *list, char *err, size_t n);

/* May a connection go to sa (AF_INET or AF_INET6, a whole sockaddr_in
 * or sockaddr_in6 as its family says; others: no)?  g NULL means no allow
 * list.  1 yes, 0 no; why (n bytes, may be NULL) gets "" when yes and
 * e.g. "127.0.0.1 is a loopback address" or "::ffff:127.0.0.1 is a
 * loopback address (IPv4-mapped)" when no. */
int netguard_allowed(const struct netguard *g, const struct sockaddr *sa,
                     char *why, size_t n);

#endif
