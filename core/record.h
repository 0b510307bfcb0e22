/* Records and fields: (pointer, length) slices into a chunk or a batch arena. */
#ifndef SLUICE_CORE_RECORD_H
#define SLUICE_CORE_RECORD_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_slice {
    const char *p;
    size_t n;
} sl_slice;

#define SL_SLICE_LIT(s) ((sl_slice){(s), sizeof(s) - 1})

/* What a field's value slice holds. Strings are the bytes between the quotes;
 * SL_V_ESCAPED means they still contain JSON escapes (unescape on demand). */
enum sl_value_type {
    SL_V_STRING = 1,
    SL_V_ESCAPED,
    SL_V_NUMBER,
    SL_V_TRUE,
    SL_V_FALSE,
    SL_V_NULL,
    SL_V_OBJECT, /* raw text of a nested object, braces included */
    SL_V_ARRAY,  /* raw text of an array, brackets included */
};

enum sl_field_flags {
    SL_FF_KEY_ESCAPED = 1 << 0, /* key still contains JSON escapes */
    SL_FF_LABEL = 1 << 1,       /* becomes a Loki label / Kafka header */
    SL_FF_METADATA = 1 << 2,    /* Loki structured metadata */
    SL_FF_REMOVED = 1 << 3,     /* removed by a step; skip when encoding */
    /* Set by the json parser on the top-level members it emits: key and
     * val are slices of a document it validated (valid UTF-8, no control
     * byte inside a string), so a key without SL_FF_KEY_ESCAPED and a
     * SL_V_STRING value hold no '"', '\\' or byte below 0x20 and are their
     * own JSON escape (shipper/recjson.c copies them). Whoever changes key
     * or val clears it; the spool does not keep it. */
    SL_FF_VERBATIM = 1 << 4,
};

typedef struct sl_field {
    sl_slice key;
    sl_slice val;
    uint8_t type;  /* enum sl_value_type */
    uint8_t flags; /* enum sl_field_flags */
} sl_field;

enum sl_record_flags {
    SL_RF_PARSE_ERROR = 1 << 0, /* a parse step failed: shipped raw, counted */
    SL_RF_TRUNCATED = 1 << 1,   /* line longer than max_line_bytes, cut */
    SL_RF_SPLIT = 1 << 2,       /* continuation piece of a split long line */
    SL_RF_INVALID_UTF8 = 1 << 3,
    SL_RF_DROPPED = 1 << 4,       /* removed by a drop/keep step; acked, never shipped */
    SL_RF_ML_CUT = 1 << 5,        /* multiline record cut at max_lines/max_bytes */
    SL_RF_ML_CONT = 1 << 6,       /* the rest of a cut multiline record */
    SL_RF_PARSE_WARNING = 1 << 7, /* parsed, part missing (`parse_warning` field) */
    SL_RF_FRAMED = 1 << 8,        /* container framing already parsed the line (collector/
                                   * container_frame.h): the cri/docker step clears it */
    /* line is known valid UTF-8: set by the json parser on a record whose
     * whole line it parsed (stage 1 validated every byte) and by an input
     * that checked the line (kafka), so a sink need
     * not check it again. Whoever changes line clears it; the spool's
     * decoder masks it (bytes read back are not trusted). */
    SL_RF_LINE_UTF8 = 1 << 9,
    /* The record's fields, written as JSON, are its line byte for byte
     * (core/record_tile.h): every one the json parser's, verbatim, tiling
     * the line with nothing between the tokens, none removed or a label.
     * Set only by the json parser (sl_json_parse_record: a line with no
     * whitespace outside strings, which stage 1 tells it for two
     * operations per 64 bytes); the record JSON writer then copies it as
     * "fields" without reading the field array (decision 0082). No step
     * has to remember it: the chain clears it after every step that is
     * not json, and sl_record_add_field clears it; the spool's decoder
     * masks it. Code that changes a field outside a step (tests, benches)
     * clears it itself. */
    SL_RF_FIELDS_LINE = 1 << 10,
};

typedef struct sl_record {
    sl_slice line;    /* the record's text (message), without the newline */
    int64_t time_ns;  /* event time: parsed, or read time when unknown */
    uint64_t pos_end; /* source position just past this record (for acks) */
    sl_field *fields; /* in the batch arena */
    uint32_t nfields;
    uint32_t cap_fields;
    uint32_t flags; /* enum sl_record_flags */
} sl_record;

/* Field lookup by key (exact bytes, unescaped keys only); NULL if absent. */
sl_field *sl_record_field(const sl_record *r, const char *key, size_t keylen);

/* Records a sink encodes this far ahead of the current one have their
 * fields fetched into the cache (at most SL_RECORD_PREFETCH_BYTES of each,
 * 16 cache lines): the input's thread wrote them megabytes earlier, and the
 * first read of their flags was most of a label scan's time (decisions
 * 0050, 0052). */
#define SL_RECORD_PREFETCH_AHEAD 4
#define SL_RECORD_PREFETCH_BYTES 1024
static inline void sl_record_prefetch_fields(const sl_record *r)
{
    const char *fp = (const char *)r->fields;
    size_t fb = (size_t)r->nfields * sizeof *r->fields;
    for (size_t o = 0; o < fb && o < SL_RECORD_PREFETCH_BYTES; o += 64) __builtin_prefetch(fp + o);
}

static inline int sl_slice_eq(sl_slice a, const char *s, size_t n)
{
    return a.n == n && (n == 0 || __builtin_memcmp(a.p, s, n) == 0);
}

#endif
