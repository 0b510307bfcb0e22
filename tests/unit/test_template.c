/* Templates for sink keys (shipper/template.h): what compiles and what is
 * refused with which sentence, and what records render to, including missing
 * values, JSON escapes, the whole label set and cut renderings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "shipper/template.h"

/* A batch built by hand: the renderer only reads the struct. */
typedef struct tbatch {
    sl_batch b;
    sl_record r[8];
    sl_field f[8][8];
    sl_field labels[8];
} tbatch;

static void tb_init(tbatch *t, const char *input, const char *source)
{
    memset(t, 0, sizeof *t);
    t->b.records = t->r;
    t->b.input = input;
    t->b.source = source;
    t->b.labels = t->labels;
}

static sl_record *tb_rec(tbatch *t, const char *line)
{
    uint32_t i = t->b.nrecords++;
    sl_record *r = &t->r[i];
    r->line = (sl_slice){line, strlen(line)};
    r->fields = t->f[i];
    return r;
}

static void tb_field(sl_record *r, const char *k, const char *v, int type, int flags)
{
    sl_field *f = &r->fields[r->nfields++];
    *f = (sl_field){{k, strlen(k)}, {v, strlen(v)}, (uint8_t)type, (uint8_t)flags};
}

static void tb_label(tbatch *t, const char *k, const char *v)
{
    t->labels[t->b.nlabels++] = (sl_field){{k, strlen(k)}, {v, strlen(v)}, SL_V_STRING, 0};
}

/* Renders text for r of b into a NUL-terminated static buffer. */
static const char *render(const char *text, const sl_tpl_rules *rules, const sl_batch *b,
                          const sl_record *r)
{
    static char out[512];
    sl_tpl *t;
    sl_err err;
    if (sl_tpl_compile(text, rules, &t, &err) != SL_OK) {
        fprintf(stderr, "'%s': %s\n", text, err.msg);
        fail();
    }
    bool cut = true;
    size_t n = sl_tpl_render(t, b, r, out, sizeof out - 1, &cut);
    assert_false(cut);
    out[n] = '\0';
    sl_tpl_free(t);
    return out;
}

static void expect_refused(const char *text, const sl_tpl_rules *rules, const char *needle)
{
    sl_tpl *t = (sl_tpl *)1;
    sl_err err;
    assert_int_equal(sl_tpl_compile(text, rules, &t, &err), SL_EINVAL);
    assert_null(t);
    if (!strstr(err.msg, needle)) fprintf(stderr, "want '%s' in '%s'\n", needle, err.msg);
    assert_non_null(strstr(err.msg, needle));
}

static bool no_space(const char *p, size_t n)
{
    return !memchr(p, ' ', n);
}

static void test_compile_errors(void **st)
{
    (void)st;
    static const sl_tpl_rules key = {.label_set = true};
    static const sl_tpl_rules strict = {
        .need_default = true, .text_ok = no_space, .text_rule = "with a space"};
    expect_refused("a-${labels.x", NULL, "unterminated ${ in 'a-${labels.x'");
    expect_refused("${nope}", NULL, "unknown reference '${nope}'");
    expect_refused("${labels.}", NULL, "unknown reference '${labels.}'");
    expect_refused("${fields.}", NULL, "unknown reference");
    expect_refused("${}", NULL, "unknown reference '${}'");
    expect_refused("${Input}", NULL, "unknown reference");
    /* ${labels} only where the sink allows it (a Kafka key, not a topic). */
    expect_refused("${labels}", NULL, "unknown reference '${labels}'");
    sl_tpl *t;
    sl_err err;
    assert_int_equal(sl_tpl_compile("${labels}", &key, &t, &err), SL_OK);
    assert_int_equal(sl_tpl_uses(t), SL_TPL_USES_LABELS);
    sl_tpl_free(t);
    expect_refused("${labels.team}", &strict, "needs a default");
    expect_refused("${fields.team:-}", &strict, "needs a default");
    expect_refused("a b${input}", &strict, "'a b' has characters with a space");
    expect_refused("${labels.x:-a b}", &strict, "default 'a b' has characters with a space");
    assert_int_equal(sl_tpl_compile("${labels.x:-ab}-${input}", &strict, &t, &err), SL_OK);
    sl_tpl_free(t);
    /* Parts are bounded. */
    char many[(SL_TPL_MAX_PARTS + 1) * 9 + 1] = "";
    for (int i = 0; i <= SL_TPL_MAX_PARTS; i++) strcat(many, "a${input}");
    expect_refused(many, NULL, "more than 32 parts");
}

static void test_uses(void **st)
{
    (void)st;
    static const struct {
        const char *text;
        unsigned uses;
    } cases[] = {
        {"plain", 0},
        {"a$$b", 0},
        {"${input}", SL_TPL_USES_INPUT},
        {"${source:-x}", SL_TPL_USES_SOURCE},
        {"${fields.a}", SL_TPL_USES_FIELDS},
        {"${labels.a}-${fields.b}", SL_TPL_USES_LABELS | SL_TPL_USES_FIELDS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sl_tpl *t;
        sl_err err;
        assert_int_equal(sl_tpl_compile(cases[i].text, NULL, &t, &err), SL_OK);
        assert_int_equal(sl_tpl_uses(t), cases[i].uses);
        sl_tpl_free(t);
    }
}

static void test_render(void **st)
{
    (void)st;
    tbatch tb;
    tb_init(&tb, "app", "/var/log/app.log");
    tb_label(&tb, "job", "web");
    tb_label(&tb, "env", "prod");
    sl_record *r = tb_rec(&tb, "line");
    tb_field(r, "user", "ann", SL_V_STRING, 0);
    tb_field(r, "env", "dev", SL_V_STRING, SL_FF_LABEL); /* overrides the input's label */
    tb_field(r, "user", "bob", SL_V_STRING, 0);          /* set again: the later one */
    tb_field(r, "q", "a\\\"b\\u00e9\\ud83d\\ude00\\n", SL_V_ESCAPED, 0);
    tb_field(r, "gone", "x", SL_V_STRING, SL_FF_REMOVED);
    tb_field(r, "n", "42", SL_V_NUMBER, 0);
    tb_field(r, "empty", "", SL_V_STRING, 0);
    sl_record *bare = tb_rec(&tb, "other");

    assert_string_equal(render("logs-${labels.job}-${labels.env}", NULL, &tb.b, r), "logs-web-dev");
    assert_string_equal(render("${labels.env}", NULL, &tb.b, bare), "prod");
    assert_string_equal(render("${fields.user}/${fields.n}", NULL, &tb.b, r), "bob/42");
    assert_string_equal(render("${fields.q}", NULL, &tb.b, r), "a\"b\xc3\xa9\xf0\x9f\x98\x80\n");
    assert_string_equal(render("${input}@${source}", NULL, &tb.b, r), "app@/var/log/app.log");
    assert_string_equal(render("cost $$5 $", NULL, &tb.b, r), "cost $5 $");
    /* Missing, removed or empty: nothing, or the default. */
    assert_string_equal(render("[${fields.nope}]", NULL, &tb.b, r), "[]");
    assert_string_equal(render("[${fields.gone:-d}]", NULL, &tb.b, r), "[d]");
    assert_string_equal(render("[${fields.empty:-d}]", NULL, &tb.b, r), "[d]");
    assert_string_equal(render("[${labels.user:-none}]", NULL, &tb.b, r), "[none]");
    assert_string_equal(render("${fields.user:-x}", NULL, &tb.b, bare), "x");
    /* The whole label set, sorted, values escaped as in a Loki stream. */
    static const sl_tpl_rules key = {.label_set = true};
    tb_field(r, "msg", "say \"hi\"\\\n", SL_V_STRING, SL_FF_LABEL);
    assert_string_equal(render("${labels}", &key, &tb.b, r),
                        "{env=\"dev\",job=\"web\",msg=\"say \\\"hi\\\"\\\\\\n\"}");
    assert_string_equal(render("${labels}", &key, &tb.b, bare), "{env=\"prod\",job=\"web\"}");
    /* No batch: every reference is missing, literal text stays. */
    assert_string_equal(render("t-${input:-none}$$", NULL, NULL, NULL), "t-none$");
    tb.b.source = NULL;
    assert_string_equal(render("[${source}]", NULL, &tb.b, r), "[]");
}

static void test_cut_and_varies(void **st)
{
    (void)st;
    tbatch tb;
    tb_init(&tb, "app", NULL);
    tb_label(&tb, "job", "web");
    sl_record *r = tb_rec(&tb, "line");
    tb_field(r, "k", "0123456789", SL_V_STRING, 0);
    sl_record *lab = tb_rec(&tb, "line");
    tb_field(lab, "lv", "x", SL_V_STRING, SL_FF_LABEL);
    sl_tpl *t;
    sl_err err;
    assert_int_equal(sl_tpl_compile("ab${fields.k}", NULL, &t, &err), SL_OK);
    char out[8];
    bool cut = false;
    assert_int_equal(sl_tpl_render(t, &tb.b, r, out, sizeof out, &cut), 8);
    assert_true(cut);
    assert_memory_equal(out, "ab012345", 8);
    assert_int_equal(sl_tpl_render(t, &tb.b, r, out, 0, &cut), 0);
    assert_true(cut);
    assert_true(sl_tpl_varies(t, r));
    sl_tpl_free(t);
    /* Labels vary only with label fields on the record. */
    assert_int_equal(sl_tpl_compile("${labels.job}", NULL, &t, &err), SL_OK);
    assert_false(sl_tpl_varies(t, r));
    assert_true(sl_tpl_varies(t, lab));
    sl_tpl_free(t);
    assert_int_equal(sl_tpl_compile("${input}-${source}", NULL, &t, &err), SL_OK);
    assert_false(sl_tpl_varies(t, lab));
    sl_tpl_free(t);
}

static void test_labels_and_values(void **st)
{
    (void)st;
    tbatch tb;
    tb_init(&tb, "app", NULL);
    tb_label(&tb, "job", "web");
    tb_label(&tb, "env", "prod");
    sl_record *r = tb_rec(&tb, "line");
    tb_field(r, "env", "dev", SL_V_STRING, SL_FF_LABEL);
    tb_field(r, "lv", "a\\tb", SL_V_ESCAPED, SL_FF_LABEL);
    tb_field(r, "old", "x", SL_V_STRING, SL_FF_LABEL | SL_FF_REMOVED);
    const sl_field *l[SL_TPL_MAX_LABELS];
    assert_int_equal(sl_tpl_labels(&tb.b, r, l), 3);
    assert_true(sl_slice_eq(l[0]->key, "job", 3) && sl_slice_eq(l[0]->val, "web", 3));
    assert_true(sl_slice_eq(l[1]->key, "env", 3) && sl_slice_eq(l[1]->val, "dev", 3));
    assert_true(sl_slice_eq(l[2]->key, "lv", 2));
    char v[4];
    assert_int_equal(sl_tpl_value(l[2], v, sizeof v), 3);
    assert_memory_equal(v, "a\tb", 3);
    assert_int_equal(sl_tpl_value(l[0], v, 2), 2); /* cut */
    assert_int_equal(sl_tpl_labels(&tb.b, NULL, l), 2);
    assert_int_equal(sl_tpl_labels(NULL, NULL, l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_uses),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_cut_and_varies),
        cmocka_unit_test(test_labels_and_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
