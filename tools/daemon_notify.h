/* systemd's readiness notification (sd_notify(3)) for the daemon: READY=1
 * once every configured export serves, RELOADING=1 and READY=1 around a
 * reload, STOPPING=1 at the stop. Nothing happens without $NOTIFY_SOCKET,
 * which is the case whenever systemd did not start the daemon. */
#ifndef FURING_TOOLS_DAEMON_NOTIFY_H
#define FURING_TOOLS_DAEMON_NOTIFY_H

/* Reads $NOTIFY_SOCKET and takes it out of the environment, so that no
 * child (qemu-nbd, fusermount3) can speak for the daemon. Call once,
 * before any other thread starts. */
void daemon_notify_init(void);
/* Sends the newline-separated assignments @state ("READY=1"). */
void daemon_notify(const char *state);
/* RELOADING=1 with the MONOTONIC_USEC= that systemd 253's notify-reload
 * wants; older ones ignore the extra line. */
void daemon_notify_reloading(void);

#endif
