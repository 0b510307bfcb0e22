/* Whether a record's fields, written as JSON, are its line byte for byte:
 * a line the json step parsed, every member in order with nothing between
 * the tokens, none removed, renamed or added since. Every byte of the line
 * then lies in a verbatim slice (core/record.h SL_FF_VERBATIM) or is a
 * separator, so the line is also valid UTF-8 (the parser validated it).
 *
 * Two halves: sl_record_fields_tile_line compares only the slices'
 * positions (each one byte of separator apart, the first just after the
 * opening brace, the last just before the closing one), then
 * sl_record_separators_ok reads those bytes of the line. The record JSON
 * writer (shipper/recjson.c) runs them when the record does not carry
 * SL_RF_FIELDS_LINE. The json parser sets that flag on a line with no
 * whitespace outside strings (parsers/json.c; a subset of the lines these
 * accept: whitespace inside a nested value does not break the tiling), so
 * the sink's thread need not read every field of every record again
 * (decision 0082); sl_record_mark_fields_line is the definition the tests
 * hold the parser's flag to. */
#ifndef SLUICE_CORE_RECORD_TILE_H
#define SLUICE_CORE_RECORD_TILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/json_str.h" /* SL_JSON_ESCAPE_ROOM */
#include "core/record.h"

/* The positions half; *label_room grows by the worst-case output of the
 * label fields (written again under "labels") when it returns true. */
static inline bool sl_record_fields_tile_line(const sl_record *r, size_t *label_room)
{
    size_t n = r->line.n;
    uintptr_t base = (uintptr_t)r->line.p;
    /* Offsets into the line, each below n, and lengths below 2^30 (a
     * longer line is written field by field): no sum below can wrap, even
     * with 32-bit sizes, so equal positions are equal. */
    if (n < 2 || n >= (size_t)1 << 30) return false;
    if (r->nfields == 0) return n == 2; /* "{}" */
    /* Without a loop-carried sum: each member's key must start two bytes
     * past the previous member's end (its closing quote or last byte, a
     * comma, an opening quote), the first two bytes past the line's start
     * ('{' and '"'), and the last end one byte before the line's end. The
     * checks are or-ed, not branched on: the field array is read once,
     * with every load independent of the one before. */
    uintptr_t bad = 0, expect = 2;
    size_t room = 0;
    for (uint32_t i = 0; i < r->nfields; i++) {
        const sl_field *f = &r->fields[i];
        uintptr_t quoted = f->type == SL_V_STRING || f->type == SL_V_ESCAPED;
        uintptr_t k = (uintptr_t)f->key.p - base, v = (uintptr_t)f->val.p - base;
        bad |= (uintptr_t)((f->flags & (SL_FF_VERBATIM | SL_FF_REMOVED)) ^ SL_FF_VERBATIM);
        bad |= (uintptr_t)((f->key.n | f->val.n) >> 30) | (uintptr_t)(k >= n) | (uintptr_t)(v >= n);
        bad |= k ^ expect;
        bad |= v ^ (k + f->key.n + 2 + quoted); /* '"' ':' and the opening quote */
        expect = v + f->val.n + quoted + 2;
        /* a label field is written again under labels (its slices lie in
         * the line, apart: no overflow) */
        if (f->flags & SL_FF_LABEL)
            room += SL_JSON_ESCAPE_ROOM(f->key.n) + SL_JSON_ESCAPE_ROOM(f->val.n) + 8;
    }
    /* the last member ends just before the '}': expect is two past that */
    bad |= expect ^ (n + 1);
    if (bad) return false;
    *label_room += room;
    return true;
}

/* The bytes between the slices sl_record_fields_tile_line placed (only
 * after it returned true: they lie inside the line, each member's key at
 * least two bytes in, each value ending before the closing brace). Or-ed,
 * not branched on, as above. */
static inline bool sl_record_separators_ok(const sl_record *r)
{
    const unsigned char *p = (const unsigned char *)r->line.p;
    unsigned bad = (p[0] ^ '{') | (p[r->line.n - 1] ^ '}');
    for (uint32_t i = 0; i < r->nfields; i++) {
        const sl_field *f = &r->fields[i];
        const unsigned char *k = (const unsigned char *)f->key.p,
                            *v = (const unsigned char *)f->val.p;
        unsigned quoted = f->type == SL_V_STRING || f->type == SL_V_ESCAPED;
        /* before the first key the '{' (p[0], checked above) */
        bad |= (k[-2] ^ (i ? ',' : '{')) | (k[-1] ^ '"') | (k[f->key.n] ^ '"') |
               (k[f->key.n + 1] ^ ':');
        /* an unquoted value's neighbours are the ':' and the next ',' or
         * '}': read either way, counted only for a quoted one */
        bad |= ((v[-1] ^ '"') | (v[f->val.n] ^ '"')) & (0u - quoted);
    }
    return bad == 0;
}

/* Sets SL_RF_FIELDS_LINE when the record's fields are its line, with no
 * label field among them (the flag also tells the writer there is none to
 * write again under "labels"); clears it otherwise. What the json parser
 * decides as it emits, checked the long way: for tests. */
static inline void sl_record_mark_fields_line(sl_record *r)
{
    size_t label_room = 0;
    if (sl_record_fields_tile_line(r, &label_room) && label_room == 0 && sl_record_separators_ok(r))
        r->flags |= SL_RF_FIELDS_LINE;
    else
        r->flags &= ~(uint32_t)SL_RF_FIELDS_LINE;
}

#endif
