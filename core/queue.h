/* A bounded multi-producer, multi-consumer FIFO of pointers, bounded both in
 * items and in bytes. Producers block (backpressure) or time out when full. */
#ifndef SLUICE_CORE_QUEUE_H
#define SLUICE_CORE_QUEUE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_queue sl_queue;

sl_queue *sl_queue_new(size_t max_items, size_t max_bytes);
void sl_queue_free(sl_queue *q);

/* timeout_ms: -1 waits forever, 0 never waits. An item larger than max_bytes
 * is accepted into an empty queue, so one big batch cannot deadlock.
 * Returns SL_OK, SL_EFULL (timed out while full) or SL_ECLOSED. */
int sl_queue_push(sl_queue *q, void *item, size_t bytes, int64_t timeout_ms);
/* Returns SL_OK, SL_ETIMEDOUT (empty) or SL_ECLOSED (closed and drained). */
int sl_queue_pop(sl_queue *q, void **item, size_t *bytes, int64_t timeout_ms);
/* Wakes everyone; pushes fail from now on, pops drain what is left. */
void sl_queue_close(sl_queue *q);
size_t sl_queue_len(sl_queue *q);
size_t sl_queue_bytes(sl_queue *q);

#endif
