/*
 * mapvfs.h: an SQLite VFS that reads a database file from one mapping per
 * process (mapvfs.c), for read-only connections.
 */
#ifndef TT_MAPVFS_H
#define TT_MAPVFS_H

#include <stdint.h>

#define MAPVFS_NAME "tt-map"

/* Register the VFS (once; thread-safe).  Returns 0, or -1 if SQLite has
 * no default VFS to wrap.  Open with sqlite3_open_v2(..., MAPVFS_NAME). */
int mapvfs_register(void);

/* How many reads of main database files the process made from the
 * mapping, and how many went to the file (past its end as last seen). */
void mapvfs_counts(uint64_t *mapped, uint64_t *forwarded);

#endif
