#include "core/arena.h"

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
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->cap = cap;
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
    sl_arena_block *b = a->head;
    while (b) {
        sl_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used = 0;
}
