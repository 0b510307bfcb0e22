/* The journald input: reads the systemd journal (the local one, or the
 * journal files of a folder with `directory`) through sd-journal, copies
 * each entry's kept fields into refcounted chunks (sd-journal's data
 * pointers die at the next call), and checkpoints the cursor of the highest
 * acknowledged entry. A saved cursor whose entry was vacuumed resumes at the
 * oldest entry after it, counted, never at the end. */
#ifndef SLUICE_COLLECTOR_JOURNALD_H
#define SLUICE_COLLECTOR_JOURNALD_H

#include "core/plugin.h"

extern const sl_input_ops sl_journald_input_ops;

#endif
