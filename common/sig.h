/*
 * sig.h: the stop signals every tokentap daemon takes the same way.
 *
 * SIGTERM and SIGINT stop a process (after it finishes what it accepted)
 * and SIGHUP reopens its log.  They are blocked in every thread and taken
 * synchronously (sigwait or signalfd) by one place in the program, so no
 * thread can die of them or be interrupted by them.
 */
#ifndef TT_SIG_H
#define TT_SIG_H

#include <signal.h>

/*
 * Block SIGTERM, SIGINT and SIGHUP in the calling thread and ignore
 * SIGPIPE; *set gets the blocked set, for sigwait() or signalfd().  Call it
 * first thing in main(), before any thread exists, so that every thread
 * inherits the mask.
 */
void sig_block_stop(sigset_t *set);

#endif
