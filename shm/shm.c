/*
 * shm.c: the live segment's layout arithmetic, creation, and readers.
 *
 * The writer-side aggregation that fills the segment lives in live.c; this
 * file only knows where things are and how to copy them out consistently.
 */
#include "shm.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

const int shm_window_secs[SHM_WINDOWS] = {60, 300, 900, 3600};
const char *const shm_window_names[SHM_WINDOWS] = {"1m", "5m", "15m", "1h"};
const char *const shm_tok_names[SHM_TOK_N] = {"input", "output", "cache_read",
                                              "cache_write", "reasoning"};

/* Round n up to a multiple of 64 (cache lines). */
static uint64_t shm_align(uint64_t n)
{
    return (n + 63) & ~(uint64_t)63;
}

size_t shm_layout(const struct shm_params *p, struct shm_header *h)
{
    uint64_t off = shm_align(sizeof(struct shm_header));
    memset(h, 0, sizeof(*h));
    h->magic = SHM_MAGIC;
    h->version = SHM_VERSION;
    h->nslots = p->nslots;
    h->nseconds = p->nseconds;
    h->hist_entries = p->hist_entries;
    h->feed_size = p->feed_size;
    h->ring_size = p->ring_size;
    h->budget_slots = p->budget_slots;
    h->off_dims = off;
    off = shm_align(off + (uint64_t)p->nslots * sizeof(struct shm_dim));
    h->off_summary = off;
    off =
        shm_align(off + sizeof(struct shm_summary) +
                  (uint64_t)SHM_WINDOWS * p->nslots * sizeof(struct shm_stat) +
                  (uint64_t)p->nslots * sizeof(struct shm_agg));
    h->sec_stride = shm_align(sizeof(struct shm_sec) +
                              (uint64_t)p->nslots * sizeof(struct shm_stat));
    h->off_seconds = off;
    off = shm_align(off + h->sec_stride * p->nseconds);
    h->off_hist = off;
    off = shm_align(off + (uint64_t)p->nseconds * p->hist_entries *
                              sizeof(struct shm_hent));
    h->off_feed = off;
    off = shm_align(off + (uint64_t)p->feed_size * sizeof(struct shm_feed_ent));
    h->off_ring = off;
    off = shm_align(off + (uint64_t)p->ring_size * sizeof(struct shm_ring_ent));
    h->off_budgets = off;
    off =
        shm_align(off + (uint64_t)p->budget_slots * sizeof(struct shm_budget));
    h->size = off;
    return off;
}

struct shm_dim *shm_dims(const struct shm_header *h)
{
    return (struct shm_dim *)((char *)h + h->off_dims);
}

struct shm_summary *shm_summary(const struct shm_header *h)
{
    return (struct shm_summary *)((char *)h + h->off_summary);
}

struct shm_stat *shm_summary_win(const struct shm_header *h, int w)
{
    return (struct shm_stat *)((char *)shm_summary(h) +
                               sizeof(struct shm_summary)) +
           (size_t)w * h->nslots;
}

struct shm_agg *shm_summary_tot(const struct shm_header *h)
{
    return (struct shm_agg *)(shm_summary_win(h, 0) +
                              (size_t)SHM_WINDOWS * h->nslots);
}

struct shm_sec *shm_second(const struct shm_header *h, int64_t sec)
{
    uint64_t i = (uint64_t)sec % h->nseconds;
    return (struct shm_sec *)((char *)h + h->off_seconds + i * h->sec_stride);
}

struct shm_stat *shm_second_stats(struct shm_sec *s)
{
    return (struct shm_stat *)(s + 1);
}

struct shm_hent *shm_second_hist(const struct shm_header *h, int64_t sec)
{
    uint64_t i = (uint64_t)sec % h->nseconds;
    return (struct shm_hent *)((char *)h + h->off_hist) + i * h->hist_entries;
}

struct shm_feed_ent *shm_feed(const struct shm_header *h, uint64_t i)
{
    return (struct shm_feed_ent *)((char *)h + h->off_feed) + i % h->feed_size;
}

struct shm_ring_ent *shm_ring(const struct shm_header *h, uint64_t i)
{
    return (struct shm_ring_ent *)((char *)h + h->off_ring) + i % h->ring_size;
}

/* Where a budget slot's data starts: everything after its seqlock. */
#define SHM_BUDGET_DATA offsetof(struct shm_budget, id)

struct shm_budget *shm_budget_slot(const struct shm_header *h, uint32_t i)
{
    return (struct shm_budget *)((char *)h + h->off_budgets) + i;
}

struct shm_header *shm_create(const char *name, const struct shm_params *p,
                              uint64_t generation)
{
    struct shm_header tmpl;
    size_t size = shm_layout(p, &tmpl);
    /* Unlink first: readers keep their old mapping until they notice the
     * new inode, and never see a half-initialised header. */
    shm_unlink(name);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return NULL;
    if (ftruncate(fd, (off_t)size) != 0) {
        int e = errno;
        close(fd);
        shm_unlink(name);
        errno = e;
        return NULL;
    }
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (base == MAP_FAILED) {
        shm_unlink(name);
        errno = e;
        return NULL;
    }
    struct shm_header *h = base;
    /* Everything but the magic: readers refuse a segment without it, so
     * they keep their old mapping until shm_publish(). */
    tmpl.magic = 0;
    memcpy(h, &tmpl, sizeof(tmpl));
    h->generation = generation;
    return h;
}

void shm_publish(struct shm_header *h)
{
    __atomic_store_n(&h->magic, SHM_MAGIC, __ATOMIC_RELEASE);
}

void shm_destroy(struct shm_header *h)
{
    if (h != NULL)
        munmap(h, h->size);
}

void shm_budget_write(struct shm_header *h, uint32_t i,
                      const struct shm_budget *v)
{
    if (i >= h->budget_slots)
        return;
    struct shm_budget *b = shm_budget_slot(h, i);
    shm_write_begin(&b->seq);
    memcpy((char *)b + SHM_BUDGET_DATA, (const char *)v + SHM_BUDGET_DATA,
           sizeof(*b) - SHM_BUDGET_DATA);
    b->workspace[sizeof(b->workspace) - 1] = '\0';
    shm_write_end(&b->seq);
    if (atomic_load_explicit(&h->budgets_used, memory_order_relaxed) <= i)
        atomic_store_explicit(&h->budgets_used, i + 1, memory_order_release);
}

void shm_budget_trim(struct shm_header *h, uint32_t n)
{
    uint32_t used =
        atomic_load_explicit(&h->budgets_used, memory_order_relaxed);
    for (uint32_t i = n; i < used && i < h->budget_slots; i++) {
        struct shm_budget *b = shm_budget_slot(h, i);
        shm_write_begin(&b->seq);
        b->id = 0;
        shm_write_end(&b->seq);
    }
    if (n < used)
        atomic_store_explicit(&h->budgets_used, n, memory_order_release);
}

void shm_reader_init(struct shm_reader *r, const char *name)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    shm_reader_check(r, 0, 0);
}

void shm_reader_close(struct shm_reader *r)
{
    if (r->h != NULL)
        munmap((void *)r->h, r->size);
    r->h = NULL;
}

int shm_reader_check(struct shm_reader *r, int64_t now_ms, int interval_ms)
{
    if (r->h != NULL && now_ms - r->checked_ms < interval_ms)
        return 0;
    r->checked_ms = now_ms;
    int fd = shm_open(r->name, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        /* Keep an old mapping: stale data beats none, and it says stale. */
        return r->h != NULL ? 0 : -errno;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return r->h != NULL ? 0 : -e;
    }
    if (r->h != NULL && st.st_ino == r->ino) {
        close(fd);
        return 0;
    }
    if ((size_t)st.st_size < sizeof(struct shm_header)) {
        close(fd);
        return r->h != NULL ? 0 : -EAGAIN;
    }
    void *base = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED)
        return r->h != NULL ? 0 : -ENOMEM;
    const struct shm_header *h = base;
    if (h->magic != SHM_MAGIC || h->version != SHM_VERSION ||
        h->size != (uint64_t)st.st_size) {
        munmap(base, st.st_size);
        return r->h != NULL ? 0 : -EPROTO;
    }
    shm_reader_close(r);
    r->h = h;
    r->size = st.st_size;
    r->ino = st.st_ino;
    return 0;
}

int shm_read_window(const struct shm_header *h, int w, const char *ws,
                    struct shm_item *items, int cap, int64_t *as_of_sec)
{
    if (h == NULL || w < 0 || w >= SHM_WINDOWS)
        return -1;
    struct shm_summary *s = shm_summary(h);
    const struct shm_dim *dims = shm_dims(h);
    const struct shm_stat *win = shm_summary_win(h, w);
    const struct shm_agg *tot = shm_summary_tot(h);
    int n;
    uint64_t start;
    do {
        start = shm_read_begin(&s->seq);
        uint32_t nd = atomic_load_explicit(&((struct shm_header *)h)->ndims,
                                           memory_order_acquire);
        if (nd > h->nslots)
            nd = h->nslots;
        n = 0;
        int wsdim = -1;
        for (uint32_t i = 0; i < nd && n < cap; i++) {
            const struct shm_dim *d = &dims[i];
            if (ws != NULL) {
                if (wsdim < 0) {
                    if (d->kind != SHM_DIM_WORKSPACE ||
                        strcmp(d->workspace, ws) != 0)
                        continue;
                    wsdim = (int)i;
                } else if (d->ws != wsdim)
                    continue;
            }
            items[n].dim = *d;
            items[n].win = win[i];
            items[n].tot = tot[i];
            n++;
        }
        *as_of_sec = s->as_of_sec;
    } while (shm_read_retry(&s->seq, start));
    return n;
}

/* Copy the ring entry e (size bytes, starting with its seq: index + 1
 * once written, 0 while being written) to dst if it holds index seq - 1
 * and did not change while copied.  1 if copied, else 0. */
static int shm_copy_ent(_Atomic uint64_t *e, uint64_t seq, void *dst,
                        size_t size)
{
    if (atomic_load_explicit(e, memory_order_acquire) != seq)
        return 0;
    memcpy(dst, (const void *)e, size);
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(e, memory_order_relaxed) == seq;
}

int shm_read_feed(const struct shm_header *h, const char *ws,
                  struct shm_feed_ent *out, int cap)
{
    uint64_t head = atomic_load_explicit(&((struct shm_header *)h)->feed_head,
                                         memory_order_acquire);
    int n = 0;
    for (uint64_t k = head; k > 0 && n < cap && head - k < h->feed_size; k--)
        if (shm_copy_ent(&shm_feed(h, k - 1)->seq, k, &out[n], sizeof(*out)) &&
            (ws == NULL || strcmp(out[n].workspace, ws) == 0))
            n++;
    return n;
}

/* Copy entries [from, to) of the ring of n entries of size bytes at offset
 * off of the segment, each starting with its seq (shm_copy_ent), to out. */
static int shm_read_range(const struct shm_header *h, uint64_t off, uint64_t n,
                          size_t size, uint64_t from, uint64_t to, void *out,
                          int cap)
{
    const char *base = (const char *)h + off;
    int k = 0;
    if (to > n && from < to - n)
        from = to - n; /* overwritten since */
    for (uint64_t i = from; i < to && k < cap; i++)
        k += shm_copy_ent((_Atomic uint64_t *)(base + i % n * size), i + 1,
                          (char *)out + (size_t)k * size, size);
    return k;
}

int shm_read_feed_range(const struct shm_header *h, uint64_t from, uint64_t to,
                        struct shm_feed_ent *out, int cap)
{
    return shm_read_range(h, h->off_feed, h->feed_size, sizeof(*out), from, to,
                          out, cap);
}

int shm_read_ring_range(const struct shm_header *h, uint64_t from, uint64_t to,
                        struct shm_ring_ent *out, int cap)
{
    int n = shm_read_range(h, h->off_ring, h->ring_size, sizeof(*out), from, to,
                           out, cap);
    for (int i = 0; i < n; i++) {
        out[i].json[sizeof(out[i].json) - 1] = '\0';
        out[i].workspace[sizeof(out[i].workspace) - 1] = '\0';
    }
    return n;
}

int shm_read_budgets(const struct shm_header *h, const char *ws,
                     struct shm_budget *out, int cap)
{
    uint32_t used = atomic_load_explicit(
        &((struct shm_header *)h)->budgets_used, memory_order_acquire);
    int n = 0;
    for (uint32_t i = 0; i < used && i < h->budget_slots && n < cap; i++) {
        struct shm_budget *b = shm_budget_slot(h, i);
        uint64_t start;
        do {
            start = shm_read_begin(&b->seq);
            memcpy((char *)&out[n] + SHM_BUDGET_DATA,
                   (const char *)b + SHM_BUDGET_DATA,
                   sizeof(*b) - SHM_BUDGET_DATA);
        } while (shm_read_retry(&b->seq, start));
        out[n].workspace[sizeof(out[n].workspace) - 1] = '\0';
        if (out[n].id == 0 || (ws != NULL && strcmp(out[n].workspace, ws) != 0))
            continue;
        atomic_store_explicit(&out[n].seq, start, memory_order_relaxed);
        n++;
    }
    return n;
}
