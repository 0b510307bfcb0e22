/* One decompression per zstd message set for librdkafka's consumer.
 *
 * Debian's librdkafka 2.0.2 decompresses a zstd message set whose frame does
 * not state its size (every frame a dynamically linked librdkafka producer
 * writes, the Kafka sink's included) by guessing: ZSTD_decompress into 2x
 * the compressed size, and after "destination too small" again from the
 * start into 6x, 18x... This module defines ZSTD_decompress in the sluice
 * binary, which the dynamic linker binds librdkafka's calls to (an
 * executable's definitions come first), and makes the retries cheap: the
 * first call decompresses the whole set once into a buffer of
 * ZSTD_decompressBound's size, answers "too small" when it does not fit the
 * caller's, and the retry on the same input copies it out (decision 0064).
 * Every call returns what libzstd's ZSTD_decompress returns for the same
 * arguments: the same bytes and size, or an error. */
#ifndef SLUICE_COLLECTOR_KAFKA_ZSTD_H
#define SLUICE_COLLECTOR_KAFKA_ZSTD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sets larger than this, compressed or decompressed, are not kept
 * between the calls: they decompress into the caller's buffer as libzstd's
 * own function would (a Kafka producer's batch.size is 1 MB by default). */
#define SL_KAFKA_ZSTD_KEEP_MAX (16u * 1024 * 1024)

/* Sets up the per-thread state's key once (pthread_once); later calls do
 * nothing. Also what links this module into a program that has a kafka
 * input. */
void sl_kafka_zstd_init(void);

/* Whether librdkafka's calls reach this definition: the process's global
 * lookup finds it before libzstd's (it does when the program exports it,
 * as a program that links librdkafka does by default). */
bool sl_kafka_zstd_bound(void);

/* Counts of this thread's calls, for tests: decompressions done, and
 * answers given from what an earlier call had decompressed. */
typedef struct sl_kafka_zstd_stats {
    uint64_t decompressed, served_kept;
} sl_kafka_zstd_stats;
sl_kafka_zstd_stats sl_kafka_zstd_thread_stats(void);

#endif
