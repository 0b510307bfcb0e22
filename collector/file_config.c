/* The file input's configuration and metrics (collector/file_config.h). */
#include "collector/file_config.h"

/* The tables' choices are indexes into these enums. */
_Static_assert(START_BEGINNING == 0 && START_END == 1, "start_at: beginning|end");
_Static_assert(LONG_SPLIT == 0 && LONG_TRUNCATE == 1, "long_lines: split|truncate");
_Static_assert(SL_FOLLOW_INSIDE == 0 && SL_FOLLOW_ALWAYS == 1 && SL_FOLLOW_NEVER == 2,
               "follow_symlinks: inside|always|never");

const sl_cfg_key sl_file_keys[SL_FILE_NKEYS] = {
    SL_INPUT_COMMON_KEYS,
    {.name = "paths",
     .type = SL_KEY_LIST,
     .required = true,
     .doc = "glob patterns of the files to read"},
    {.name = "exclude", .type = SL_KEY_LIST, .doc = "glob patterns to skip"},
    {.name = "start_at",
     .type = SL_KEY_ENUM,
     .at = SL_CFG_AT(file_input, start_at),
     .choices = "beginning|end",
     .def = "beginning",
     .doc = "`beginning` or `end`, only for the files present the first time the input runs in "
            "this `data_dir`; files that appear later, and every file after checkpoints were lost, "
            "are read from their start"},
    {.name = "max_line_bytes",
     .type = SL_KEY_SIZE,
     .at = SL_CFG_AT(file_input, max_line_bytes),
     .def = "1MiB",
     .min = 16,
     .max = 64 * 1024 * 1024,
     .doc = "longer lines are split (`long_lines: split`) or truncated (`truncate`), and counted"},
    {.name = "validate_utf8",
     .type = SL_KEY_BOOL,
     .at = SL_CFG_AT(file_input, validate_utf8),
     .def = "false",
     .doc = "also count (in `sluice_input_invalid_lines_total{reason=\"invalid_utf8\"}`) and flag "
            "lines that are not UTF-8 (a few per cent on ASCII logs, about half the line-splitting "
            "speed on text with non-ASCII bytes on most lines); lines with NUL bytes are always "
            "counted (`reason=\"nul\"`)"},
    {.name = "long_lines",
     .type = SL_KEY_ENUM,
     .at = SL_CFG_AT(file_input, long_mode),
     .choices = "split|truncate",
     .def = "split",
     .doc = "a line over `max_line_bytes`: `split` into several records, or `truncate`d"},
    {.name = "read_chunk",
     .type = SL_KEY_SIZE,
     .at = SL_CFG_AT(file_input, chunk_bytes),
     .def = "1MiB",
     .min = 4096,
     .max = 256 * 1024 * 1024,
     .doc = "largest read; small files get chunks their size"},
    {.name = "fingerprint_bytes",
     .type = SL_KEY_SIZE,
     .at = SL_CFG_AT(file_input, fp_bytes_read),
     .def = "1KiB",
     .doc =
         "bytes hashed to tell a file from another with a reused inode (at most 64KiB are used)"},
    {.name = "poll_interval",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(file_input, poll_ms),
     .def = "250ms",
     .doc = "how often globs are re-scanned where inotify is unavailable"},
    {.name = "flush_partial_after",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(file_input, flush_partial_ms),
     .def = "5s",
     .doc = "a last line without newline is shipped after this long"},
    {.name = "checkpoint_interval",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(file_input, checkpoint_ms),
     .def = "1s",
     .doc = "how often acknowledged positions are saved"},
    {.name = "forget_after",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(file_input, forget_after_ms),
     .def = "7d",
     .doc = "checkpoint entries of files not seen this long are pruned (a deleted file is "
            "forgotten as soon as it is closed: decision 0069)"},
    {.name = "batch_records",
     .type = SL_KEY_INT,
     .at = SL_CFG_AT(file_input, batch_records_read),
     .def = "4096",
     .min = 1,
     .max = 1024 * 1024,
     .doc = "records per batch"},
    {.name = "max_open_files",
     .type = SL_KEY_INT,
     .at = SL_CFG_AT(file_input, max_open_files),
     .def = "1024",
     .min = 1,
     .max = 1024 * 1024,
     .doc = "idle files are closed to stay under it and reopened from their checkpoint"},
    {.name = "max_checkpoint_entries",
     .type = SL_KEY_INT,
     .at = SL_CFG_AT(file_input, max_ckpt_entries),
     .def = "65536",
     .min = 16,
     .max = 262144,
     .doc = "files remembered beyond the open ones; past it those no longer at their path "
            "are forgotten, read to their end and least recently seen first (decision 0069)"},
    {.name = "close_idle_after",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(file_input, close_idle_ms),
     .def = "1m",
     .doc = "close a fully read, fully acknowledged file idle this long"},
    {.name = "rescan_interval",
     .type = SL_KEY_DURATION,
     .at = SL_CFG_AT(file_input, rescan_ms),
     .def = "10s",
     .doc = "safety rescan of the globs while inotify is active"},
    {.name = "read_bytes_per_sec",
     .type = SL_KEY_SIZE,
     .at = SL_CFG_AT(file_input, read_rate),
     .def = "0",
     .doc = "read rate limit of the input; `0`: unlimited"},
    {.name = "multiline",
     .type = SL_KEY_MAP,
     .doc = "`{start: REGEX}` or `{continue: REGEX}`, plus `max_lines` (500), `max_bytes` (1MiB), "
            "`timeout` (1s); a record cut at a limit is marked (see Parsing real logs)"},
    {.name = "follow_symlinks",
     .type = SL_KEY_ENUM,
     .at = SL_CFG_AT(file_input, follow),
     .choices = "inside|always|never",
     .def = "inside",
     .doc =
         "`inside`: follow links whose target stays in the folders the globs name (plus "
         "`/var/log/pods` and `/var/lib/docker/containers` for globs under `/var/log/containers`, "
         "plus `follow_symlinks_into`); `always`; `never` (see Security)"},
    {.name = "follow_symlinks_into",
     .type = SL_KEY_LIST,
     .doc = "more folders links may lead into, e.g. `[/data/docker/containers]`"},
    {.name = "strip_cr",
     .type = SL_KEY_BOOL,
     .at = SL_CFG_AT(file_input, strip_cr),
     .def = "true",
     .doc = "drop the `\\r` before each `\\n` (CRLF files), counted in "
            "`sluice_input_cr_stripped_total`; `false` keeps lines byte for byte"},
};

int sl_file_configure(file_input *in, const sl_input_ctx *ctx)
{
    sl_cfg *cfg = ctx->cfg;
    const sl_cfg_node *n = ctx->node;
    size_t before = sl_cfg_nerrors(cfg);
    sl_cfg_read(cfg, n, sl_file_keys, SL_FILE_NKEYS, in);
    sl_cfg_list(cfg, n, "paths", in->globs, MAX_GLOBS, &in->nglobs);
    sl_cfg_list(cfg, n, "exclude", in->excludes, MAX_GLOBS, &in->nexcludes);
    sl_cfg_list(cfg, n, "follow_symlinks_into", in->follow_into, MAX_GLOBS, &in->nfollow_into);
    in->fp_bytes = (uint32_t)(in->fp_bytes_read > 65536 ? 65536 : in->fp_bytes_read);
    in->batch_records = (uint32_t)in->batch_records_read;
    sl_multiline_new(cfg, sl_cfg_get(n, "multiline"), &in->multiline);
    sl_input_labels(cfg, n, in->labels, MAX_LABELS, &in->nlabels);
    return sl_cfg_nerrors(cfg) > before ? SL_EINVAL : SL_OK;
}

void sl_file_register_metrics(file_input *in)
{
    char l[256];
    sl_metric_labels(l, sizeof l, "input", in->ctx->name, NULL, NULL);
    in->m_lines = sl_counter("sluice_input_records_total", "Records read by the input.", l);
    in->m_bytes = sl_counter("sluice_input_bytes_total", "Bytes read by the input.", l);
    in->m_split = sl_counter("sluice_input_long_lines_total",
                             "Lines longer than max_line_bytes (split or truncated).", l);
    in->m_truncated_files = sl_counter("sluice_input_file_truncations_total",
                                       "Files that shrank under us (copytruncate).", l);
    in->m_rotations = sl_counter("sluice_input_file_rotations_total",
                                 "Files replaced at their path (rename rotation).", l);
    in->m_open = sl_gauge("sluice_input_open_files", "Files the input holds open.", l);
    in->m_ckpt_errors =
        sl_counter("sluice_checkpoint_write_errors_total", "Failed checkpoint writes.", l);
    in->m_ckpt_fallback = sl_counter("sluice_checkpoint_fallbacks_total",
                                     "Damaged checkpoints replaced by the previous generation.", l);
    in->m_read_errors =
        sl_counter("sluice_input_read_errors_total", "Failed opens and reads of files.", l);
    in->m_deferred = sl_counter("sluice_input_files_deferred_total",
                                "File opens put off because max_open_files was reached.", l);
    in->m_deleted_bytes = sl_gauge("sluice_input_deleted_unread_bytes",
                                   "Unread bytes held open in files deleted or rotated away.", l);
    static const char help[] = "Lines shipped as read but not text: invalid UTF-8 or NUL bytes.";
    sl_metric_labels(l, sizeof l, "input", in->ctx->name, "reason", "invalid_utf8");
    in->m_bad_utf8 = sl_counter("sluice_input_invalid_lines_total", help, l);
    sl_metric_labels(l, sizeof l, "input", in->ctx->name, "reason", "nul");
    in->m_nul = sl_counter("sluice_input_invalid_lines_total", help, l);
    for (int r = SL_REFUSED_NONE + 1; r < SL_REFUSED_NREASONS; r++) {
        sl_metric_labels(l, sizeof l, "input", in->ctx->name, "reason", sl_file_refusal_name(r));
        in->m_refused[r] = sl_counter("sluice_input_files_refused_total",
                                      "Files matched by the globs but not read (each once): "
                                      "links leading outside, FIFOs and devices, kernel "
                                      "pseudo files.",
                                      l);
    }
    sl_metric_labels(l, sizeof l, "input", in->ctx->name, NULL, NULL);
    in->m_lost_bytes = sl_counter("sluice_input_lost_bytes_total",
                                  "Bytes of files that went away before they were read "
                                  "(deleted, or rotated out of reach, unread).",
                                  l);
    in->m_cr = sl_counter("sluice_input_cr_stripped_total",
                          "Carriage returns removed before a newline (strip_cr).", l);
    in->m_ckpt_lost =
        sl_counter("sluice_checkpoint_lost_total",
                   "Checkpoints found unreadable or missing after earlier runs: every file "
                   "was read again from its start.",
                   l);
}
