/*
 * mapvfs.c: an SQLite VFS for the API's read-only connections that reads
 * the main database file by copying from one shared mapping of it.
 *
 * Why: an answer over a large database reads a few thousand pages, and
 * each connection's page cache starts empty whenever the collector has
 * committed since its last read (SQLite drops it), which under ingest is
 * every request.  Read with pread, a page costs a system call (several
 * microseconds on a virtual machine); SQLite's own mmap mode stops at
 * 2 GiB as Debian builds it, and it remaps as the file grows, after which
 * each page faults in again (tens of microseconds here).  This VFS maps the
 * file once per process, with room to grow, shared by every connection:
 * a page read is a memcpy from memory the process has touched before.
 *
 * How: every method forwards to the default VFS ("unix"), except xRead on
 * a main database file, which copies from the mapping when the range lies
 * inside the file's size as last seen.  A read past that size looks at
 * the size again (fstat), maps a larger region if the file outgrew the
 * mapping (the old mapping stays: readers may be inside it), and else
 * forwards (SQLite's short-read semantics).  Mappings are reserved twice
 * the file's size; pages past the end of the file are never touched.
 *
 * Limits: the database file must not shrink while the API runs (reading a
 * page past a truncated end raises SIGBUS).  tokentap never shrinks it:
 * no auto_vacuum, no VACUUM; deleted rows leave free pages for reuse.
 * The connections must be read-only: writes are forwarded, but the
 * mapping is not written through.
 */
#include "mapvfs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* One mapped file, shared by the connections of the process. */
struct map_file {
    dev_t dev;
    ino_t ino;
    int fd;                 /* our own read-only descriptor */
    const unsigned char *p; /* the current mapping */
    size_t reserved;        /* its length */
    size_t size;            /* bytes known to exist in the file */
    struct map_file *next;  /* the registry */
};

/* A file opened through this VFS: the underlying file follows it. */
struct map_conn {
    sqlite3_file base;
    struct map_file *m; /* NULL: not a main database, plain forwarding */
    sqlite3_file *real;
};

static sqlite3_vfs map_vfs;
static uint64_t map_nmapped, map_nforwarded; /* reads of main databases */
static sqlite3_vfs *map_under;
static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;
static struct map_file *map_files;

#define REAL(f) (((struct map_conn *)(f))->real)

/* Look at the file's size again; map more if it outgrew the mapping.
 * Called with map_lock held. */
static void map_refresh(struct map_file *m)
{
    struct stat st;
    if (fstat(m->fd, &st) != 0 || (size_t)st.st_size <= m->size)
        return;
    size_t size = (size_t)st.st_size;
    if (size > m->reserved) {
        size_t want = 2 * size;
        void *p = mmap(NULL, want, PROT_READ, MAP_SHARED, m->fd, 0);
        if (p == MAP_FAILED)
            return; /* reads past the old size go through the file */
        /* The old mapping stays: another thread may be copying from it. */
        __atomic_store_n(&m->reserved, want, __ATOMIC_RELEASE);
        __atomic_store_n(&m->p, (const unsigned char *)p, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&m->size, size, __ATOMIC_RELEASE);
}

/* The registry's entry for path's file, made (and mapped) if new. */
static struct map_file *map_get(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return NULL;
    }
    pthread_mutex_lock(&map_lock);
    struct map_file *m = map_files;
    while (m != NULL && !(m->dev == st.st_dev && m->ino == st.st_ino))
        m = m->next;
    if (m == NULL && (m = calloc(1, sizeof(*m))) != NULL) {
        m->dev = st.st_dev;
        m->ino = st.st_ino;
        m->fd = fd;
        fd = -1;
        m->next = map_files;
        map_files = m;
        map_refresh(m);
    }
    pthread_mutex_unlock(&map_lock);
    if (fd >= 0)
        close(fd);
    return m;
}

static int map_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    struct map_file *m = ((struct map_conn *)f)->m;
    if (m != NULL && off >= 0 && amt >= 0) {
        size_t end = (size_t)off + (size_t)amt;
        if (end > __atomic_load_n(&m->size, __ATOMIC_ACQUIRE)) {
            pthread_mutex_lock(&map_lock);
            map_refresh(m);
            pthread_mutex_unlock(&map_lock);
        }
        if (end <= __atomic_load_n(&m->size, __ATOMIC_ACQUIRE)) {
            memcpy(buf, __atomic_load_n(&m->p, __ATOMIC_ACQUIRE) + off,
                   (size_t)amt);
            __atomic_fetch_add(&map_nmapped, 1, __ATOMIC_RELAXED);
            return SQLITE_OK;
        }
        __atomic_fetch_add(&map_nforwarded, 1, __ATOMIC_RELAXED);
    }
    return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

/* ---- plain forwarding ---- */

static int map_close(sqlite3_file *f)
{
    int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : 0;
    f->pMethods = NULL;
    return rc;
}

static int map_write(sqlite3_file *f, const void *b, int amt, sqlite3_int64 o)
{
    return REAL(f)->pMethods->xWrite(REAL(f), b, amt, o);
}

static int map_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int map_sync(sqlite3_file *f, int flags)
{
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int map_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int map_lock_f(sqlite3_file *f, int lock)
{
    return REAL(f)->pMethods->xLock(REAL(f), lock);
}

static int map_unlock(sqlite3_file *f, int lock)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}

static int map_check_lock(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int map_fcntl(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int map_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int map_devchar(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int map_shm_map(sqlite3_file *f, int pg, int pgsz, int extend,
                       void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

static int map_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void map_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int map_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int map_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, amt, pp);
}

static int map_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods map_methods = {3,
                                               map_close,
                                               map_read,
                                               map_write,
                                               map_truncate,
                                               map_sync,
                                               map_size,
                                               map_lock_f,
                                               map_unlock,
                                               map_check_lock,
                                               map_fcntl,
                                               map_sector,
                                               map_devchar,
                                               map_shm_map,
                                               map_shm_lock,
                                               map_shm_barrier,
                                               map_shm_unmap,
                                               map_fetch,
                                               map_unfetch};

static int map_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
                    int flags, int *out_flags)
{
    (void)vfs;
    struct map_conn *c = (struct map_conn *)f;
    c->real = (sqlite3_file *)(c + 1);
    c->m = NULL;
    f->pMethods = NULL;
    int rc = map_under->xOpen(map_under, name, c->real, flags, out_flags);
    if (rc != SQLITE_OK)
        return rc;
    /* The real file's methods must offer what ours claim (version 3). */
    if (c->real->pMethods == NULL || c->real->pMethods->iVersion < 3) {
        if (c->real->pMethods != NULL)
            c->real->pMethods->xClose(c->real);
        return SQLITE_CANTOPEN;
    }
    if ((flags & SQLITE_OPEN_MAIN_DB) && name != NULL)
        c->m = map_get(name); /* NULL: every read goes through the file */
    f->pMethods = &map_methods;
    return SQLITE_OK;
}

static int map_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
    (void)vfs;
    return map_under->xDelete(map_under, name, sync);
}

static int map_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return map_under->xAccess(map_under, name, flags, out);
}

static int map_fullpath(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return map_under->xFullPathname(map_under, name, n, out);
}

/* Register the VFS once: a copy of the default one with the file methods
 * above; the remaining methods ignore which VFS calls them. */
static void mapvfs_init(void)
{
    map_under = sqlite3_vfs_find(NULL);
    if (map_under == NULL)
        return;
    map_vfs = *map_under;
    map_vfs.zName = MAPVFS_NAME;
    map_vfs.szOsFile = (int)sizeof(struct map_conn) + map_under->szOsFile;
    map_vfs.pNext = NULL;
    map_vfs.xOpen = map_open;
    map_vfs.xDelete = map_delete;
    map_vfs.xAccess = map_access;
    map_vfs.xFullPathname = map_fullpath;
    sqlite3_vfs_register(&map_vfs, 0);
}

void mapvfs_counts(uint64_t *mapped, uint64_t *forwarded)
{
    *mapped = __atomic_load_n(&map_nmapped, __ATOMIC_RELAXED);
    *forwarded = __atomic_load_n(&map_nforwarded, __ATOMIC_RELAXED);
}

int mapvfs_register(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, mapvfs_init);
    return sqlite3_vfs_find(MAPVFS_NAME) != NULL ? 0 : -1;
}
