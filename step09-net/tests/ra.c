/* An IPv6 router advertisement, sent from a container onto its bridge: "I am a router, and
 * fdXX::/64 is your prefix". Root in the container has CAP_NET_RAW in its own network
 * namespace, which is all a raw ICMPv6 socket needs. Every interface on the bridge that accepts
 * router advertisements (accept_ra, the kernel's default) takes the prefix as on-link, and
 * with autoconf an address in it: the neighbours' and the host's bridge. A router lifetime of 0
 * keeps the test from offering a default route, and the prefix lasts 60 s at most.
 * The packet goes to ff02::1 (all nodes on this link) with hop limit 255: it never leaves the
 * bridge.
 *
 * Usage: ra INTERFACE PREFIX   (PREFIX as fd77:6b73:1:2::; sends 12 times, 250 ms apart) */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s INTERFACE PREFIX\n", argv[0]);
        return 2;
    }
    struct {
        struct nd_router_advert ra;
        struct nd_opt_prefix_info prefix;
    } __attribute__((packed)) packet;
    memset(&packet, 0, sizeof packet);
    packet.ra.nd_ra_type = ND_ROUTER_ADVERT;
    packet.ra.nd_ra_curhoplimit = 64;
    packet.ra.nd_ra_router_lifetime = 0; /* not a default router */
    packet.prefix.nd_opt_pi_type = ND_OPT_PREFIX_INFORMATION;
    packet.prefix.nd_opt_pi_len = 4; /* in units of 8 bytes */
    packet.prefix.nd_opt_pi_prefix_len = 64;
    packet.prefix.nd_opt_pi_flags_reserved = ND_OPT_PI_FLAG_ONLINK | ND_OPT_PI_FLAG_AUTO;
    packet.prefix.nd_opt_pi_valid_time = htonl(60);
    packet.prefix.nd_opt_pi_preferred_time = htonl(30);
    if (inet_pton(AF_INET6, argv[2], &packet.prefix.nd_opt_pi_prefix) != 1) {
        fprintf(stderr, "%s: not an IPv6 prefix\n", argv[2]);
        return 2;
    }
    int s = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6); /* the kernel fills in the checksum */
    if (s < 0) {
        perror("socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)");
        return 1;
    }
    int hops = 255; /* receivers drop a router advertisement that crossed a router */
    setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops);
    struct sockaddr_in6 all_nodes = {.sin6_family = AF_INET6, .sin6_scope_id = if_nametoindex(argv[1])};
    inet_pton(AF_INET6, "ff02::1", &all_nodes.sin6_addr);
    int sent = 0;
    for (int i = 0; i < 12; i++) {
        /* fails until the interface's link-local address has passed duplicate detection */
        if (sendto(s, &packet, sizeof packet, 0, (struct sockaddr *)&all_nodes, sizeof all_nodes) > 0)
            sent++;
        usleep(250 * 1000);
    }
    printf("router advertisements sent: %d of 12, prefix %s/64\n", sent, argv[2]);
    return sent > 0 ? 0 : 1;
}
