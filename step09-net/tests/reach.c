/* Reaching the host's local services from a container: a TCP port bound to 127.0.0.1 (a
 * database, a debugger, a cloud metadata proxy, the Docker API on some setups) and an abstract
 * unix socket (no file, so no permissions: a name in the network namespace, as X11's and
 * containerd's are). Both belong to the host's network namespace, which steps 01 to 08 share.
 *
 * Usage: reach PORT ABSTRACT-NAME  (prints what each service said, or why it could not be
 *                                    reached) */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void talk(const char *what, int s, const struct sockaddr *address, socklen_t length) {
    char reply[256];
    if (s < 0 || connect(s, address, length) != 0) {
        printf("%s: %s\n", what, strerror(errno));
        return;
    }
    ssize_t n = read(s, reply, sizeof reply - 1);
    reply[n > 0 ? n : 0] = 0;
    printf("%s said: %s\n", what, reply);
    close(s);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT ABSTRACT-NAME\n", argv[0]);
        return 2;
    }
    struct sockaddr_in tcp = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    tcp.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    talk("127.0.0.1", socket(AF_INET, SOCK_STREAM, 0), (struct sockaddr *)&tcp, sizeof tcp);
    struct sockaddr_un unix_address = {.sun_family = AF_UNIX};
    size_t name = strlen(argv[2]); /* abstract: a NUL first, then the name, not NUL-terminated */
    memcpy(unix_address.sun_path + 1, argv[2], name);
    talk("@abstract", socket(AF_UNIX, SOCK_STREAM, 0), (struct sockaddr *)&unix_address,
         offsetof(struct sockaddr_un, sun_path) + 1 + name);
    return 0;
}
