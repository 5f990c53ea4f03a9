/* What an attacker in the container tries, one attempt per subcommand; each prints one line
 * saying whether the kernel let it through. Built static by the tests, run inside the container.
 *
 *   attack add_key           add a key to the process keyring (add_key(2))
 *   attack keyctl            join a new session keyring (keyctl(2))
 *   attack tiocsti           type a character into a terminal's input (ioctl TIOCSTI), on a
 *                            pty of its own, which it makes its controlling terminal
 *   attack ids               print the real and effective uid (installed setuid root by a test)
 *   attack as UID CMD [ARG]  become UID (and gid) and exec CMD
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEY_SPEC_PROCESS_KEYRING -2
#define KEYCTL_JOIN_SESSION_KEYRING 1

static int report(const char *what, long rc) {
    if (rc < 0) {
        printf("%s: refused: %s\n", what, strerror(errno));
        return 1;
    }
    printf("%s: allowed\n", what);
    return 0;
}

static int tiocsti(void) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) {
        printf("tiocsti: no pty: %s\n", strerror(errno));
        return 2;
    }
    pid_t child = fork();
    if (child == 0) {
        setsid();
        int slave = open(ptsname(master), O_RDWR); /* the session leader's first tty: its ctty */
        if (slave < 0) {
            printf("tiocsti: cannot open the pty: %s\n", strerror(errno));
            _exit(2);
        }
        char c = 'x';
        _exit(report("tiocsti", ioctl(slave, TIOCSTI, &c)));
    }
    int status;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "";
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(what, "add_key"))
        return report("add_key", syscall(SYS_add_key, "user", "workshop-attack", "secret", 6,
                                         KEY_SPEC_PROCESS_KEYRING));
    if (!strcmp(what, "keyctl"))
        return report("keyctl", syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, "workshop-attack"));
    if (!strcmp(what, "tiocsti"))
        return tiocsti();
    if (!strcmp(what, "ids")) {
        printf("uid=%d euid=%d\n", (int)getuid(), (int)geteuid());
        return 0;
    }
    if (!strcmp(what, "as") && argc > 3) {
        int id = atoi(argv[2]);
        if (setresgid(id, id, id) < 0 || setresuid(id, id, id) < 0) {
            printf("as: cannot become %d: %s\n", id, strerror(errno));
            return 2;
        }
        execv(argv[3], argv + 3);
        printf("as: exec %s: %s\n", argv[3], strerror(errno));
        return 2;
    }
    fprintf(stderr, "usage: attack add_key|keyctl|tiocsti|ids|as UID CMD [ARG]...\n");
    return 2;
}
