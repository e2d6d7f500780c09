/* A child process that dies with this process, not with the thread that
 * asked for it (qemu_nbd.c's private qemu-nbd). */
#ifndef FURING_EXPORT_SPAWN_H
#define FURING_EXPORT_SPAWN_H

#include <sys/types.h>

/* Forks a child that gets SIGTERM when this process ends (PR_SET_PDEATHSIG)
 * and then runs @in_child(@arg), which must exec or _exit and may call only
 * async-signal-safe functions. Any thread, which may exit before the child:
 * the fork happens on a thread of this file that lives as long as the
 * process. Returns the child's pid (waitpid works from any thread), or -1
 * with errno. */
pid_t spawn_tied(void (*in_child)(void *arg), void *arg);

#endif
