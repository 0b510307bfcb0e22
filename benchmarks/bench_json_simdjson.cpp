// simdjson on-demand reference for benchmarks/bench_json.c (C++, built only
// when libsimdjson-dev is found). Iterates every top-level field of every
// line. raw: raw key and raw value text (objects/arrays skipped over, scalars
// not parsed). typed: unescaped key, strings unescaped, numbers parsed,
// booleans/null checked, objects/arrays as raw text.
#include <simdjson.h>

#include <cstddef>

using namespace simdjson;

extern "C" long sl_bench_simdjson(const char *buf, size_t buflen, const size_t *off,
                                  const size_t *len, size_t nlines, int typed)
{
    ondemand::parser parser;
    long fields = 0;
    size_t sink = 0; // keeps the extracted values observable
    for (size_t i = 0; i < nlines; i++) {
        // The rest of the corpus buffer is the padding simdjson wants.
        ondemand::document doc;
        if (parser.iterate(buf + off[i], len[i], buflen - off[i]).get(doc)) return -1;
        ondemand::object obj;
        if (doc.get_object().get(obj)) return -1;
        for (auto field : obj) {
            ondemand::value v;
            if (field.value().get(v)) return -1;
            ondemand::json_type t;
            if (v.type().get(t)) return -1;
            std::string_view s;
            if (typed) {
                if (field.unescaped_key().get(s)) return -1;
                switch (t) {
                case ondemand::json_type::string:
                    if (v.get_string().get(s)) return -1;
                    break;
                case ondemand::json_type::number: {
                    ondemand::number n;
                    if (v.get_number().get(n)) return -1;
                    break;
                }
                case ondemand::json_type::boolean: {
                    bool b;
                    if (v.get_bool().get(b)) return -1;
                    break;
                }
                case ondemand::json_type::null: {
                    bool isnull;
                    if (v.is_null().get(isnull) || !isnull) return -1;
                    break;
                }
                case ondemand::json_type::object: {
                    ondemand::object o;
                    if (v.get_object().get(o) || o.raw_json().get(s)) return -1;
                    break;
                }
                case ondemand::json_type::array: {
                    ondemand::array a;
                    if (v.get_array().get(a) || a.raw_json().get(s)) return -1;
                    break;
                }
                }
            } else {
                ondemand::raw_json_string k;
                if (field.key().get(k)) return -1;
                sink += (size_t)k.raw();
                if (t == ondemand::json_type::object) {
                    ondemand::object o;
                    if (v.get_object().get(o) || o.raw_json().get(s)) return -1;
                } else if (t == ondemand::json_type::array) {
                    ondemand::array a;
                    if (v.get_array().get(a) || a.raw_json().get(s)) return -1;
                } else {
                    s = v.raw_json_token();
                }
            }
            sink += s.size();
            fields++;
        }
    }
    return sink == 1 ? -2 : fields;
}
