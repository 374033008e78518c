/*
 * sig.c: blocking the stop signals (see sig.h).
 */
#include "sig.h"

#include <pthread.h>

void sig_block_stop(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}
