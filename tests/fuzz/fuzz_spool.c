/* Bytes as a spool segment: every entry is located, checked and decoded
 * the way a restarting agent would; nothing may crash or hang. */
#include <stddef.h>
#include <stdint.h>

#include "pipeline/spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_spool_seg_info si;
    sl_spool_verify_bytes(data, size, 1, &si);
    return 0;
}
