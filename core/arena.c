#include "core/arena.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sl_arena_block {
    sl_arena_block *next;
    size_t cap, used;
    _Alignas(16) char data[];
};

#define ARENA_BLOCK_MIN     (16 * 1024)
#define ARENA_DEFAULT_LIMIT ((size_t)64 << 20)

/* Freed blocks of the standard sizes (16 KiB doubling up to 8 MiB) are kept
 * for the next batch, up to POOL_MAX_BYTES in all. A fresh 4096-record
 * batch otherwise takes megabytes of new pages from the kernel and gives
 * them back when a sink is done with it: the page faults cost more than
 * parsing. The pool is shared and locked (a few times per batch) rather
 * than per thread because batches are made on input threads and freed on
 * sink threads. Under AddressSanitizer blocks are not reused, so a read of
 * a freed batch's memory is still caught. */
#define POOL_CLASSES   10
#define POOL_MAX_BYTES ((size_t)16 << 20)

#if defined(__SANITIZE_ADDRESS__)
#define POOL_ENABLED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define POOL_ENABLED 0
#endif
#endif
#ifndef POOL_ENABLED
#define POOL_ENABLED 1
#endif

static struct {
    pthread_mutex_t mu;
    sl_arena_block *free[POOL_CLASSES];
    size_t bytes;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Whether a block of capacity cap is pooled; its class into *class. An odd
 * size (not ARENA_BLOCK_MIN times a power of two) or a large one is not. */
static bool pool_class(size_t cap, int *class)
{
    if (!POOL_ENABLED || cap < ARENA_BLOCK_MIN || cap % ARENA_BLOCK_MIN) return false;
    size_t m = cap / ARENA_BLOCK_MIN;
    if (m & (m - 1)) return false;
    int c = __builtin_ctzll((unsigned long long)m);
    if (c >= POOL_CLASSES) return false;
    *class = c;
    return true;
}

static sl_arena_block *block_get(size_t cap)
{
    int c;
    if (pool_class(cap, &c)) {
        pthread_mutex_lock(&pool.mu);
        sl_arena_block *b = pool.free[c];
        if (b) {
            pool.free[c] = b->next;
            pool.bytes -= cap;
        }
        pthread_mutex_unlock(&pool.mu);
        if (b) return b;
    }
    sl_arena_block *b = malloc(sizeof *b + cap);
    if (b) b->cap = cap;
    return b;
}

void sl_arena_init(sl_arena *a, size_t limit)
{
    a->head = NULL;
    a->used = 0;
    a->limit = limit ? limit : ARENA_DEFAULT_LIMIT;
}

void *sl_arena_alloc(sl_arena *a, size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n || a->used + need > a->limit) return NULL;
    sl_arena_block *b = a->head;
    if (!b || b->cap - b->used < need) {
        /* Blocks double with use so a big batch makes few allocations. */
        size_t cap = b ? b->cap * 2 : ARENA_BLOCK_MIN;
        if (cap < need) cap = need;
        if (cap > a->limit) cap = need;
        b = block_get(cap);
        if (!b) return NULL;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->used += need;
    return p;
}

char *sl_arena_dup(sl_arena *a, const void *p, size_t n)
{
    char *d = sl_arena_alloc(a, n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

void sl_arena_reset(sl_arena *a)
{
    sl_arena_block *b = a->head, *spill = NULL;
    if (b && POOL_ENABLED) {
        pthread_mutex_lock(&pool.mu);
        while (b) {
            sl_arena_block *next = b->next;
            int c;
            if (pool_class(b->cap, &c) && pool.bytes + b->cap <= POOL_MAX_BYTES) {
                b->next = pool.free[c];
                pool.free[c] = b;
                pool.bytes += b->cap;
            } else {
                b->next = spill;
                spill = b;
            }
            b = next;
        }
        pthread_mutex_unlock(&pool.mu);
        b = spill;
    }
    while (b) {
        sl_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used = 0;
}
