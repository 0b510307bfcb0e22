/* CRC32C (Castagnoli): the checksum of spool entries, in its own module
 * because it is a general tool (a 362-line table and a hardware path)
 * that has nothing to do with how the spool lays out its files. */
#ifndef SLUICE_CORE_CRC32C_H
#define SLUICE_CORE_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* crc is the running value: pass 0 to start, and the previous result to
 * continue. sl_crc32c picks the SSE4.2 instruction when the CPU has it;
 * the others are exposed for tests. */
uint32_t sl_crc32c(uint32_t crc, const void *p, size_t n);
uint32_t sl_crc32c_portable(uint32_t crc, const void *p, size_t n);
bool sl_crc32c_hw_available(void);
/* Only when sl_crc32c_hw_available(); otherwise the portable result. */
uint32_t sl_crc32c_hw(uint32_t crc, const void *p, size_t n);

#endif
