/* TIOCSTI: push characters into a terminal's input queue, as if typed on its keyboard.
 * Run by step 08's attack tests in a container. Whoever reads that terminal next (the user's
 * shell, once the container has ended) reads them as typed by the user.
 *
 * The kernel allows it on the caller's controlling terminal, or with CAP_SYS_ADMIN in the
 * host's user namespace (dev.tty.legacy_tiocsti=1; with 0, never without the capability).
 * Tried on stdin, stdout, stderr and /dev/tty, each named by its device number so that the
 * test knows which terminal it was.
 *
 * Usage: tiocsti TEXT REPORT-FILE */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void inject(FILE *report, const char *name, int fd, const char *text) {
    struct stat st;
    if (fd < 0) {
        fprintf(report, "%s: cannot open: %s\n", name, strerror(errno));
        return;
    }
    if (fstat(fd, &st) != 0 || !isatty(fd)) {
        fprintf(report, "%s: not a terminal\n", name);
        return;
    }
    int refused = 0;
    for (const char *c = text; *c && !refused; c++)
        if (ioctl(fd, TIOCSTI, c) != 0)
            refused = errno;
    if (!refused && ioctl(fd, TIOCSTI, "\n") != 0)
        refused = errno;
    fprintf(report, "%s (tty %u:%u): %s%s\n", name, major(st.st_rdev), minor(st.st_rdev),
            refused ? "refused: " : "injected", refused ? strerror(refused) : "");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s TEXT REPORT-FILE\n", argv[0]);
        return 2;
    }
    FILE *report = fopen(argv[2], "w");
    if (!report) {
        perror(argv[2]);
        return 2;
    }
    inject(report, "fd 0", 0, argv[1]);
    inject(report, "fd 1", 1, argv[1]);
    inject(report, "fd 2", 2, argv[1]);
    inject(report, "/dev/tty", open("/dev/tty", O_RDWR | O_NOCTTY), argv[1]);
    fclose(report);
    return 0;
}
