/* A bump allocator owned by one batch: parsed fields, unescaped strings and
 * values made by parse steps live here and are freed with the batch. */
#ifndef SLUICE_CORE_ARENA_H
#define SLUICE_CORE_ARENA_H

#include <stddef.h>

typedef struct sl_arena_block sl_arena_block;

typedef struct sl_arena {
    sl_arena_block *head;
    size_t used;  /* bytes handed out */
    size_t limit; /* hard bound; allocations beyond it fail (0 = 64 MiB) */
} sl_arena;

void sl_arena_init(sl_arena *a, size_t limit);
/* 16-byte aligned memory, or NULL when the bound is reached. */
void *sl_arena_alloc(sl_arena *a, size_t n);
/* Copies n bytes (plus a NUL) into the arena. */
char *sl_arena_dup(sl_arena *a, const void *p, size_t n);
void sl_arena_reset(sl_arena *a);

#endif
