/* The file input: tails the files matched by glob `paths`, splits lines
 * into records without copying, follows rotation (rename and copytruncate),
 * tells files apart by device, inode and a fingerprint of their first
 * bytes, and checkpoints per file through the acknowledgement watermark. */
#ifndef SLUICE_COLLECTOR_FILE_H
#define SLUICE_COLLECTOR_FILE_H

#include "core/plugin.h"

extern const sl_input_ops sl_file_input_ops;

#endif
