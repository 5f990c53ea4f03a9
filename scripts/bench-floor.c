/* The floor of scripts/bench: a container start with nothing but the system calls that cannot
 * be avoided. clone(2) with the namespace flags asked for, exec the command in the child
 * (after chroot(2) into DIR when asked, so that it runs the rootfs's binary as the steps from
 * 06 on do), wait for it in the parent. No mounts, no cgroup, no maps, no error messages.
 *
 * Usage: bench-floor [-u] [-i] [-p] [-m] [-U] [-n] [-r DIR] COMMAND [ARG]...
 *   -u UTS, -i IPC, -p PID, -m mount, -U user, -n network namespace
 * Exit: the command's exit code; 125 when clone or wait failed, 127 when exec did.
 * Built by scripts/bench with `gcc -O2`.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define STACK_SIZE (1024 * 1024)

static char **command;
static const char *root;

static int child(void *arg)
{
	(void)arg;
	if (root && (chroot(root) != 0 || chdir("/") != 0))
		_exit(125);
	execv(command[0], command);
	_exit(127);
}

int main(int argc, char **argv)
{
	int flags = SIGCHLD, opt, status;
	while ((opt = getopt(argc, argv, "+uipmUnr:")) != -1) {
		switch (opt) {
		case 'u': flags |= CLONE_NEWUTS; break;
		case 'i': flags |= CLONE_NEWIPC; break;
		case 'p': flags |= CLONE_NEWPID; break;
		case 'm': flags |= CLONE_NEWNS; break;
		case 'U': flags |= CLONE_NEWUSER; break;
		case 'n': flags |= CLONE_NEWNET; break;
		case 'r': root = optarg; break;
		default: return 125;
		}
	}
	if (optind >= argc)
		return 125;
	command = argv + optind;
	char *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return 125;
	pid_t pid = clone(child, stack + STACK_SIZE, flags, NULL);
	if (pid == -1 || waitpid(pid, &status, 0) != pid)
		return 125;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
