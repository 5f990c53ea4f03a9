/* A disk of the host's, from inside a container: make its device node and mount it. A device
 * node is a door to a driver, whoever made it and wherever it is: the container's /dev does
 * not need to list the disk. Mounted read-only here, and the test's disk is a read-only loop
 * device: nothing is written.
 *
 * Usage: hostdisk MAJOR MINOR FILE   (prints FILE of the disk's filesystem, or why not) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MAJOR MINOR FILE\n", argv[0]);
        return 2;
    }
    /* On /dev: the container's /tmp is mounted nodev, its /dev is not. */
    if (mknod("/dev/hostdisk", S_IFBLK | 0600, makedev(atoi(argv[1]), atoi(argv[2]))) != 0) {
        printf("mknod /dev/hostdisk: %s\n", strerror(errno));
        return 1;
    }
    mkdir("/tmp/disk", 0700);
    if (mount("/dev/hostdisk", "/tmp/disk", "ext4", MS_RDONLY, NULL) != 0) {
        printf("mount /dev/hostdisk: %s\n", strerror(errno));
        return 1;
    }
    char path[4096], text[4096];
    snprintf(path, sizeof path, "/tmp/disk/%s", argv[3]);
    FILE *file = fopen(path, "r");
    size_t n = file ? fread(text, 1, sizeof text, file) : 0;
    printf("read from the host's disk: %.*s", (int)n, text);
    return 0;
}
