/* See daemon_notify.h. The protocol is one datagram of text to a unix
 * socket: written here rather than linking libsystemd, which would be one
 * more dependency (and a library that takes over far more) for a dozen
 * lines that most runs never use. */
#include "daemon_notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_un addr;
static socklen_t addr_len; /* 0: no notify socket */

void daemon_notify_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");

	if (!path)
		return;
	size_t n = strlen(path);
	/* An absolute path, or '@' for a name in the abstract namespace. */
	if ((path[0] != '/' && path[0] != '@') || n < 2 || n >= sizeof(addr.sun_path)) {
		fprintf(stderr, "furing: NOTIFY_SOCKET=%s is not a unix socket address: not notifying\n", path);
	} else {
		addr.sun_family = AF_UNIX;
		memcpy(addr.sun_path, path, n);
		if (path[0] == '@')
			addr.sun_path[0] = 0;
		/* An abstract name's length is exact, without a terminator. */
		addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
	}
	unsetenv("NOTIFY_SOCKET");
}

void daemon_notify(const char *state)
{
	if (!addr_len)
		return;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len) < 0)
		fprintf(stderr, "furing: cannot notify the service manager (%s): %s\n", state, strerror(errno));
	if (fd >= 0)
		close(fd);
}

void daemon_notify_reloading(void)
{
	struct timespec ts;
	char msg[64];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
	daemon_notify(msg);
}
